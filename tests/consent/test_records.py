"""Consent and refusal requests, pure: PROTOCOL.md's shape still works, the optional fields take their
documented defaults, and anything incomplete or inconsistent is refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent.service import ConsentInvalid, default_channel, parse_consent, parse_refusal

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
PROTOCOL = {
    "subject": "85073003328",
    "grantee": "family-benefits",
    "categories": ["income"],
    "purposes": ["benefit-eligibility"],
    "valid_from": "2026-11-01T00:00:00+00:00",
    "valid_until": "2027-11-01T00:00:00+01:00",
    "evidence": "form 2026/0412",
}


def test_protocol_shape_with_defaults() -> None:
    consent = parse_consent(PROTOCOL, NOW, "citizen-portal", default_channel("citizen_portal"))
    assert consent.grantor == consent.subject == "85073003328" and consent.representative is None
    assert (consent.channel, consent.evidence_sha256, consent.notice_version) == ("portal", None, None)
    assert consent.valid_from == datetime(2026, 11, 1, tzinfo=UTC)
    assert consent.valid_until == datetime(2027, 10, 31, 23, tzinfo=UTC)
    assert consent.valid_until.utcoffset() == timedelta(0)  # answered in UTC, as read back from the store
    assert (consent.created_at, consent.created_by, consent.withdrawal) == (NOW, "citizen-portal", None)
    assert default_channel("admin") == "counter"


def test_minimal_consent_starts_now_and_lasts_until_withdrawn() -> None:
    minimal = {key: PROTOCOL[key] for key in ("subject", "grantee", "categories", "purposes", "evidence")}
    consent = parse_consent(minimal, NOW, "admin-desk", "counter")
    assert (consent.valid_from, consent.valid_until, consent.status(NOW)) == (NOW, None, "active")


def test_every_optional_field() -> None:
    document = {
        **PROTOCOL,
        "grantor": "60010100123",
        "mandate": "guardianship, court order 2025/118",
        "channel": "paper",
        "evidence_sha256": SHA,
        "notice_version": "2026-1",
    }
    consent = parse_consent(document, NOW, "admin-desk", "counter")
    assert (consent.grantor, consent.representative, consent.mandate) == (
        "60010100123",
        "60010100123",
        "guardianship, court order 2025/118",
    )
    assert (consent.channel, consent.evidence_sha256, consent.notice_version) == ("paper", SHA, "2026-1")
    # naming the subject as grantor is the same as leaving it out
    assert parse_consent({**PROTOCOL, "grantor": PROTOCOL["subject"]}, NOW, "x", "portal").representative is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"subject": None}, "subject"),
        ({"subject": "85 07"}, "subject"),
        ({"grantee": "Family Benefits"}, "grantee"),
        ({"categories": []}, "categories"),
        ({"categories": ["income", "income"]}, "twice"),
        ({"purposes": "benefit-eligibility"}, "purposes"),
        ({"evidence": ""}, "evidence"),
        ({"evidence": "x" * 501}, "evidence"),
        ({"evidence_sha256": SHA.upper()}, "evidence_sha256"),
        ({"evidence_sha256": SHA[:-1]}, "evidence_sha256"),
        ({"notice_version": "v 1"}, "notice_version"),
        ({"channel": "unrecorded"}, "channel"),
        ({"channel": "carrier-pigeon"}, "channel"),
        ({"valid_until": "2026-10-01T00:00:00+00:00"}, "after valid_from"),
        ({"valid_until": "2026-11-01T00:00:00+00:00"}, "after valid_from"),  # an empty period
        ({"valid_from": "2026-01-01T00:00:00+00:00", "valid_until": "2026-06-01T00:00:00+00:00"}, "future"),
        ({"valid_until": "2027-11-01"}, "time zone"),
        ({"valid_from": "yesterday"}, "RFC 3339"),
        ({"grantor": "60010100123"}, "mandate"),  # a representative must name their mandate
        ({"mandate": "guardianship"}, "mandate"),  # a mandate without a representative
        ({"more": 1}, "unknown fields: more"),
    ],
)
def test_invalid_consents_are_refused(change: dict[str, Any], reason: str) -> None:
    document = {key: value for key, value in {**PROTOCOL, **change}.items() if value is not None}
    with pytest.raises(ConsentInvalid, match=reason):
        parse_consent(document, NOW, "citizen-portal", "portal")


def test_missing_fields_are_named() -> None:
    with pytest.raises(ConsentInvalid, match="missing fields: evidence, grantee"):
        parse_consent({"subject": "1", "categories": ["income"], "purposes": ["p"]}, NOW, "x", "portal")


def test_refusals() -> None:
    everything = parse_refusal({"subject": "90021512345", "agency": "family-benefits"}, NOW, "admin-desk", "counter")
    assert (everything.categories, everything.channel, everything.status(NOW)) == (None, "counter", "active")
    some = parse_refusal(
        {"subject": "90021512345", "agency": "tax-authority", "categories": ["income"], "channel": "phone"},
        NOW,
        "citizen-portal",
        "portal",
    )
    assert (some.categories, some.channel, some.created_at) == (("income",), "phone", NOW)
    for bad in (
        {"subject": "90021512345", "agency": "*"},  # a refusal names its agency
        {"subject": "90021512345"},
        {"subject": "90021512345", "agency": "tax-authority", "categories": []},
        {"subject": "90021512345", "agency": "tax-authority", "purposes": ["p"]},
    ):
        with pytest.raises(ConsentInvalid):
            parse_refusal(bad, NOW, "x", "portal")
