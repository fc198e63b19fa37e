"""Giving and withdrawing consents, recording and lifting refusals, reading a subject's history, and counting
emergency accesses: validation of each request against the registered vocabulary, then the store.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from broker.base.store.plans import Plan
from consent.matching import Consent, Ending, Refusal
from consent.store import ConsentStore
from directory.names import NAME, SUBJECT

# How a consent, withdrawal, refusal or lift was collected. `unrecorded` marks records made before the
# channel was kept; it is never accepted as input.
CHANNELS = ("portal", "counter", "paper", "phone", "mail")
# The channel assumed when a request names none: the citizen portal collects online, anyone else (an
# administrator, the command line, a world file) records what a person declared to staff.
PORTAL_CHANNEL, STAFF_CHANNEL = "portal", "counter"

CONSENT_REQUIRED = {"subject", "grantee", "categories", "purposes", "evidence"}
CONSENT_OPTIONAL = {"valid_from", "valid_until", "grantor", "mandate", "channel", "evidence_sha256", "notice_version"}
REFUSAL_REQUIRED = {"subject", "agency"}
REFUSAL_OPTIONAL = {"categories", "grantor", "mandate", "channel"}
SHA256 = re.compile(r"[0-9a-f]{64}")
NOTICE_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,62}")
MAX_EVIDENCE, MAX_MANDATE = 500, 200

Exists = Callable[[str], Awaitable[bool]]


class ConsentInvalid(ValueError):
    pass


def default_channel(role: str) -> str:
    return PORTAL_CHANNEL if role == "citizen_portal" else STAFF_CHANNEL


def parse_channel(value: object, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or value not in CHANNELS:
        raise ConsentInvalid(f"channel must be one of {', '.join(CHANNELS)}")
    return value


def parse_consent(document: dict[str, Any], at: datetime, by: str, channel: str) -> Consent:
    """A consent from its JSON form (PROTOCOL.md plus optional fields), refusing anything incomplete or
    inconsistent; `channel` is used when the document names none."""
    _fields(document, CONSENT_REQUIRED, CONSENT_OPTIONAL)
    subject, representative, mandate = _parties(document)
    grantee = document["grantee"]
    if not isinstance(grantee, str) or not (grantee == "*" or NAME.fullmatch(grantee)):
        raise ConsentInvalid("grantee must be an agency id or *")
    evidence, evidence_sha256 = document["evidence"], document.get("evidence_sha256")
    if not isinstance(evidence, str) or not evidence.strip() or len(evidence) > MAX_EVIDENCE:
        raise ConsentInvalid(f"evidence is a required reference of at most {MAX_EVIDENCE} characters")
    if evidence_sha256 is not None and (not isinstance(evidence_sha256, str) or not SHA256.fullmatch(evidence_sha256)):
        raise ConsentInvalid("evidence_sha256 must be the 64 lowercase hex digits of a SHA-256")
    notice_version = document.get("notice_version")
    if notice_version is not None and (
        not isinstance(notice_version, str) or not NOTICE_VERSION.fullmatch(notice_version)
    ):
        raise ConsentInvalid("notice_version must be 1 to 63 characters of [0-9A-Za-z._-]")
    valid_from = _time(document.get("valid_from"), "valid_from") or at
    valid_until = _time(document.get("valid_until"), "valid_until")
    if valid_until is not None and valid_until <= valid_from:
        raise ConsentInvalid("valid_until must be after valid_from")
    if valid_until is not None and valid_until <= at:
        raise ConsentInvalid("valid_until must be in the future")
    return Consent(
        id=str(uuid.uuid4()),
        subject=subject,
        representative=representative,
        mandate=mandate,
        grantee=grantee,
        categories=_names(document["categories"], "categories"),
        purposes=_names(document["purposes"], "purposes"),
        valid_from=valid_from,
        valid_until=valid_until,
        channel=parse_channel(document.get("channel"), channel),
        evidence=evidence,
        evidence_sha256=evidence_sha256,
        notice_version=notice_version,
        created_at=at,
        created_by=by,
    )


def parse_refusal(document: dict[str, Any], at: datetime, by: str, channel: str) -> Refusal:
    """A refusal from its JSON form; `categories` absent or null refuses everything."""
    _fields(document, REFUSAL_REQUIRED, REFUSAL_OPTIONAL)
    subject, representative, mandate = _parties(document)
    agency = document["agency"]
    if not isinstance(agency, str) or not NAME.fullmatch(agency):
        raise ConsentInvalid("agency must be an agency id: a refusal names the agency it refuses")
    categories = document.get("categories")
    return Refusal(
        id=str(uuid.uuid4()),
        subject=subject,
        representative=representative,
        mandate=mandate,
        agency=agency,
        categories=None if categories is None else _names(categories, "categories"),
        channel=parse_channel(document.get("channel"), channel),
        created_at=at,
        created_by=by,
    )


def _fields(document: dict[str, Any], required: set[str], optional: set[str]) -> None:
    unknown = sorted(set(document) - required - optional)
    if unknown:
        raise ConsentInvalid(f"unknown fields: {', '.join(unknown)}")
    missing = sorted(required - set(document))
    if missing:
        raise ConsentInvalid(f"missing fields: {', '.join(missing)}")


def _parties(document: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """The subject, the legal representative acting for them (None: the subject acts) and the mandate."""
    subject = document["subject"]
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise ConsentInvalid("subject must be 1 to 64 characters of [0-9A-Za-z.-]")
    grantor, mandate = document.get("grantor") or subject, document.get("mandate")
    if not isinstance(grantor, str) or not SUBJECT.fullmatch(grantor):
        raise ConsentInvalid("grantor must be 1 to 64 characters of [0-9A-Za-z.-]")
    if grantor == subject and mandate is not None:
        raise ConsentInvalid("a mandate is named only when a legal representative acts for the subject")
    if grantor != subject and (not isinstance(mandate, str) or not mandate.strip() or len(mandate) > MAX_MANDATE):
        raise ConsentInvalid(f"a legal representative must name their mandate, at most {MAX_MANDATE} characters")
    return subject, None if grantor == subject else grantor, mandate


def _names(value: object, name: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) and NAME.fullmatch(item) for item in value)
    ):
        raise ConsentInvalid(f"{name} must be a non-empty list of names")
    if len(set(value)) != len(value):
        raise ConsentInvalid(f"{name} lists a name twice")
    return tuple(value)


def _time(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConsentInvalid(f"{name} must be an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise ConsentInvalid(f"{name} must be an RFC 3339 timestamp") from error
    if parsed.tzinfo is None:
        raise ConsentInvalid(f"{name} needs a time zone offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as error:  # e.g. year 1 at +14:00 lies before the first representable instant
        raise ConsentInvalid(f"{name} is out of range") from error


class ConsentService:
    def __init__(
        self, store: ConsentStore, agency_exists: Exists, category_exists: Exists, purpose_exists: Exists
    ) -> None:
        self._store = store
        self._agency_exists = agency_exists
        self._category_exists = category_exists
        self._purpose_exists = purpose_exists

    async def give(self, document: dict[str, Any], by: str, at: datetime, channel: str = STAFF_CHANNEL) -> Consent:
        consent = parse_consent(document, at, by, channel)
        if consent.grantee != "*":
            await self._registered(consent.grantee, self._agency_exists, "grantee", "agency")
        for category in consent.categories:
            await self._registered(category, self._category_exists, "category", "category")
        for purpose in consent.purposes:
            await self._registered(purpose, self._purpose_exists, "purpose", "purpose")
        await self._store.give(consent)
        return consent

    async def withdraw(self, consent_id: str, ending: Ending) -> Consent | None:
        """The consent, now withdrawn; None if there is no such consent; AlreadyEnded if it was withdrawn."""
        return await self._store.withdraw(consent_id, ending)

    async def refuse(self, document: dict[str, Any], by: str, at: datetime, channel: str = STAFF_CHANNEL) -> Refusal:
        refusal = parse_refusal(document, at, by, channel)
        await self._registered(refusal.agency, self._agency_exists, "agency", "agency")
        for category in refusal.categories or ():
            await self._registered(category, self._category_exists, "category", "category")
        await self._store.refuse(refusal)
        return refusal

    async def lift(self, refusal_id: str, ending: Ending) -> Refusal | None:
        """The refusal, now lifted; None if there is no such refusal; AlreadyEnded if it was lifted."""
        return await self._store.lift(refusal_id, ending)

    async def history(self, subject: str) -> tuple[list[Consent], list[Refusal]]:
        return await self._store.of_subject(subject)

    def for_exchange(self, subject: str, agency: str) -> Plan[tuple[list[Consent], list[Refusal]]]:
        """What decides whether `agency` may receive the subject's data, as a read the exchange runs afresh in its
        own round trip, never cached."""
        return self._store.for_exchange(subject, agency)

    def for_exchanges(
        self, subjects: Sequence[str], agency: str
    ) -> Plan[dict[str, tuple[list[Consent], list[Refusal]]]]:
        """`for_exchange` for many subjects at once (a window of a batch), by subject."""
        return self._store.for_exchanges(subjects, agency)

    async def use_emergency(self, agency: str, exchange: str, at: datetime, per_day: int) -> int | None:
        """Count an emergency access: the agency's uses today, this one included; None over `per_day`."""
        return await self._store.use_emergency(agency, exchange, at, per_day)

    async def _registered(self, name: str, exists: Exists, field: str, kind: str) -> None:
        if not await exists(name):
            raise ConsentInvalid(f"{field} {name!r} is not a registered {kind}")


