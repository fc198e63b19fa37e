"""The notification outbox: each change notification and one delivery row per recipient, written in one
transaction, then claimed by delivery workers. Only this module touches these tables.

Claiming takes due deliveries with `FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite has one writer anyway) and
leases them by moving their next attempt past the lease, so no two workers of any hub process send the same
delivery at once, and a delivery whose worker died is claimed again once its lease runs out (at least once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Index, String, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from broker.base.store import Base


class NotificationRecord(Base):
    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sender: Mapped[str] = mapped_column(String(63))
    subject: Mapped[str] = mapped_column(String(64), index=True)  # a person's report reads by it
    category: Mapped[str] = mapped_column(String(63))
    event: Mapped[str] = mapped_column(String(63))
    ref: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class DeliveryRecord(Base):
    __tablename__ = "notification_deliveries"
    __table_args__ = (Index(None, "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(ForeignKey("notifications.id"))
    recipient: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16))  # pending, delivered, dead
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class OptOutRecord(Base):
    """An agency that chose not to hear about changes to a category."""

    __tablename__ = "notification_opt_outs"

    agency: Mapped[str] = mapped_column(String(63), primary_key=True)
    category: Mapped[str] = mapped_column(String(63), primary_key=True)
    since: Mapped[datetime]


@dataclass(frozen=True)
class Notification:
    id: str
    sender: str
    subject: str
    category: str
    event: str
    ref: str | None
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    id: int
    notification: Notification
    recipient: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None = None

    def as_json(self) -> dict[str, object]:
        note = self.notification
        return {
            "delivery": self.id,
            "notification": note.id,
            "recipient": self.recipient,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "sender": note.sender,
            "subject": note.subject,
            "category": note.category,
            "event": note.event,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Backlog:
    """One recipient's deliveries not yet made: waiting for their first attempt, failing (tried, to be tried
    again), dead-lettered."""

    recipient: str
    waiting: int
    failing: int
    dead: int
    oldest: datetime  # when the oldest of them was published (or replayed)
    next_attempt: datetime | None  # the earliest attempt due, if any of them is still to be tried


class OutboxStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def publish(self, notification: Notification, recipients: list[str]) -> None:
        """The notification and its deliveries, durable together before anyone is told it was accepted."""
        async with self._sessions() as session, session.begin():
            session.add(NotificationRecord(**vars(notification)))
            await session.flush()  # the deliveries refer to it
            session.add_all(
                DeliveryRecord(
                    notification_id=notification.id,
                    recipient=recipient,
                    status="pending",
                    attempts=0,
                    next_attempt_at=notification.created_at,
                    created_at=notification.created_at,
                )
                for recipient in recipients
            )

    async def claim(self, now: datetime, lease_s: float, limit: int) -> list[Delivery]:
        query = (
            select(DeliveryRecord, NotificationRecord)
            .join(NotificationRecord, NotificationRecord.id == DeliveryRecord.notification_id)
            .where(DeliveryRecord.status == "pending", DeliveryRecord.next_attempt_at <= now)
            .order_by(DeliveryRecord.next_attempt_at, DeliveryRecord.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=DeliveryRecord)
        )
        async with self._sessions() as session, session.begin():
            rows = (await session.execute(query)).all()
            for delivery, _ in rows:
                delivery.next_attempt_at = now + timedelta(seconds=lease_s)
        return [_delivery(delivery, notification) for delivery, notification in rows]

    async def delivered(self, delivery_id: int, attempts: int, at: datetime) -> None:
        await self._set(delivery_id, status="delivered", attempts=attempts, delivered_at=at, last_error=None)

    async def retry(self, delivery_id: int, attempts: int, at: datetime, error: str) -> None:
        await self._set(delivery_id, attempts=attempts, next_attempt_at=at, last_error=error[:200])

    async def dead(self, delivery_id: int, attempts: int, error: str) -> None:
        await self._set(delivery_id, status="dead", attempts=attempts, last_error=error[:200])

    async def dead_letters(self) -> list[Delivery]:
        return await self._deliveries(DeliveryRecord.status == "dead")

    async def deliveries(self, notification_id: str) -> list[Delivery]:
        return await self._deliveries(DeliveryRecord.notification_id == notification_id)

    async def about(self, subject: str, since: datetime, until: datetime) -> list[Delivery]:
        """The deliveries of the notifications about `subject` published in [since, until), oldest first: who was
        told that which category of theirs changed, and whether they heard."""
        return await self._deliveries(
            (NotificationRecord.subject == subject)
            & (NotificationRecord.created_at >= since)
            & (NotificationRecord.created_at < until)
        )

    async def replay(self, delivery_ids: list[int] | None, now: datetime) -> int:
        """Put dead letters (all, or those named) back in the queue with a fresh count of attempts."""
        query = update(DeliveryRecord).where(DeliveryRecord.status == "dead")
        if delivery_ids is not None:
            query = query.where(DeliveryRecord.id.in_(delivery_ids))
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                query.values(status="pending", attempts=0, next_attempt_at=now, created_at=now)
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def backlog(self) -> list[Backlog]:
        """Per recipient with deliveries not yet made, how many wait, fail and are dead, by recipient."""
        pending = DeliveryRecord.status == "pending"
        query = (
            select(
                DeliveryRecord.recipient,
                func.count().filter(pending, DeliveryRecord.attempts == 0),
                func.count().filter(pending, DeliveryRecord.attempts > 0),
                func.count().filter(DeliveryRecord.status == "dead"),
                func.min(DeliveryRecord.created_at),
                func.min(DeliveryRecord.next_attempt_at).filter(pending),
            )
            .where(DeliveryRecord.status.in_(("pending", "dead")))
            .group_by(DeliveryRecord.recipient)
            .order_by(DeliveryRecord.recipient)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [Backlog(*row) for row in rows]

    async def pending(self) -> int:
        query = select(func.count()).select_from(DeliveryRecord).where(DeliveryRecord.status == "pending")
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    async def opted_out(self, category: str) -> set[str]:
        async with self._sessions() as session:
            rows = await session.scalars(select(OptOutRecord.agency).where(OptOutRecord.category == category))
            return set(rows.all())

    async def opt_out(self, agency: str, category: str, at: datetime) -> None:
        async with self._sessions() as session, session.begin():
            await session.merge(OptOutRecord(agency=agency, category=category, since=at))

    async def opt_in(self, agency: str, category: str) -> None:
        async with self._sessions() as session, session.begin():
            row = await session.get(OptOutRecord, (agency, category))
            if row is not None:
                await session.delete(row)

    async def _set(self, delivery_id: int, **values: object) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(update(DeliveryRecord).where(DeliveryRecord.id == delivery_id).values(**values))

    async def _deliveries(self, condition: object) -> list[Delivery]:
        query = (
            select(DeliveryRecord, NotificationRecord)
            .join(NotificationRecord, NotificationRecord.id == DeliveryRecord.notification_id)
            .where(condition)  # type: ignore[arg-type]
            .order_by(DeliveryRecord.id)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [_delivery(delivery, notification) for delivery, notification in rows]


def _delivery(row: DeliveryRecord, note: NotificationRecord) -> Delivery:
    notification = Notification(
        note.id, note.sender, note.subject, note.category, note.event, note.ref, note.created_at
    )
    return Delivery(
        row.id, notification, row.recipient, row.status, row.attempts, row.last_error, row.created_at, row.delivered_at
    )
