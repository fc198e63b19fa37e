"""The exchange's pure gates: what validation accepts and refuses, black stopping at the zone gate, emergency
access only where the rule allows it, a refusal beating any consent, and when the emergency allowance starts
again."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.base import errors
from broker.exchange.gates import (
    MAX_EMERGENCY_REASON,
    MAX_JUSTIFICATION,
    ExchangeRequest,
    consent_gate,
    emergency_gate,
    seconds_to_next_day,
    validate,
    zone_gate,
)
from consent.matching import Consent, Ending, Refusal
from directory.names import NAME
from directory.names import SUBJECT as SUBJECT_SHAPE
from policies.rules import Decision, Rule

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
SUBJECT = "85073003328"
VALID = {"subject": SUBJECT, "category": "income", "purpose": "benefit-eligibility"}
ABSENT = object()  # a member left out of the document, where None would be a JSON null


def consent(id: str = "c-1", grantee: str = "family-benefits") -> Consent:
    return Consent(
        id=id,
        subject=SUBJECT,
        representative=None,
        mandate=None,
        grantee=grantee,
        categories=("income",),
        purposes=("benefit-eligibility",),
        valid_from=NOW - timedelta(days=1),
        valid_until=NOW + timedelta(days=30),
        channel="portal",
        evidence="form",
        evidence_sha256=None,
        notice_version=None,
        created_at=NOW - timedelta(days=1),
        created_by="citizen-portal",
    )


def refusal(
    id: str = "f-1",
    agency: str = "family-benefits",
    categories: tuple[str, ...] | None = None,
    lifted_at: datetime | None = None,
) -> Refusal:
    return Refusal(
        id=id,
        subject=SUBJECT,
        representative=None,
        mandate=None,
        agency=agency,
        categories=categories,
        channel="counter",
        created_at=NOW - timedelta(days=1),
        created_by="admin-desk",
        lift=None if lifted_at is None else Ending(lifted_at, "admin-desk", "counter"),
    )


def decision(emergency: bool = False, consent_required: bool = True, zone: str = "white") -> Decision:
    rule = Rule("r-x", "agency:municipality-leuven", "civil-status", "*", zone, consent_required, None, emergency)
    return Decision(zone, rule, 3)


OPTIONAL = st.fixed_dictionaries(
    {},
    optional={
        "params": st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3),
        "review": st.text(max_size=40),
        "justification": st.text(max_size=MAX_JUSTIFICATION),
        "emergency": st.text(min_size=1, max_size=MAX_EMERGENCY_REASON)
        .filter(str.strip)
        .map(lambda reason: {"reason": reason}),
    },
)
DOCUMENTS = st.builds(
    lambda subject, category, purpose, optional: {
        "subject": subject,
        "category": category,
        "purpose": purpose,
        **optional,
    },
    st.from_regex(SUBJECT_SHAPE, fullmatch=True),
    st.from_regex(NAME, fullmatch=True),
    st.from_regex(NAME, fullmatch=True),
    OPTIONAL,
)


@given(DOCUMENTS)
def test_a_valid_document_is_read_as_it_was_written(document: dict[str, Any]) -> None:
    request = validate(document)
    assert (request.subject, request.category, request.purpose) == (
        document["subject"],
        document["category"],
        document["purpose"],
    )
    assert request.params == document.get("params", {})
    assert request.review == document.get("review")
    assert request.justification == document.get("justification")
    assert request.emergency == (document["emergency"]["reason"] if "emergency" in document else None)


def test_unknown_fields_are_named() -> None:
    with pytest.raises(errors.Invalid, match="unknown fields: data, zone"):
        validate({**VALID, "zone": "white", "data": {}})


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"subject": ABSENT}, "subject"),
        ({"subject": 85073003328}, "subject"),
        ({"subject": ""}, "subject"),
        ({"subject": "x" * 65}, "subject"),
        ({"subject": "85073003328 OR 1=1"}, "subject"),
        ({"category": ABSENT}, "category"),
        ({"category": "Income"}, "category"),
        ({"category": "-income"}, "category"),
        ({"category": "a" * 64}, "category"),
        ({"purpose": ["benefit-eligibility"]}, "purpose"),
        ({"purpose": "benefit eligibility"}, "purpose"),
        ({"params": [2025]}, "params"),
        ({"params": None}, "params"),
        ({"review": 17}, "review"),
        ({"review": "r" * 41}, "review"),
        ({"justification": ["why"]}, "justification"),
        ({"justification": "x" * (MAX_JUSTIFICATION + 1)}, "justification"),
        ({"emergency": {"reason": "x" * (MAX_EMERGENCY_REASON + 1)}}, "emergency"),
    ],
)
def test_a_malformed_member_is_invalid(changes: dict[str, Any], named: str) -> None:
    document = {name: value for name, value in {**VALID, **changes}.items() if value is not ABSENT}
    with pytest.raises(errors.Invalid, match=named):
        validate(document)


@pytest.mark.parametrize(
    "emergency",
    [
        True,
        "fire",
        {},
        {"reason": ""},
        {"reason": "  "},
        {"reason": 3},
        {"reason": "x" * 1001},
        {"reason": "a", "b": 1},
    ],
)
def test_a_malformed_emergency_is_invalid(emergency: object) -> None:
    with pytest.raises(errors.Invalid, match="emergency"):
        validate({"subject": SUBJECT, "category": "income", "purpose": "p", "emergency": emergency})


def test_black_stops_at_the_zone_gate_naming_the_rule_and_version() -> None:
    with pytest.raises(errors.BlackZone, match=r"no rule matches, version 7"):
        zone_gate(Decision("black", None, 7))
    with pytest.raises(errors.BlackZone, match=r"rule r-x, version 3"):
        zone_gate(decision(zone="black"))


@pytest.mark.parametrize("zone", ["grey", "white"])
def test_grey_and_white_pass_the_zone_gate(zone: str) -> None:
    zone_gate(decision(zone=zone))


def test_the_emergency_gate_follows_the_rule() -> None:
    asked = validate({"subject": SUBJECT, "category": "civil-status", "purpose": "p", "emergency": {"reason": "fire"}})
    assert asked.emergency == "fire"
    emergency_gate(decision(emergency=True), asked)
    emergency_gate(decision(emergency=False), replace(asked, emergency=None))
    with pytest.raises(errors.EmergencyNotAllowed, match="r-x"):
        emergency_gate(decision(emergency=False), asked)
    with pytest.raises(errors.EmergencyNotAllowed, match="no rule"):
        emergency_gate(Decision("black", None, 3), asked)


def test_a_refusal_beats_any_consent_for_its_agency() -> None:
    request = ExchangeRequest(SUBJECT, "income", "benefit-eligibility")
    named, wildcard, refused = consent(), consent("c-any", grantee="*"), refusal(categories=("income",))
    assert consent_gate([named, wildcard], [refused], "family-benefits", request, NOW) == refused
    assert consent_gate([named, wildcard], [], "family-benefits", request, NOW) == named
    # a refusal of another agency leaves this one's consent alone
    assert consent_gate([wildcard], [refusal(agency="tax-authority")], "family-benefits", request, NOW) == wildcard
    with pytest.raises(errors.NoConsent):
        consent_gate([], [refusal(lifted_at=NOW)], "family-benefits", request, NOW)


@given(with_consent=st.booleans())
def test_an_active_refusal_is_returned_whether_or_not_a_consent_covers(with_consent: bool) -> None:
    request = ExchangeRequest(SUBJECT, "income", "benefit-eligibility")
    refused = refusal()
    consents = [consent()] if with_consent else []
    assert consent_gate(consents, [refused], "family-benefits", request, NOW) == refused


@pytest.mark.parametrize(
    ("at", "seconds"),
    [
        (datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC), 1),
        (datetime(2026, 11, 22, 23, 59, 59, 500000, tzinfo=UTC), 1),
        (datetime(2026, 11, 22, 0, 0, tzinfo=UTC), 86400),
        (datetime(2026, 11, 22, 12, tzinfo=UTC), 43200),
    ],
)
def test_the_emergency_allowance_starts_again_at_utc_midnight(at: datetime, seconds: int) -> None:
    assert seconds_to_next_day(at) == seconds


OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=OFFSETS))
def test_the_wait_lands_on_the_next_utc_midnight(at: datetime) -> None:
    seconds = seconds_to_next_day(at)
    assert 1 <= seconds <= 86400
    midnight = datetime.combine(at.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)
    # whole seconds, rounded up: at most one second past the midnight, never before it
    assert midnight <= at + timedelta(seconds=seconds) < midnight + timedelta(seconds=1)
