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
    failures: int = 5  # failed sign-ins of one operator id...
    window: timedelta = timedelta(minutes=15)  # ...within this long lock it for the rest of the window


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
    """When an operator id's lock-out ends, given its failed sign-ins, or None if it is not locked: locked
    while `policy.failures` of them fall within the last `policy.window`."""
    recent = sorted(at for at in failures if now - policy.window < at <= now)
    if len(recent) < policy.failures:
        return None
    return recent[-policy.failures] + policy.window


def session_alive(created_at: datetime, seen_at: datetime, now: datetime, lifetime: Lifetime) -> bool:
    return now - seen_at < lifetime.idle and now - created_at < lifetime.absolute


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_id(token: str) -> str:
    """What the store keeps of a session token: its SHA-256, so a copy of the store opens no session."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(expected: str, given: str | None) -> bool:
    return given is not None and secrets.compare_digest(expected.encode(), given.encode())
