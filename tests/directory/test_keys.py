"""Key registrations and revocations, pure: what a registration must hold and what it is refused for, the
canonical form of a public key, when a rotation retires the keys it replaces, and a key's JSON form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from broker.base.signing import generate_key, public_key_pem
from directory.keys import (
    MAX_OVERLAP_S,
    KeyInvalid,
    KeyRecord,
    canonical_pem,
    parse_key_id,
    parse_registration,
    parse_revocation,
    retirement,
)

AT = datetime(2026, 11, 22, 12, tzinfo=UTC)
PEM = public_key_pem(generate_key().public_key())


def _registration(**fields: Any) -> dict[str, Any]:
    return {"key_id": "family-benefits-2", "public_key_pem": PEM, **fields}


def test_a_minimal_registration_starts_now_and_never_ends() -> None:
    registration = parse_registration(_registration(), AT)
    assert registration.key_id == "family-benefits-2"
    assert registration.public_key_pem == PEM
    assert (registration.valid_from, registration.valid_until, registration.overlap) == (AT, None, None)


def test_a_full_registration_in_utc() -> None:
    registration = parse_registration(
        _registration(
            valid_from="2026-12-01T01:00:00+01:00", valid_until="2027-12-01T00:00:00Z", overlap_s=MAX_OVERLAP_S
        ),
        AT,
    )
    assert registration.valid_from == datetime(2026, 12, 1, tzinfo=UTC)
    assert registration.valid_from.utcoffset() == timedelta(0)
    assert registration.valid_until == datetime(2027, 12, 1, tzinfo=UTC)
    assert registration.overlap == timedelta(seconds=MAX_OVERLAP_S)
    assert parse_registration(_registration(overlap_s=0), AT).overlap == timedelta(0)  # a rotation ending the rest now


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"colour": "blue"}, "unknown fields: colour"),
        ({"key_id": None}, "key_id"),
        ({"public_key_pem": None}, "public_key_pem"),
        ({"valid_from": "2026-12-01T00:00:00"}, "time zone"),
        ({"valid_from": "next tuesday"}, "RFC 3339"),
        ({"valid_from": 1764547200}, "RFC 3339"),
        ({"valid_from": "2026-12-01T00:00:00Z" + " " * 64}, "RFC 3339"),
        ({"valid_from": "1969-12-31T23:59:59Z"}, "between 1970 and 9998"),
        ({"valid_until": "9999-06-01T00:00:00Z"}, "between 1970 and 9998"),
        ({"valid_until": "9999-12-31T23:00:00-02:00"}, "out of range"),
        ({"valid_until": "2026-11-22T12:00:00Z"}, "valid_until must be in the future"),  # ends as it starts
        ({"valid_until": "2026-11-01T00:00:00Z"}, "valid_until must be in the future"),
        ({"valid_from": "2027-01-01T00:00:00Z", "valid_until": "2026-12-01T00:00:00Z"}, "after valid_from"),
        ({"overlap_s": -1}, "overlap_s"),
        ({"overlap_s": MAX_OVERLAP_S + 1}, "overlap_s"),
        ({"overlap_s": 60.0}, "overlap_s"),
        ({"overlap_s": True}, "overlap_s"),
        ({"overlap_s": "60"}, "overlap_s"),
    ],
)
def test_an_incomplete_or_inconsistent_registration_is_refused(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(KeyInvalid, match=reason):
        parse_registration(_registration(**change), AT)


@pytest.mark.parametrize("key_id", ["a", "family-benefits-2026", "ops.key:1_A", "9" + "x" * 127])
def test_key_ids(key_id: str) -> None:
    assert parse_key_id(key_id) == key_id


@pytest.mark.parametrize("key_id", ["", "-leading", ".leading", "with space", "slash/ed", "x" * 129, 7, None])
def test_key_ids_refused(key_id: object) -> None:
    with pytest.raises(KeyInvalid, match="key_id"):
        parse_key_id(key_id)


def test_a_public_key_is_kept_in_its_canonical_pem() -> None:
    assert canonical_pem(PEM) == PEM
    assert canonical_pem(PEM.replace("\n", "\r\n")) == PEM


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"-----BEGIN PUBLIC KEY-----",
        "not a key",
        PEM[:-40] + "\n-----END PUBLIC KEY-----\n",
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        PEM + " " * 400,
    ],
    ids=["none", "bytes", "text", "truncated", "not-ed25519", "too-long"],
)
def test_anything_but_an_ed25519_public_key_is_refused(value: object) -> None:
    with pytest.raises(KeyInvalid, match="public_key_pem"):
        canonical_pem(value)


def test_a_revocation_gives_its_reason() -> None:
    assert parse_revocation({"reason": "laptop stolen"}) == "laptop stolen"


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({}, "needs its reason"),
        ({"reason": "   "}, "needs its reason"),
        ({"reason": 42}, "needs its reason"),
        ({"reason": "x" * 1001}, "needs its reason"),
        ({"reason": "lost", "by": "someone"}, "unknown fields: by"),
    ],
)
def test_a_revocation_without_a_usable_reason_is_refused(document: dict[str, Any], reason: str) -> None:
    with pytest.raises(KeyInvalid, match=reason):
        parse_revocation(document)


def test_a_rotation_ends_an_open_or_a_later_key_after_the_overlap_and_leaves_a_sooner_end() -> None:
    overlap = timedelta(hours=1)
    assert retirement(None, AT, overlap) == AT + overlap
    assert retirement(AT + timedelta(days=1), AT, overlap) == AT + overlap
    assert retirement(AT + overlap, AT, overlap) is None
    assert retirement(AT + timedelta(minutes=5), AT, overlap) is None
    assert retirement(None, AT, timedelta(0)) == AT  # no overlap: the replaced keys end now


@given(
    current_until=st.none() | st.datetimes(timezones=st.just(UTC)),
    at=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)),
    overlap_s=st.integers(0, MAX_OVERLAP_S),
)
def test_a_retired_key_ends_at_the_sooner_of_its_end_and_the_overlaps(
    current_until: datetime | None, at: datetime, overlap_s: int
) -> None:
    end = at + timedelta(seconds=overlap_s)
    new_end = retirement(current_until, at, timedelta(seconds=overlap_s))
    effective = current_until if new_end is None else new_end
    assert effective == (end if current_until is None else min(current_until, end))


def test_a_keys_json_form_says_whether_it_authenticates_then() -> None:
    record = KeyRecord(
        "family-benefits-1",
        "agency",
        "family-benefits",
        PEM,
        AT,
        AT + timedelta(days=30),
        "active",
        None,
        None,
        None,
    )
    assert record.as_json(AT) == {
        "key_id": "family-benefits-1",
        "principal_id": "family-benefits",
        "public_key_pem": PEM,
        "use": "sign",
        "valid_from": "2026-11-22T12:00:00Z",
        "valid_until": "2026-12-22T12:00:00Z",
        "status": "active",
        "valid": True,
        "revoked_at": None,
        "revoked_by": None,
        "revocation_reason": None,
    }
    assert not record.as_json(AT - timedelta(seconds=1))["valid"]
    assert not record.as_json(AT + timedelta(days=30))["valid"]
    revoked = KeyRecord(
        "family-benefits-1",
        "agency",
        "family-benefits",
        PEM,
        AT,
        None,
        "revoked",
        AT + timedelta(hours=1),
        "admin-desk",
        "laptop stolen",
    )
    document = revoked.as_json(AT + timedelta(hours=2))
    assert (document["valid"], document["valid_until"], document["revoked_at"]) == (False, None, "2026-11-22T13:00:00Z")
    assert (document["revoked_by"], document["revocation_reason"]) == ("admin-desk", "laptop stolen")


def test_the_sealing_key_in_force_is_the_newest_valid_one() -> None:
    from directory.store import SealingKey, sealing_key_in_force

    now = datetime(2026, 12, 3, tzinfo=UTC)
    old = SealingKey("old", "AA", now - timedelta(days=400), now + timedelta(days=1))
    new = SealingKey("new", "BB", now - timedelta(hours=1), None)
    later = SealingKey("later", "CC", now + timedelta(days=2), None)
    assert sealing_key_in_force([old, new, later], now) == new  # during the overlap, the new one
    assert sealing_key_in_force([old, later], now) == old
    assert sealing_key_in_force([old, new], now + timedelta(days=1)) == new
    assert sealing_key_in_force([later], now) is None


def test_a_sealing_key_is_an_x25519_key_and_a_signing_key_an_ed25519_one() -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from adapters.sealing import sealing_public_pem

    now = datetime(2026, 12, 3, tzinfo=UTC)
    x25519 = sealing_public_pem(X25519PrivateKey.generate())
    registration = parse_registration({"key_id": "fb-seal", "public_key_pem": x25519, "use": "seal"}, now)
    assert (registration.use, registration.public_key_pem) == ("seal", x25519)
    assert (
        parse_registration({"key_id": "k", "public_key_pem": public_key_pem(generate_key().public_key())}, now).use
        == "sign"
    )
    for document in (
        {"key_id": "k", "public_key_pem": x25519},
        {"key_id": "k", "public_key_pem": public_key_pem(generate_key().public_key()), "use": "seal"},
        {"key_id": "k", "public_key_pem": x25519, "use": "both"},
    ):
        with pytest.raises(KeyInvalid):
            parse_registration(document, now)
