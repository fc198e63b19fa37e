"""Consent tables, append-only: consents, refusals, their withdrawals and lifts, and the ledger of emergency
accesses. A withdrawal, a lift or an emergency use is a new row, never an edit. Only consent/store.py
touches them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from broker.base.store import Base


class ConsentRecord(Base):
    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), index=True)
    representative: Mapped[str | None] = mapped_column(String(64))  # None: the subject gave it
    mandate: Mapped[str | None] = mapped_column(String(200))
    grantee: Mapped[str] = mapped_column(String(63))
    categories: Mapped[list[str]]
    purposes: Mapped[list[str]]
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    channel: Mapped[str] = mapped_column(String(16), server_default="unrecorded")
    evidence: Mapped[str] = mapped_column(String(500))
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))
    notice_version: Mapped[str | None] = mapped_column(String(63))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(63))


class ConsentWithdrawal(Base):
    __tablename__ = "consent_withdrawals"

    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"), primary_key=True)
    withdrawn_at: Mapped[datetime]
    withdrawn_by: Mapped[str] = mapped_column(String(63))
    channel: Mapped[str] = mapped_column(String(16), server_default="unrecorded")


class RefusalRecord(Base):
    """A subject refuses sharing with one agency: some categories, or everything (`categories` null)."""

    __tablename__ = "consent_refusals"
    __table_args__ = (Index(None, "subject", "agency"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64))
    representative: Mapped[str | None] = mapped_column(String(64))
    mandate: Mapped[str | None] = mapped_column(String(200))
    agency: Mapped[str] = mapped_column(String(63))
    categories: Mapped[list[str] | None]
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(63))


class RefusalLift(Base):
    __tablename__ = "consent_refusal_lifts"

    refusal_id: Mapped[str] = mapped_column(ForeignKey("consent_refusals.id"), primary_key=True)
    lifted_at: Mapped[datetime]
    lifted_by: Mapped[str] = mapped_column(String(63))
    channel: Mapped[str] = mapped_column(String(16))


class EmergencyUse(Base):
    """One break-the-glass access by an agency on a UTC day; `slot` counts them, so a day holds at most the
    configured number of rows per agency whatever the number of hub processes."""

    __tablename__ = "emergency_uses"

    agency: Mapped[str] = mapped_column(String(63), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    slot: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    exchange: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime]
