"""Reads and appends of the consent tables; the only code that touches them. Nothing is updated or deleted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from consent.matching import Consent
from consent.models import ConsentRecord, ConsentWithdrawal


class AlreadyWithdrawn(Exception):
    pass


class ConsentStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def give(self, consent: Consent, created_by: str) -> None:
        async with self._sessions() as session, session.begin():
            session.add(
                ConsentRecord(
                    id=consent.id,
                    subject=consent.subject,
                    grantee=consent.grantee,
                    categories=list(consent.categories),
                    purposes=list(consent.purposes),
                    valid_from=consent.valid_from,
                    valid_until=consent.valid_until,
                    evidence=consent.evidence,
                    created_at=consent.created_at,
                    created_by=created_by,
                )
            )

    async def withdraw(self, consent_id: str, at: datetime, by: str) -> Consent | None:
        """Record the withdrawal; None when no such consent exists."""
        async with self._sessions() as session, session.begin():
            record = await session.get(ConsentRecord, consent_id)
            if record is None:
                return None
            if await session.get(ConsentWithdrawal, consent_id) is not None:
                raise AlreadyWithdrawn(consent_id)
            session.add(ConsentWithdrawal(consent_id=consent_id, withdrawn_at=at, withdrawn_by=by))
        return _consent(record, at)

    async def of_subject(self, subject: str) -> list[Consent]:
        query = (
            select(ConsentRecord, ConsentWithdrawal.withdrawn_at)
            .outerjoin(ConsentWithdrawal, ConsentWithdrawal.consent_id == ConsentRecord.id)
            .where(ConsentRecord.subject == subject)
            .order_by(ConsentRecord.created_at, ConsentRecord.id)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [_consent(record, withdrawn_at) for record, withdrawn_at in rows]


def _consent(record: ConsentRecord, withdrawn_at: datetime | None) -> Consent:
    return Consent(
        record.id,
        record.subject,
        record.grantee,
        tuple(record.categories),
        tuple(record.purposes),
        record.valid_from,
        record.valid_until,
        record.evidence,
        record.created_at,
        withdrawn_at,
    )
