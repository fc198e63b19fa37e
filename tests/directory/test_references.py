"""The pure reading and folding of directory declarations: a body or an import line read into a Declaration (or
refused, saying why), what the registry refuses, the newest declaration of each reference as of any moment, and
whether a reference is in force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from directory.references import (
    Declaration,
    DeclarationInvalid,
    Kind,
    Stated,
    in_force,
    parse_declaration,
    parse_moment,
    refusal,
    rfc3339,
    standing,
)

AT = datetime(2026, 11, 22, 12, tzinfo=UTC)
DAY = timedelta(days=1)
ANNA = "85073003328"

subjects = st.from_regex(r"[0-9A-Za-z.-]{1,64}", fullmatch=True)
names = st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True)
kinds = st.sampled_from(["relationship", "holding"])
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda moment: moment.replace(microsecond=0)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))


def body(kind: Kind, subject: str, name: str, start: datetime, end: datetime | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "subject": subject,
        "capacity" if kind == "relationship" else "category": name,
        "from": start.isoformat(),
    }
    if end is not None:
        document["until"] = end.isoformat()
    return document


# --- reading a declaration ------------------------------------------------------------------------------------


@given(kinds, subjects, names, moments, st.none() | st.integers(min_value=1, max_value=10**6), offsets)
def test_a_valid_body_is_read_as_written_and_its_json_reads_back_the_same(
    kind: Kind, subject: str, name: str, start: datetime, seconds: int | None, offset: timezone
) -> None:
    end = None if seconds is None else start + timedelta(seconds=seconds)
    document = body(kind, subject, name, start.astimezone(offset), None if end is None else end.astimezone(offset))
    declaration = parse_declaration(document, "family-benefits", kind)
    assert declaration == Declaration(kind, "family-benefits", subject, name, start, end)
    assert declaration.valid_from.tzinfo is UTC  # whatever offset it was written with
    written = declaration.as_json()
    assert (written["kind"], written["agency"]) == (kind, "family-benefits")
    line = {key: value for key, value in written.items() if key != "agency" and value is not None}
    assert parse_declaration(line, "family-benefits") == declaration  # an import line: it names its kind


@given(kinds, st.dictionaries(st.text(min_size=1, max_size=10), st.just("x"), min_size=1))
def test_any_unknown_field_is_refused(kind: Kind, extra: dict[str, str]) -> None:
    known = {"subject", "from", "until", "capacity" if kind == "relationship" else "category"}
    extra = {key: value for key, value in extra.items() if key not in known}
    assume(extra)
    with pytest.raises(DeclarationInvalid, match="unknown fields"):
        parse_declaration({**body(kind, ANNA, "income", AT), **extra}, "family-benefits", kind)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "a reference is a JSON object"),
        ({**body("holding", ANNA, "income", AT), "agency": "tax-authority"}, "unknown fields for a holding: agency"),
        ({**body("holding", ANNA, "income", AT), "capacity": "x"}, "unknown fields for a holding: capacity"),
        (body("holding", "85 07", "income", AT), "subject must be"),
        (body("holding", "8" * 65, "income", AT), "subject must be"),
        ({"category": "income", "from": AT.isoformat()}, "subject must be"),
        (body("holding", ANNA, "Income", AT), "category must be a name"),
        ({"subject": ANNA, "category": "income"}, "from is required"),
        ({**body("holding", ANNA, "income", AT), "from": "yesterday"}, "from must be an RFC 3339"),
        ({**body("holding", ANNA, "income", AT), "from": 1767225600}, "from must be an RFC 3339"),
        ({**body("holding", ANNA, "income", AT), "from": "2026-11-22T12:00:00"}, "from needs a time zone"),
        (body("holding", ANNA, "income", AT, AT), "until must be later than from"),
        (body("holding", ANNA, "income", AT, AT - DAY), "until must be later than from"),
    ],
)
def test_a_body_that_is_not_a_holding_is_refused_saying_why(document: object, reason: str) -> None:
    with pytest.raises(DeclarationInvalid, match=reason):
        parse_declaration(document, "family-benefits", "holding")


def test_an_import_line_names_its_kind() -> None:
    line = {"kind": "relationship", **body("relationship", ANNA, "beneficiary", AT)}
    assert parse_declaration(line, "family-benefits").kind == "relationship"
    with pytest.raises(DeclarationInvalid, match="kind must be"):
        parse_declaration({**line, "kind": "consent"}, "family-benefits")
    with pytest.raises(DeclarationInvalid, match="kind must be"):
        parse_declaration(body("relationship", ANNA, "beneficiary", AT), "family-benefits")


def test_moments_are_rfc_3339_with_an_offset_read_as_utc() -> None:
    assert parse_moment(None, "at") is None
    assert parse_moment("2026-11-22T13:00:00+01:00", "at") == AT
    assert parse_moment("2026-11-22T12:00:00Z", "at") == AT
    assert rfc3339(AT) == "2026-11-22T12:00:00Z"
    with pytest.raises(DeclarationInvalid, match="at needs a time zone offset"):
        parse_moment("2026-11-22T12:00:00", "at")
    with pytest.raises(DeclarationInvalid, match="as_of is out of range"):
        parse_moment("0001-01-01T00:00:00+14:00", "as_of")


# --- what the registry refuses ----------------------------------------------------------------------------------


def test_the_registry_refuses_unknown_owners_names_and_periods_that_end_before_they_start() -> None:
    agencies, capacities = {"family-benefits"}, {"beneficiary"}
    good = Declaration("relationship", "family-benefits", ANNA, "beneficiary", AT)
    assert refusal(good, agencies, capacities) is None
    assert refusal(Declaration("relationship", "tax-office", ANNA, "beneficiary", AT), agencies, capacities) == (
        "agency 'tax-office' is not an active registered agency"
    )
    assert refusal(Declaration("relationship", "family-benefits", ANNA, "patient", AT), agencies, capacities) == (
        "capacity 'patient' is not registered"
    )
    assert refusal(Declaration("holding", "family-benefits", ANNA, "income", AT), agencies, {"civil-status"}) == (
        "category 'income' is not registered"
    )
    assert refusal(Declaration("relationship", "family-benefits", "", "beneficiary", AT), agencies, capacities)
    ended = Declaration("relationship", "family-benefits", ANNA, "beneficiary", AT, AT)
    assert refusal(ended, agencies, capacities) == "until must be later than from: a period cannot end before it starts"


# --- folding declarations -------------------------------------------------------------------------------------

# Declarations of a few references, so that the same reference is declared again often.
stated_lists = st.lists(
    st.builds(
        lambda owner, name, start, end, declared: Stated(
            Declaration("relationship", owner, ANNA, name, AT + start * DAY, None if end is None else AT + end * DAY),
            AT + declared * DAY,
            owner,
        ),
        st.sampled_from(["family-benefits", "tax-authority"]),
        st.sampled_from(["beneficiary", "employee"]),
        st.integers(0, 2),
        st.none() | st.integers(3, 5),
        st.integers(0, 9),
    ),
    max_size=30,
)


@given(stated_lists, st.none() | st.integers(0, 9).map(lambda days: AT + days * DAY))
def test_standing_is_the_last_declaration_of_each_reference_recorded_by_then(
    stated: list[Stated], as_of: datetime | None
) -> None:
    folded = standing(stated, as_of)
    recorded = [item for item in stated if as_of is None or item.declared_at <= as_of]
    assert {item.declaration.reference for item in folded} == {item.declaration.reference for item in recorded}
    for item in folded:
        assert item == [other for other in recorded if other.declaration.reference == item.declaration.reference][-1]
    firsts = list(dict.fromkeys(item.declaration.reference for item in recorded))
    assert [item.declaration.reference for item in folded] == firsts  # in the order they were first declared
    assert standing(folded, as_of) == folded


@given(moments, st.none() | st.integers(1, 10**6), st.integers(-(10**6), 2 * 10**6))
def test_a_reference_is_in_force_from_its_start_until_before_its_end(
    start: datetime, seconds: int | None, probe: int
) -> None:
    end = None if seconds is None else start + timedelta(seconds=seconds)
    declaration = Declaration("holding", "tax-authority", ANNA, "income", start, end)
    at = start + timedelta(seconds=probe)
    assert in_force(declaration, at) == (start <= at and (end is None or at < end))
    assert in_force(declaration, start)
    assert end is None or not in_force(declaration, end)
