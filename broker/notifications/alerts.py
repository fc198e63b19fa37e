"""Alerts to privacy officers: reviews that became pending and anomalies in the audit log, found by a round each
serving hub process makes and sent to each channel once across every process. Only this module touches the
alerts table.

A process claims an alert on a channel by inserting it (insert-or-skip on channel, kind and reference): the one
whose insert went in sends it. A failed sending is taken up again by any process once its lease has run out, up
to `max_attempts` tries; then it is recorded as failed for good. An alert names ids and names, never a subject:
officers open the console to see who is concerned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import Index, String, UniqueConstraint, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from broker.audit.anomalies import ANOMALY_PERIOD, MAX_LOOKUPS, Finding, Thresholds, detect
from broker.audit.call import audited
from broker.audit.chain import timestamp
from broker.audit.log import AuditEntry, AuditLog
from broker.base import errors
from broker.base.store import Base
from policies.reviews import Review, ReviewStore

log = structlog.get_logger("crossroads.alerts")


class AlertRecord(Base):
    """One alert on one channel: appended once, then only its attempts and status change."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("channel", "kind", "reference"), Index(None, "status", "tried_at"))

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))  # webhook, email
    kind: Mapped[str] = mapped_column(String(32))  # review-pending, anomaly
    reference: Mapped[str] = mapped_column(String(200))
    document: Mapped[dict[str, Any]]  # what the alert says: ids and names only
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))  # pending, sent, failed
    attempts: Mapped[int]
    tried_at: Mapped[datetime]


