"""Audit searches as privacy officers ask them: exact filters, an RFC 3339 time range, and an opaque cursor
that resumes a listing after the last record of the previous page. Pure parsing; broker/audit/log.py runs them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from broker.audit.chain import timestamp
from broker.base import errors

FILTERS = ("subject", "requester", "holder", "category", "purpose", "zone", "outcome", "kind")
PARAMETERS = (*FILTERS, "since", "until", "cursor", "limit", "order")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DURATION = re.compile(r"([0-9]{1,6})([mhdw])")  # `90d`: that long before now
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Cursor:
    """Where a listing stopped: the (at, seq) of the last record it returned."""

    at: datetime
    seq: int

    def encode(self) -> str:
        raw = json.dumps([timestamp(self.at), self.seq], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            at, seq = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            moment = datetime.fromisoformat(at)
        except (binascii.Error, ValueError, TypeError) as error:
            raise errors.Invalid("cursor is not one this hub returned") from error
        if not isinstance(seq, int) or moment.tzinfo is None:
            raise errors.Invalid("cursor is not one this hub returned")
        return cls(moment, seq)


@dataclass(frozen=True)
class AuditQuery:
    """Records matching every filter, with since <= at < until, in (at, seq) order after `after`."""

    filters: Mapping[str, str] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None
    after: Cursor | None = None
    limit: int = DEFAULT_LIMIT
    newest_first: bool = False


def parse_query(params: Mapping[str, str], allowed: tuple[str, ...] = PARAMETERS) -> AuditQuery:
    """An AuditQuery from URL query parameters; raises `invalid` naming what is wrong."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise errors.Invalid(f"unknown query parameters: {', '.join(unknown)}")
    filters = {name: params[name] for name in FILTERS if name in params}
    for name, value in filters.items():
        if not 0 < len(value) <= 128:
            raise errors.Invalid(f"{name} must be 1 to 128 characters")
    since, until = rfc3339(params.get("since"), "since"), rfc3339(params.get("until"), "until")
    if since is not None and until is not None and until <= since:
        raise errors.Invalid("until must be later than since")
    order = params.get("order", "asc")
    if order not in ("asc", "desc"):
        raise errors.Invalid("order must be asc or desc")
    cursor = params.get("cursor")
    return AuditQuery(
        filters,
        since,
        until,
        None if cursor is None else Cursor.decode(cursor),
        page_size(params.get("limit")),
        order == "desc",
    )


def page_size(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= MAX_LIMIT:
        raise errors.Invalid(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def rfc3339(text: str | None, name: str) -> datetime | None:
    """An RFC 3339 date-time with its offset (`2026-11-23T10:00:00Z`); None when absent."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise errors.Invalid(f"{name} must be an RFC 3339 date-time, e.g. 2026-11-23T10:00:00Z") from error
    if moment.tzinfo is None or "T" not in text.upper():
        raise errors.Invalid(f"{name} must be an RFC 3339 date-time with a time zone offset")
    try:
        return moment.astimezone(UTC)
    except OverflowError as error:  # e.g. year 1 at +14:00 lies before the first representable instant
        raise errors.Invalid(f"{name} is out of range") from error


def moment(text: str, name: str, now: datetime) -> datetime:
    """An RFC 3339 date-time, or a duration before `now` (`90d`, `12w`, `24h`, `30m`)."""
    duration = DURATION.fullmatch(text.strip())
    if duration is not None:
        return now - timedelta(**{UNITS[duration[2]]: int(duration[1])})
    try:
        parsed = rfc3339(text.strip(), name)
    except errors.Invalid as error:
        raise errors.Invalid(
            f"{name} must be an RFC 3339 date-time (2026-01-01T00:00:00Z) or a duration before now (90d, 12w, 24h)"
        ) from error
    assert parsed is not None  # noqa: S101 -- rfc3339 gives None for None only; for the type checker
    return parsed
