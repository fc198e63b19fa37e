"""Giving, withdrawing and reading consents: validation of a consent request and its storage."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from consent.matching import Consent
from consent.store import ConsentStore
from directory.names import NAME, SUBJECT

CONSENT_FIELDS = {"subject", "grantee", "categories", "purposes", "valid_from", "valid_until", "evidence"}

Exists = Callable[[str], Awaitable[bool]]


class ConsentInvalid(ValueError):
    pass


def parse_consent(document: dict[str, Any], at: datetime) -> Consent:
    """A consent from its JSON form (PROTOCOL.md), refusing anything incomplete or inconsistent."""
    unknown = sorted(set(document) - CONSENT_FIELDS)
    if unknown:
        raise ConsentInvalid(f"unknown fields: {', '.join(unknown)}")
    subject, grantee, evidence = document.get("subject"), document.get("grantee"), document.get("evidence")
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise ConsentInvalid("subject must be 1 to 64 characters of [0-9A-Za-z.-]")
    if not isinstance(grantee, str) or not (grantee == "*" or NAME.fullmatch(grantee)):
        raise ConsentInvalid("grantee must be an agency id or *")
    if not isinstance(evidence, str) or not evidence or len(evidence) > 500:
        raise ConsentInvalid("evidence is a required reference of at most 500 characters")
    categories, purposes = document.get("categories"), document.get("purposes")
    for name, value in (("categories", categories), ("purposes", purposes)):
        if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
            raise ConsentInvalid(f"{name} must be a non-empty list of names")
    valid_from = _time(document.get("valid_from"), "valid_from") or at
    valid_until = _time(document.get("valid_until"), "valid_until")
    if valid_until is not None and valid_until <= valid_from:
        raise ConsentInvalid("valid_until must be after valid_from")
    assert isinstance(categories, list) and isinstance(purposes, list)
    return Consent(
        str(uuid.uuid4()),
        subject,
        grantee,
        tuple(categories),
        tuple(purposes),
        valid_from,
        valid_until,
        evidence,
        at,
    )


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
    return parsed


class ConsentService:
    def __init__(
        self, store: ConsentStore, agency_exists: Exists, category_exists: Exists, purpose_exists: Exists
    ) -> None:
        self._store = store
        self._agency_exists = agency_exists
        self._category_exists = category_exists
        self._purpose_exists = purpose_exists

    async def give(self, document: dict[str, Any], by: str, at: datetime) -> Consent:
        consent = parse_consent(document, at)
        if consent.grantee != "*" and not await self._agency_exists(consent.grantee):
            raise ConsentInvalid(f"grantee {consent.grantee!r} is not a registered agency")
        for category in consent.categories:
            if not await self._category_exists(category):
                raise ConsentInvalid(f"category {category!r} is not registered")
        for purpose in consent.purposes:
            if not await self._purpose_exists(purpose):
                raise ConsentInvalid(f"purpose {purpose!r} is not registered")
        await self._store.give(consent, by)
        return consent

    async def withdraw(self, consent_id: str, by: str, at: datetime) -> Consent | None:
        return await self._store.withdraw(consent_id, at, by)

    async def history(self, subject: str) -> list[Consent]:
        return await self._store.of_subject(subject)


def consent_json(consent: Consent, at: datetime) -> dict[str, Any]:
    return {
        "consent": consent.id,
        "subject": consent.subject,
        "grantee": consent.grantee,
        "categories": list(consent.categories),
        "purposes": list(consent.purposes),
        "valid_from": consent.valid_from.isoformat(),
        "valid_until": None if consent.valid_until is None else consent.valid_until.isoformat(),
        "evidence": consent.evidence,
        "created_at": consent.created_at.isoformat(),
        "withdrawn_at": None if consent.withdrawn_at is None else consent.withdrawn_at.isoformat(),
        "status": consent.status(at),
    }