ALERTS = Base.metadata.tables[AlertRecord.__tablename__]  # the table itself, for Core statements
# INSERT ... ON CONFLICT DO NOTHING RETURNING what went in (SQLite and PostgreSQL both have it): the claim.
INSERT_NEW = {
    name: insert(ALERTS).on_conflict_do_nothing().returning(ALERTS.c.id, ALERTS.c.kind, ALERTS.c.reference)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


@dataclass(frozen=True)
class Alert:
    kind: str  # review-pending, anomaly
    reference: str  # what it is about, unique within its kind
    document: dict[str, Any]  # ids and names only, never a subject


@dataclass(frozen=True)
class Claimed:
    """An alert this process is to send on a channel now: its `attempts`-th try."""

    id: int
    alert: Alert
    attempts: int


class Channel(Protocol):
    """Where a round's alerts go, as one message (broker/notifications/digests.py)."""

    name: str

    async def send(self, alerts: Sequence[Alert]) -> str | None:
        """Send the digest of `alerts`; None once sent, or the name of what failed."""


@dataclass(frozen=True)
class AlertSettings:
    interval_s: float  # between two rounds of a serving hub process
    max_attempts: int  # tries of an alert on a channel; then it is recorded as failed
    lease_s: float  # how long a try may take: a claimed alert not sent by then may be tried again


def review_alert(review: Review) -> Alert:
    """A review waiting for an officer's decision (zone grey: before the exchange; emergency: after it)."""
    return Alert(
        "review-pending",
        review.id,
        {
            "kind": "review-pending",
            "review": review.id,
            "zone": review.kind,
            "exchange": review.exchange,
            "requester": review.requester,
            "category": review.category,
            "purpose": review.purpose,
            "rule": review.rule_id,
            "at": timestamp(review.created_at),
        },
    )


def anomaly_alert(finding: Finding) -> Alert:
    """An anomaly without its subject or its detail (which names the subject). A run of attempts is known by its
    first record, so that a run still growing is one alert; a day's spike by its day."""
    first = finding.start.date().isoformat() if finding.kind == "subject-spike" else str(finding.records[0])
    return Alert(
        "anomaly",
        f"{finding.kind}:{finding.requester}:{first}",
        {
            "kind": "anomaly",
            "anomaly": finding.kind,
            "requester": finding.requester,
            "from": timestamp(finding.start),
            "until": timestamp(finding.end),
            "count": finding.count,
            "record": finding.records[0],
        },
    )


class AlertStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def claim(self, channel: str, alerts: Iterable[Alert], now: datetime) -> list[Claimed]:
        """The alerts no process has claimed on `channel` yet, claimed now for their first try."""
        fresh = {(alert.kind, alert.reference): alert for alert in alerts}
        if not fresh:
            return []
        rows = [
            {
                "channel": channel,
                "kind": alert.kind,
                "reference": alert.reference,
                "document": alert.document,
                "created_at": now,
                "status": "pending",
                "attempts": 1,
                "tried_at": now,
            }
            for alert in fresh.values()
        ]
        async with self._sessions() as session, session.begin():
            inserted = (await session.execute(INSERT_NEW[session.get_bind().dialect.name], rows)).all()
        return sorted(
            (Claimed(row.id, fresh[row.kind, row.reference], 1) for row in inserted), key=lambda claimed: claimed.id
        )

    async def retake(self, channel: str, now: datetime, lease_s: float, max_attempts: int) -> list[Claimed]:
        """The alerts whose last try on `channel` failed (or was cut off) and that have tries left, claimed now
        for their next one. One statement: a row another process retook meanwhile no longer matches."""
        statement = (
            update(AlertRecord)
            .where(
                AlertRecord.channel == channel,
                AlertRecord.status == "pending",
                AlertRecord.attempts < max_attempts,
                AlertRecord.tried_at <= now - timedelta(seconds=lease_s),
            )
            .values(attempts=AlertRecord.attempts + 1, tried_at=now)
            .returning(
                AlertRecord.id, AlertRecord.kind, AlertRecord.reference, AlertRecord.document, AlertRecord.attempts
            )
        )
        async with self._sessions() as session, session.begin():
            rows = (await session.execute(statement)).all()
        return sorted(
            (Claimed(row.id, Alert(row.kind, row.reference, row.document), row.attempts) for row in rows),
            key=lambda claimed: claimed.id,
        )

    async def settle(self, alert_id: int, status: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(update(AlertRecord).where(AlertRecord.id == alert_id).values(status=status))

    async def states(self) -> list[tuple[str, str, str, str, int]]:
        """(channel, kind, reference, status, attempts) of every alert, oldest first."""
        query = select(
            AlertRecord.channel, AlertRecord.kind, AlertRecord.reference, AlertRecord.status, AlertRecord.attempts
        ).order_by(AlertRecord.id)
        async with self._sessions() as session:
            return [tuple(row) for row in await session.execute(query)]  # type: ignore[misc]


class AlertRound:
    """What officers must hear about, found and sent once on each channel: a round every `interval_s`."""

    def __init__(
        self,
        store: AlertStore,
        reviews: ReviewStore,
        audit: AuditLog,
        channels: Sequence[Channel],
        settings: AlertSettings,
    ) -> None:
        self._store = store
        self._reviews = reviews
        self._audit = audit
        self._channels = channels
        self._settings = settings

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._settings.interval_s)
            try:
                await self.step(datetime.now(UTC))
            except Exception as error:  # the store may be briefly unreachable: the next round tries again
                log.warning("alerts.round_failed", error=type(error).__name__)

    async def step(self, now: datetime) -> int:
        """One round: claim what is new or due again on each channel, send it, record it; how many were sent."""
        found = await self.found(now)
        sent = 0
        for channel in self._channels:
            settings = self._settings
            claimed = [
                *await self._store.claim(channel.name, found, now),
                *await self._store.retake(channel.name, now, settings.lease_s, settings.max_attempts),
            ]
            if not claimed:
                continue
            try:
                async with asyncio.timeout(settings.lease_s):  # past its lease, another process may try it again
                    error = await channel.send([each.alert for each in claimed])
            except TimeoutError:
                error = "timeout"
            for each in claimed:
                if error is None or each.attempts >= settings.max_attempts:
                    await self._record(channel.name, each, error)
            if error is None:
                sent += len(claimed)
            else:
                log.warning("alerts.send_failed", channel=channel.name, error=error, alerts=len(claimed))
        return sent

    async def found(self, now: datetime) -> list[Alert]:
        """Every review now pending and every anomaly over the anomaly period up to `now`."""
        pending = await self._reviews.with_status("pending")
        since = now - ANOMALY_PERIOD
        lookups = await self._audit.lookups(since, now, MAX_LOOKUPS)
        if lookups is None:
            log.warning("alerts.too_many_lookups", most=MAX_LOOKUPS)
        findings = [] if lookups is None else await asyncio.to_thread(detect, lookups, since, now, Thresholds())
        return [*map(review_alert, pending), *map(anomaly_alert, findings)]

    async def _record(self, channel: str, claimed: Claimed, error: str | None) -> None:
        """An alert sent, or failed for good, as an audited call: its state in the store and its audit record
        together. The record carries ids and names only; its reason names the channel."""
        document = claimed.alert.document
        entry = AuditEntry(
            at=datetime.now(UTC),
            kind="alert",
            requester=document["requester"],
            exchange=document.get("exchange"),
            review_id=document.get("review"),
            category=document.get("category"),
            purpose=document.get("purpose"),
            zone="grey" if document.get("zone") == "grey" else None,
            reason=f"{channel}: {document.get('anomaly', claimed.alert.kind) if error is None else error}",
        )

        async def settle_store() -> errors.Problem | None:
            await self._store.settle(claimed.id, "sent" if error is None else "failed")
            return None

        def settle(entry: AuditEntry, _problem: errors.Problem | None) -> None:
            # Sent but not marked so (the store failed): it is sent again once its lease runs out.
            entry.status, entry.outcome = (200, "delivered") if error is None else (0, "failed")

        await audited(self._audit, entry, settle_store, lambda problem: problem, settle)
        log.info(
            "alert.recorded", channel=channel, kind=claimed.alert.kind, outcome=entry.outcome, attempts=claimed.attempts
        )
