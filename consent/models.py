"""Consent tables, append-only: a withdrawal is a new row, never an edit. Only consent/store.py touches them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from broker.storage import Base


class ConsentRecord(Base):
    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), index=True)
    grantee: Mapped[str] = mapped_column(String(63))
    categories: Mapped[list[str]]
    purposes: Mapped[list[str]]
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    evidence: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(63))


class ConsentWithdrawal(Base):
    __tablename__ = "consent_withdrawals"

    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"), primary_key=True)
    withdrawn_at: Mapped[datetime]
    withdrawn_by: Mapped[str] = mapped_column(String(63))
