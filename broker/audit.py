"""The audit log: exactly one record per attempt, whatever its outcome, and never a payload.

A record is committed before its answer leaves the hub ("no audit, no data"). An exchange about to be
forwarded is recorded first with outcome `forwarding` and completed once the holder has answered, so a
log that cannot be written stops the exchange before anything reaches a holder. The hash chain and
signed checkpoints will link completed records in `seq` order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Index, String, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from broker.storage import Base, StoreUnavailable


class AuditRecord(Base):
    __tablename__ = "audit_records"
    __table_args__ = (Index(None, "subject", "at"), Index(None, "requester", "at"), Index(None, "exchange"))

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    exchange: Mapped[str | None] = mapped_column(String(40))
    requester: Mapped[str | None] = mapped_column(String(63))
    key_id: Mapped[str | None] = mapped_column(String(128))
    subject: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(63))
    purpose: Mapped[str | None] = mapped_column(String(63))
    holder: Mapped[str | None] = mapped_column(String(63))
    zone: Mapped[str | None] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[int]
    reason: Mapped[str | None] = mapped_column(String(63))
    rule_id: Mapped[str | None] = mapped_column(String(63))
    policy_version: Mapped[int | None]
    fields: Mapped[list[str] | None]  # the field set the deciding rule let through; None: the whole answer
    emergency: Mapped[bool] = mapped_column(default=False)
    consent_id: Mapped[str | None] = mapped_column(String(40))
    review_id: Mapped[str | None] = mapped_column(String(40))
    latency_ms: Mapped[float | None]
    request_digest: Mapped[str | None] = mapped_column(String(80))
    response_digest: Mapped[str | None] = mapped_column(String(80))


@dataclass
class AuditEntry:
    """The record of one attempt, filled in step by step as the request goes through the hub."""

    at: datetime
    kind: str
    exchange: str | None = None
    requester: str | None = None
    key_id: str | None = None
    subject: str | None = None
    category: str | None = None
    purpose: str | None = None
    holder: str | None = None
    zone: str | None = None
    outcome: str = "received"
    status: int = 0
    reason: str | None = None
    rule_id: str | None = None
    policy_version: int | None = None
    fields: list[str] | None = None
    emergency: bool = False
    consent_id: str | None = None
    review_id: str | None = None
    latency_ms: float | None = None
    request_digest: str | None = None
    response_digest: str | None = None
    seq: int | None = field(default=None, repr=False)

    def values(self) -> dict[str, object]:
        return {name: value for name, value in vars(self).items() if name != "seq"}


def digest(body: bytes) -> str:
    return "sha-256:" + hashlib.sha256(body).hexdigest()


def outcome_for(status: int) -> str:
    if status == 200 or status == 201:
        return "delivered" if status == 200 else "recorded"
    if status == 202:
        return "pending"
    if status < 500:
        return "refused"
    return "failed"


class AuditLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def reserve(self, entry: AuditEntry) -> None:
        """Write the record before forwarding, so nothing is forwarded that the log cannot hold."""
        entry.outcome = "forwarding"
        try:
            async with self._sessions() as session, session.begin():
                row = AuditRecord(**entry.values())
                session.add(row)
                await session.flush()
                entry.seq = row.seq
        except SQLAlchemyError as error:
            raise StoreUnavailable("audit log not writable") from error

    async def commit(self, entry: AuditEntry) -> None:
        """Commit the final record of the attempt; raises StoreUnavailable when the log cannot be written."""
        try:
            async with self._sessions() as session, session.begin():
                if entry.seq is None:
                    session.add(AuditRecord(**entry.values()))
                else:
                    await session.execute(
                        update(AuditRecord).where(AuditRecord.seq == entry.seq).values(**entry.values())
                    )
        except SQLAlchemyError as error:
            raise StoreUnavailable("audit log not writable") from error

    async def records(self, **filters: str | None) -> list[AuditRecord]:
        query = select(AuditRecord).order_by(AuditRecord.seq)
        for name, value in filters.items():
            if value is not None:
                query = query.where(getattr(AuditRecord, name) == value)
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def count(self) -> int:
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(AuditRecord)) or 0)
