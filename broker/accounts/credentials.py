"""Operators' console accounts as decisions: Argon2id password hashes, the sign-in lock-out, how long a
session lives, and the random tokens a session and its forms carry. Pure functions (hashing is CPU-bound:
callers on the event loop run it in a thread).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

CONSOLE_ROLES = ("admin", "privacy_officer")  # the roles that sign in to the console; others use the API
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # Argon2 takes any length; a bound keeps a hostile form from costing more than a login


@dataclass(frozen=True)
class LockOut:
    """How failed sign-ins lock an operator id out, from one peer address only: a stranger who knows an id locks
    out their own address, never the operator's."""

    failures: int = 5  # failed sign-ins of one operator id from one address since its last success...
    first: timedelta = timedelta(minutes=1)  # ...lock that pair this long, twice as long after each failure after
    longest: timedelta = timedelta(hours=12)  # (the doubling stops here)
    remembered: timedelta = timedelta(days=1)  # a failure older than this no longer counts


@dataclass(frozen=True)
class Lifetime:
    idle: timedelta = timedelta(minutes=30)  # a session unused this long is closed
    absolute: timedelta = timedelta(hours=12)  # and every session after this long, used or not
    touch_every: timedelta = timedelta(minutes=1)  # how often a request records that the session is in use


def _hasher() -> PasswordHasher:
    """Argon2id with argon2-cffi's defaults (RFC 9106's second recommended profile)."""
    return PasswordHasher()


def password_problem(password: str) -> str | None:
    """Why a password cannot be set, or None."""
    if len(password) < MIN_PASSWORD:
        return f"a console password has at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a console password has at most {MAX_PASSWORD} characters"
    return None


def hash_password(password: str) -> str:
    return _hasher().hash(password)


@dataclass(frozen=True)
class Checked:
    ok: bool
    rehash: bool  # the hash was made with weaker parameters than today's: store a new one


def check_password(stored: str | None, password: str) -> Checked:
    """Whether `password` matches `stored`; with no stored hash (unknown operator, no password set) the work
    is done against a decoy hash, so the answer takes as long either way."""
    hasher = _hasher()
    try:
        hasher.verify(stored or _decoy(), password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return Checked(False, False)
    if stored is None:  # the decoy's password is random: nobody types it, but never let it in
        return Checked(False, False)
    return Checked(True, hasher.check_needs_rehash(stored))


@cache
def _decoy() -> str:
    return _hasher().hash(secrets.token_urlsafe(32))


def locked_until(failures: Sequence[datetime], now: datetime, policy: LockOut) -> datetime | None:
    """When the lock on an (operator id, peer address) pair ends, given that pair's failed sign-ins since its last
    success, or None if it is not locked. From the `policy.failures`-th failure remembered on, the pair is locked
    for `policy.first` after its last failure, doubled for each failure beyond (a try while locked is refused
    unchecked, so it counts for nothing), up to `policy.longest`."""
    recent = sorted(at for at in failures if now - policy.remembered < at <= now)
    if len(recent) < policy.failures:
        return None
    doublings = min(len(recent) - policy.failures, 32)  # enough to pass any `longest`, small enough to compute
    until = recent[-1] + min(policy.first * 2**doublings, policy.longest)
    return until if until > now else None


def session_alive(created_at: datetime, seen_at: datetime, now: datetime, lifetime: Lifetime) -> bool:
    return now - seen_at < lifetime.idle and now - created_at < lifetime.absolute


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_id(token: str) -> str:
    """What the store keeps of a session token: its SHA-256, so a copy of the store opens no session."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(expected: str, given: str | None) -> bool:
    return given is not None and secrets.compare_digest(expected.encode(), given.encode())
