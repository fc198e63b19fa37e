"""Agencies' keys as decisions: what a key registration must hold, and when a rotation retires the keys it
replaces. A key signs (Ed25519, `use` `sign`) or, an agency's only, receives sealed answers (X25519, `seal`); a
rotation retires the keys of its own use. Pure functions; directory/store.py writes what they decide.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from broker.base.signing import load_public_key, public_key_pem

KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_PEM = 400
MAX_OVERLAP_S = 90 * 86_400  # the longest two keys of one agency may both be valid during a rotation
MAX_REASON = 1000
REGISTRATION_FIELDS = {"key_id", "public_key_pem", "use", "valid_from", "valid_until", "overlap_s"}
USES = ("sign", "seal")


class KeyInvalid(ValueError):
    pass


@dataclass(frozen=True)
class KeyRegistration:
    """A new public key for a principal; with `overlap` set, a rotation: the principal's other keys stop
    being valid that long after `at` (or sooner, if they already end sooner)."""

    key_id: str
    public_key_pem: str  # canonical SubjectPublicKeyInfo PEM
    valid_from: datetime
    valid_until: datetime | None
    overlap: timedelta | None
    use: str = "sign"


@dataclass(frozen=True)
class KeyRecord:
    """A registered key as administrators see it: its public key, validity, status and any revocation."""

    key_id: str
    principal_kind: str
    principal_id: str
    public_key_pem: str
    valid_from: datetime
    valid_until: datetime | None
    status: str
    revoked_at: datetime | None
    revoked_by: str | None
    revocation_reason: str | None
    use: str = "sign"

    def as_json(self, at: datetime) -> dict[str, Any]:
        """The JSON form; `valid` says whether the key authenticates requests at `at`."""
        return {
            "key_id": self.key_id,
            "principal_id": self.principal_id,
            "public_key_pem": self.public_key_pem,
            "use": self.use,
            "valid_from": _timestamp(self.valid_from),
            "valid_until": None if self.valid_until is None else _timestamp(self.valid_until),
            "status": self.status,
            "valid": self.status == "active"
            and self.valid_from <= at
            and (self.valid_until is None or at < self.valid_until),
            "revoked_at": None if self.revoked_at is None else _timestamp(self.revoked_at),
            "revoked_by": self.revoked_by,
            "revocation_reason": self.revocation_reason,
        }


def canonical_pem(value: object, use: str = "sign") -> str:
    """The public key in `value` as canonical PEM (Ed25519 to sign, X25519 to seal), or KeyInvalid."""
    kind = "an Ed25519" if use == "sign" else "an X25519"
    if not isinstance(value, str) or len(value) > MAX_PEM:
        raise KeyInvalid(f"public_key_pem must be {kind} public key in PEM, at most {MAX_PEM} characters")
    try:
        if use == "sign":
            return public_key_pem(load_public_key(value))
        key = load_pem_public_key(value.encode())
        if not isinstance(key, X25519PublicKey):
            raise ValueError("not X25519")
        return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    except ValueError as error:
        raise KeyInvalid(f"public_key_pem is not {kind} public key in PEM (SubjectPublicKeyInfo)") from error


def parse_key_id(value: object) -> str:
    if not isinstance(value, str) or not KEY_ID.fullmatch(value):
        raise KeyInvalid("key_id must be 1 to 128 characters of [A-Za-z0-9._:-], starting with a letter or digit")
    return value


def parse_revocation(document: Mapping[str, Any]) -> str:
    """The reason a revocation must give (kept with the key)."""
    unknown = sorted(set(document) - {"reason"})
    if unknown:
        raise KeyInvalid(f"unknown fields: {', '.join(unknown)}")
    reason = document.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise KeyInvalid(f"a revocation needs its reason, at most {MAX_REASON} characters")
    return reason


def parse_registration(document: Mapping[str, Any], at: datetime) -> KeyRegistration:
    """A key registration from its JSON form, refusing anything incomplete, unknown or inconsistent."""
    unknown = sorted(set(document) - REGISTRATION_FIELDS)
    if unknown:
        raise KeyInvalid(f"unknown fields: {', '.join(unknown)}")
    valid_from = _time(document.get("valid_from"), "valid_from") or at
    valid_until = _time(document.get("valid_until"), "valid_until")
    if valid_until is not None and valid_until <= max(valid_from, at):
        raise KeyInvalid("valid_until must be in the future and after valid_from")
    overlap_s = document.get("overlap_s")
    overlap = None
    if overlap_s is not None:
        if type(overlap_s) is not int or not 0 <= overlap_s <= MAX_OVERLAP_S:
            raise KeyInvalid(f"overlap_s must be a whole number of seconds from 0 to {MAX_OVERLAP_S}")
        overlap = timedelta(seconds=overlap_s)
    use = document.get("use", "sign")
    if use not in USES:
        raise KeyInvalid("use is sign (an Ed25519 key) or seal (an X25519 key sealed answers are encrypted to)")
    return KeyRegistration(
        parse_key_id(document.get("key_id")),
        canonical_pem(document.get("public_key_pem"), use),
        valid_from,
        valid_until,
        overlap,
        use,
    )


def retirement(current_until: datetime | None, at: datetime, overlap: timedelta) -> datetime | None:
    """The new end of a key a rotation at `at` replaces: `at + overlap`, unless the key already ends sooner
    (None: leave it as it is)."""
    end = at + overlap
    return end if current_until is None or current_until > end else None


def _time(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise KeyInvalid(f"{name} must be an RFC 3339 date-time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise KeyInvalid(f"{name} must be an RFC 3339 date-time, e.g. 2026-11-23T10:00:00Z") from error
    if moment.tzinfo is None:
        raise KeyInvalid(f"{name} must carry a time zone offset")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError as error:
        raise KeyInvalid(f"{name} is out of range") from error
    if not 1970 <= moment.year < 9999:
        raise KeyInvalid(f"{name} must fall between 1970 and 9998")
    return moment


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
