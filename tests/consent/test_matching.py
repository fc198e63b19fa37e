"""Consent matching: partial coverage by grantee, category, purpose and time; withdrawal; specificity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consent.matching import Consent, covering_consent
from consent.service import ConsentInvalid, parse_consent

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def consent(
    id: str = "c-1",
    grantee: str = "family-benefits",
    categories: tuple[str, ...] = ("income",),
    purposes: tuple[str, ...] = ("benefit-eligibility",),
    days: int = 30,
    withdrawn: bool = False,
    created: datetime = NOW - timedelta(days=1),
) -> Consent:
    return Consent(
        id,
        "85073003328",
        grantee,
        categories,
        purposes,
        NOW - timedelta(days=1),
        NOW + timedelta(days=days),
        "form",
        created,
        NOW - timedelta(hours=1) if withdrawn else None,
    )


@pytest.mark.parametrize(
    ("given", "covered"),
    [
        (consent(), True),
        (consent(grantee="*"), True),
        (consent(grantee="tax-authority"), False),
        (consent(categories=("civil-status",)), False),
        (consent(purposes=("fraud-investigation",)), False),
        (consent(withdrawn=True), False),
        (consent(days=0), False),  # valid_until == now: the period is half-open, so it has ended
    ],
)
def test_partial_coverage(given: Consent, covered: bool) -> None:
    found = covering_consent([given], "family-benefits", "income", "benefit-eligibility", NOW)
    assert (found is not None) is covered


def test_named_grantee_beats_wildcard_then_newest() -> None:
    wildcard = consent("c-any", grantee="*", created=NOW)
    named_old = consent("c-old", created=NOW - timedelta(days=5))
    named_new = consent("c-new", created=NOW - timedelta(days=2))
    assert (
        covering_consent(
            [wildcard, named_old, named_new], "family-benefits", "income", "benefit-eligibility", NOW
        )
        == named_new
    )


@pytest.mark.parametrize(
    "document",
    [
        {"grantee": "x", "categories": ["income"], "purposes": ["p"], "evidence": "e"},
        {"subject": "s", "grantee": "x", "categories": [], "purposes": ["p"], "evidence": "e"},
        {"subject": "s", "grantee": "x", "categories": ["income"], "purposes": ["p"], "evidence": ""},
        {
            "subject": "s",
            "grantee": "x",
            "categories": ["income"],
            "purposes": ["p"],
            "evidence": "e",
            "valid_from": "2026-12-01T00:00:00+00:00",
            "valid_until": "2026-11-01T00:00:00+00:00",
        },
        {
            "subject": "s",
            "grantee": "x",
            "categories": ["income"],
            "purposes": ["p"],
            "evidence": "e",
            "valid_until": "2026-12-01",
        },
        {
            "subject": "s",
            "grantee": "x",
            "categories": ["income"],
            "purposes": ["p"],
            "evidence": "e",
            "more": 1,
        },
    ],
)
def test_invalid_consents_are_refused(document: dict[str, object]) -> None:
    with pytest.raises(ConsentInvalid):
        parse_consent(document, NOW)
