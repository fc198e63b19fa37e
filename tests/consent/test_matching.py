"""Consent matching, pure: partial coverage by grantee, category, purpose and time; expiry at the boundary;
withdrawal; the most specific consent; refusals' scope. The exchange's gates are tested in tests/exchange."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.matching import Consent, Ending, Refusal, blocking_refusal, covering_consent, specificity

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
SUBJECT = "85073003328"
ASK = ("family-benefits", "income", "benefit-eligibility")


def consent(
    id: str = "c-1",
    grantee: str = "family-benefits",
    categories: tuple[str, ...] = ("income",),
    purposes: tuple[str, ...] = ("benefit-eligibility",),
    valid_from: datetime = NOW - timedelta(days=1),
    valid_until: datetime | None = NOW + timedelta(days=30),
    withdrawn_at: datetime | None = None,
    created: datetime = NOW - timedelta(days=1),
) -> Consent:
    return Consent(
        id=id,
        subject=SUBJECT,
        representative=None,
        mandate=None,
        grantee=grantee,
        categories=categories,
        purposes=purposes,
        valid_from=valid_from,
        valid_until=valid_until,
        channel="portal",
        evidence="form",
        evidence_sha256=None,
        notice_version=None,
        created_at=created,
        created_by="citizen-portal",
        withdrawal=None if withdrawn_at is None else Ending(withdrawn_at, "citizen-portal", "portal"),
    )


def refusal(
    id: str = "f-1",
    agency: str = "family-benefits",
    categories: tuple[str, ...] | None = None,
    created: datetime = NOW - timedelta(days=1),
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
        created_at=created,
        created_by="admin-desk",
        lift=None if lifted_at is None else Ending(lifted_at, "admin-desk", "counter"),
    )


@pytest.mark.parametrize(
    ("given_consent", "covered"),
    [
        (consent(), True),
        (consent(grantee="*"), True),
        (consent(grantee="tax-authority"), False),
        (consent(categories=("civil-status", "income")), True),
        (consent(categories=("civil-status",)), False),
        (consent(purposes=("fraud-investigation",)), False),
        (consent(purposes=("fraud-investigation", "benefit-eligibility")), True),
        (consent(valid_until=None), True),  # open-ended: until withdrawn
        (consent(valid_from=NOW + timedelta(seconds=1)), False),  # pending
        (consent(valid_from=NOW), True),  # from valid_from on
        (consent(valid_until=NOW), False),  # the period is half-open: at valid_until it has ended
        (consent(valid_until=NOW + timedelta(microseconds=1)), True),
        (consent(withdrawn_at=NOW - timedelta(hours=1)), False),
        (consent(withdrawn_at=NOW), False),  # a withdrawal counts from its own instant
        (consent(withdrawn_at=NOW + timedelta(hours=1)), True),  # read as of a time before the withdrawal
    ],
)
def test_partial_coverage(given_consent: Consent, covered: bool) -> None:
    assert (covering_consent([given_consent], *ASK, NOW) is not None) is covered


def test_status_is_derived_from_the_facts_and_the_time() -> None:
    record = consent(valid_until=NOW + timedelta(days=1), withdrawn_at=NOW + timedelta(hours=2))
    assert record.status(NOW - timedelta(days=2)) == "pending"
    assert record.status(NOW) == "active"
    assert record.status(NOW + timedelta(hours=2)) == "withdrawn"  # a withdrawal beats the later expiry
    assert consent(valid_until=NOW).status(NOW) == "expired"
    assert record.grantor == SUBJECT and replace(record, representative="70010100155").grantor == "70010100155"


def test_the_most_specific_consent_is_used() -> None:
    wildcard = consent("c-any", grantee="*", created=NOW)
    broad = consent("c-broad", categories=("income", "civil-status"), created=NOW)
    many_purposes = consent("c-purposes", purposes=("benefit-eligibility", "fraud-investigation"), created=NOW)
    old = consent("c-old", created=NOW - timedelta(days=5))
    new = consent("c-new", created=NOW - timedelta(days=2))
    assert covering_consent([wildcard, broad, many_purposes, old, new], *ASK, NOW) == new
    assert covering_consent([wildcard, broad, many_purposes], *ASK, NOW) == many_purposes
    assert covering_consent([wildcard, broad], *ASK, NOW) == broad
    assert covering_consent([wildcard], *ASK, NOW) == wildcard


def test_a_withdrawn_specific_consent_falls_back_to_a_broader_one() -> None:
    named = consent("c-named", withdrawn_at=NOW - timedelta(minutes=1))
    wildcard = consent("c-any", grantee="*")
    assert covering_consent([named, wildcard], *ASK, NOW) == wildcard


@pytest.mark.parametrize(
    ("given_refusal", "blocks"),
    [
        (refusal(), True),  # everything
        (refusal(categories=("income",)), True),
        (refusal(categories=("civil-status",)), False),
        (refusal(agency="tax-authority"), False),
        (refusal(lifted_at=NOW - timedelta(seconds=1)), False),
        (refusal(lifted_at=NOW), False),
        (refusal(created=NOW + timedelta(seconds=1)), False),  # not yet made at that time
    ],
)
def test_refusal_scope(given_refusal: Refusal, blocks: bool) -> None:
    assert (blocking_refusal([given_refusal], "family-benefits", "income", NOW) is not None) is blocks


def test_the_oldest_active_refusal_is_named() -> None:
    first, second = refusal("f-1", created=NOW - timedelta(days=3)), refusal("f-2", categories=("income",))
    assert blocking_refusal([second, first], "family-benefits", "income", NOW) == first


NAMES = st.sampled_from(["income", "civil-status", "pension"])
PURPOSES = st.sampled_from(["benefit-eligibility", "fraud-investigation"])
CONSENTS = st.builds(
    consent,
    id=st.uuids().map(str),
    grantee=st.sampled_from(["family-benefits", "tax-authority", "*"]),
    categories=st.lists(NAMES, min_size=1, max_size=3, unique=True).map(tuple),
    purposes=st.lists(PURPOSES, min_size=1, max_size=2, unique=True).map(tuple),
    valid_from=st.integers(-3, 3).map(lambda days: NOW + timedelta(days=days)),
    valid_until=st.none() | st.integers(-2, 5).map(lambda days: NOW + timedelta(days=days)),
    withdrawn_at=st.none() | st.integers(-2, 2).map(lambda hours: NOW + timedelta(hours=hours)),
    created=st.integers(-5, 0).map(lambda days: NOW + timedelta(days=days)),
)


@given(consents=st.lists(CONSENTS, max_size=6))
def test_the_chosen_consent_covers_and_none_covering_is_more_specific(consents: list[Consent]) -> None:
    chosen = covering_consent(consents, *ASK, NOW)
    covering = [
        c
        for c in consents
        if c.status(NOW) == "active"
        and c.grantee in ("family-benefits", "*")
        and "income" in c.categories
        and "benefit-eligibility" in c.purposes
    ]
    assert (chosen is None) == (not covering)
    if chosen is not None:
        assert chosen in covering
        assert all(specificity(other) <= specificity(chosen) for other in covering)
