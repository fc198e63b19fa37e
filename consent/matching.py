"""Consents and refusals as values, and which of them decides an exchange: pure functions of a subject's
records, the request and the time. A refusal beats any consent for its agency; among the consents that
cover an exchange the most specific one is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Ending:
    """A withdrawal of a consent or a lift of a refusal: a fact recorded next to the record it ends."""

    at: datetime
    by: str  # the principal who recorded it
    channel: str


@dataclass(frozen=True, kw_only=True)
class Consent:
    id: str
    subject: str
    representative: str | None  # the legal representative who gave it; None when the subject did
    mandate: str | None  # the representative's mandate
    grantee: str  # an agency id, or `*` for any agency
    categories: tuple[str, ...]
    purposes: tuple[str, ...]
    valid_from: datetime
    valid_until: datetime | None  # exclusive; None: until withdrawn
    channel: str
    evidence: str
    evidence_sha256: str | None
    notice_version: str | None
    created_at: datetime
    created_by: str
    withdrawal: Ending | None = None

    @property
    def grantor(self) -> str:
        return self.representative or self.subject

    def status(self, at: datetime) -> str:
        """`withdrawn`, `expired`, `pending` (before `valid_from`) or `active` at `at`; derived, never stored."""
        if self.withdrawal is not None and self.withdrawal.at <= at:
            return "withdrawn"
        if self.valid_until is not None and at >= self.valid_until:
            return "expired"
        if at < self.valid_from:
            return "pending"
        return "active"


@dataclass(frozen=True, kw_only=True)
class Refusal:
    id: str
    subject: str
    representative: str | None
    mandate: str | None
    agency: str  # the agency the subject refuses to share with
    categories: tuple[str, ...] | None  # None: everything
    channel: str
    created_at: datetime
    created_by: str
    lift: Ending | None = None

    @property
    def grantor(self) -> str:
        return self.representative or self.subject

    def status(self, at: datetime) -> str:
        return "lifted" if self.lift is not None and self.lift.at <= at else "active"


def covers(consent: Consent, grantee: str, category: str, purpose: str, at: datetime) -> bool:
    return (
        consent.status(at) == "active"
        and consent.grantee in (grantee, "*")
        and category in consent.categories
        and purpose in consent.purposes
    )


def specificity(consent: Consent) -> tuple[bool, int, int]:
    """Higher is more specific: a named grantee over `*`, then fewer categories, then fewer purposes."""
    return consent.grantee != "*", -len(consent.categories), -len(consent.purposes)


def covering_consent(
    consents: Iterable[Consent], grantee: str, category: str, purpose: str, at: datetime
) -> Consent | None:
    """The most specific active consent covering the exchange; the newest among equally specific ones."""
    candidates = [consent for consent in consents if covers(consent, grantee, category, purpose, at)]
    if not candidates:
        return None
    return max(candidates, key=lambda consent: (specificity(consent), consent.created_at, consent.id))


def refuses(refusal: Refusal, agency: str, category: str, at: datetime) -> bool:
    return (
        refusal.created_at <= at
        and refusal.status(at) == "active"
        and refusal.agency == agency
        and (refusal.categories is None or category in refusal.categories)
    )


def blocking_refusal(refusals: Iterable[Refusal], agency: str, category: str, at: datetime) -> Refusal | None:
    """The oldest active refusal of sharing `category` with `agency`, if any."""
    blocking = [refusal for refusal in refusals if refuses(refusal, agency, category, at)]
    return min(blocking, key=lambda refusal: (refusal.created_at, refusal.id), default=None)