def _ending_json(ending: Ending | None, prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}_at": None if ending is None else ending.at.isoformat(),
        f"{prefix}_by": None if ending is None else ending.by,
        f"{prefix}_channel": None if ending is None else ending.channel,
    }


def consent_json(consent: Consent, at: datetime) -> dict[str, Any]:
    return {
        "consent": consent.id,
        "subject": consent.subject,
        "grantor": consent.grantor,
        "mandate": consent.mandate,
        "grantee": consent.grantee,
        "categories": list(consent.categories),
        "purposes": list(consent.purposes),
        "valid_from": consent.valid_from.isoformat(),
        "valid_until": None if consent.valid_until is None else consent.valid_until.isoformat(),
        "channel": consent.channel,
        "evidence": consent.evidence,
        "evidence_sha256": consent.evidence_sha256,
        "notice_version": consent.notice_version,
        "created_at": consent.created_at.isoformat(),
        "created_by": consent.created_by,
        **_ending_json(consent.withdrawal, "withdrawn"),
        "status": consent.status(at),
    }


def refusal_json(refusal: Refusal, at: datetime) -> dict[str, Any]:
    return {
        "refusal": refusal.id,
        "subject": refusal.subject,
        "grantor": refusal.grantor,
        "mandate": refusal.mandate,
        "agency": refusal.agency,
        "categories": None if refusal.categories is None else list(refusal.categories),
        "channel": refusal.channel,
        "created_at": refusal.created_at.isoformat(),
        "created_by": refusal.created_by,
        **_ending_json(refusal.lift, "lifted"),
        "status": refusal.status(at),
    }
