"""Which consent, if any, covers an exchange: a pure function of the subject's consents and the request."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Consent:
    id: str
    subject: str
    grantee: str
    categories: tuple[str, ...]
    purposes: tuple[str, ...]
    valid_from: datetime
    valid_until: datetime | None
    evidence: str
    created_at: datetime
    withdrawn_at: datetime | None = None

    def status(self, at: datetime) -> str:
        if self.withdrawn_at is not None and self.withdrawn_at <= at:
            return "withdrawn"
        if self.valid_until is not None and at >= self.valid_until:
            return "expired"
        if at < self.valid_from:
            return "pending"
        return "active"


def covers(consent: Consent, grantee: str, category: str, purpose: str, at: datetime) -> bool:
    return (
        consent.status(at) == "active"
        and consent.grantee in (grantee, "*")
        and category in consent.categories
        and purpose in consent.purposes
    )


def covering_consent(
    consents: Iterable[Consent], grantee: str, category: str, purpose: str, at: datetime
) -> Consent | None:
    """The most specific active consent covering the exchange: a named grantee before `*`, then the newest."""
    candidates = [consent for consent in consents if covers(consent, grantee, category, purpose, at)]
    if not candidates:
        return None
    return max(candidates, key=lambda consent: (consent.grantee == grantee, consent.created_at, consent.id))
