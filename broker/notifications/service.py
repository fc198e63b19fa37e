"""Change notifications (PROTOCOL.md's "mutation" service): a holder says a subject's data changed, the hub
works out who may hear about it, commits the notification and its deliveries to the outbox before answering,
and delivery workers send hub-signed notices (never the data) until each recipient acknowledges, retrying
with backoff and ending in a dead-letter list an administrator can replay.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import structlog

from broker.audit.call import audited
from broker.audit.log import AuditEntry, AuditLog
from broker.base import errors
from broker.base.change_events import ChangeNotification, to_event
from broker.base.metrics import Metrics
from broker.base.signing import SigningKey, sign_request
from broker.notifications.fanout import CHANGE_NOTIFICATION, backoff, exhausted, recipients
from broker.notifications.outbox import Delivery, Notification, OutboxStore
from directory.names import NAME, SUBJECT
from directory.store import DirectoryStore
from policies.service import PolicyService

log = structlog.get_logger("crossroads.notifications")
NOTICE_FIELDS = {"subject", "category", "event", "ref"}


@dataclass(frozen=True)
class DeliverySettings:
    poll_s: float
    backoff_s: float
    backoff_cap_s: float
    max_attempts: int
    max_age_s: float
    timeout_s: float
    source: str  # the hub's public URL, in each CloudEvent's source
    lease_s: float = 60.0
    batch: int = 50


def parse_notice(document: dict[str, object]) -> tuple[str, str, str, str | None]:
    """(subject, category, event, ref) of a holder's notice, or the problem saying why it is not one."""
    unknown = sorted(set(document) - NOTICE_FIELDS)
    if unknown:
        raise errors.Invalid(f"unknown fields: {', '.join(unknown)}")
    subject, category, event, ref = (document.get(name) for name in ("subject", "category", "event", "ref"))
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise errors.Invalid("subject must be 1 to 64 characters of [0-9A-Za-z.-]")
    if not isinstance(category, str) or not NAME.fullmatch(category):
        raise errors.Invalid("category must be a name of [a-z0-9-]")
    if not isinstance(event, str) or not NAME.fullmatch(event):
        raise errors.Invalid("event must be a name of [a-z0-9-], e.g. updated")
    if ref is not None and (not isinstance(ref, str) or len(ref) > 200):
        raise errors.Invalid("ref must be the holder's own reference, at most 200 characters")
    return subject, category, event, ref


class NotificationService:
    def __init__(self, outbox: OutboxStore, directory: DirectoryStore, policies: PolicyService) -> None:
        self.outbox = outbox
        self._directory = directory
        self._policies = policies
        self.wake = asyncio.Event()

    async def publish(self, sender: str, document: dict[str, object], entry: AuditEntry) -> tuple[str, int]:
        """Accept a holder's notice: durable with all its deliveries before this returns."""
        subject, category, event, ref = parse_notice(document)
        at = datetime.now(UTC)
        entry.subject, entry.category, entry.holder = subject, category, sender
        if not await self._directory.category_exists(category):
            raise errors.UnknownCategory(f"category {category!r} is not registered")
        if sender not in {holder.id for holder in await self._directory.holders(subject, category, at)}:
            raise errors.NotHolder(f"{sender!r} does not hold {category!r} for this subject")
        related = [agency.id for agency in await self._directory.related_agencies(subject, at)]
        zones = {
            agency: (await self._policies.decide(agency, category, CHANGE_NOTIFICATION)).zone for agency in related
        }
        chosen = recipients(related, sender, zones, await self.outbox.opted_out(category))
        notification = Notification(str(uuid.uuid4()), sender, subject, category, event, ref, at)
        entry.exchange = notification.id
        await self.outbox.publish(notification, chosen)
        self.wake.set()
        return notification.id, len(chosen)


class DeliveryWorker:
    """Sends due deliveries; one per hub process, several processes share the outbox safely."""

    def __init__(
        self,
        outbox: OutboxStore,
        directory: DirectoryStore,
        audit: AuditLog,
        key: SigningKey,
        session: aiohttp.ClientSession,
        settings: DeliverySettings,
        metrics: Metrics,
        wake: asyncio.Event,
    ) -> None:
        self._outbox = outbox
        self._directory = directory
        self._audit = audit
        self._key = key
        self._session = session
        self._settings = settings
        self._metrics = metrics
        self._wake = wake
        self._rng = random.Random()  # noqa: S311 -- the jitter of a retry's backoff, no secret

    async def run(self) -> None:
        while True:
            try:
                sent = await self.deliver_due()
            except Exception as error:  # the store may be briefly unreachable: the next round tries again
                log.warning("notifications.round_failed", error=type(error).__name__)
                sent = 0
            if sent == 0:
                self._wake.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.poll_s)

    async def deliver_due(self) -> int:
        """Claim and send one batch of due deliveries; how many were claimed."""
        due = await self._outbox.claim(datetime.now(UTC), self._settings.lease_s, self._settings.batch)
        await asyncio.gather(*(self._deliver(delivery) for delivery in due))
        self._metrics.notifications_pending.set(await self._outbox.pending())
        return len(due)

    async def _deliver(self, delivery: Delivery) -> None:
        """One attempt at a delivery, as an audited call: its outcome (delivered, retrying, dead-lettered) is in the
        outbox and in the audit log together."""
        attempts, note, settings = delivery.attempts + 1, delivery.notification, self._settings
        entry = AuditEntry(
            at=datetime.now(UTC),
            kind="notification",
            exchange=note.id,
            requester=delivery.recipient,
            holder=note.sender,
            subject=note.subject,
            category=note.category,
        )

        async def attempt() -> errors.Problem | None:
            entry.status, error = await self._send(delivery)
            now = datetime.now(UTC)
            if error is None:
                await self._outbox.delivered(delivery.id, attempts, now)
                entry.outcome = "delivered"
                self._metrics.notifications_delivered.inc()
                self._metrics.notification_latency.observe((now - note.created_at).total_seconds())
            elif exhausted(
                attempts, (now - delivery.created_at).total_seconds(), settings.max_attempts, settings.max_age_s
            ):
                await self._outbox.dead(delivery.id, attempts, error)
                entry.outcome, entry.reason = "dead-lettered", error
                self._metrics.notifications_dead.inc()
            else:
                delay = backoff(attempts, settings.backoff_s, settings.backoff_cap_s, self._rng)
                await self._outbox.retry(delivery.id, attempts, now + timedelta(seconds=delay), error)
                entry.outcome, entry.reason = "retrying", error
                self._metrics.notifications_retried.inc()
            return None

        def settle(entry: AuditEntry, problem: errors.Problem | None) -> None:
            if problem is not None:  # the outbox could not be updated: the lease runs out and the delivery is retried
                entry.outcome = "failed"

        await audited(self._audit, entry, attempt, lambda problem: problem, settle)
        log.info(
            "notification.delivery",
            notification=note.id,
            recipient=delivery.recipient,
            outcome=entry.outcome,
            attempts=attempts,
        )

    async def _send(self, delivery: Delivery) -> tuple[int, str | None]:
        """POST the hub-signed notice; (HTTP status or 0, None when acknowledged or the failure's name)."""
        agency = await self._directory.agency(delivery.recipient)
        if agency is None or agency.status != "active":
            return 0, "recipient-inactive"
        note = delivery.notification
        url = agency.adapter_url.rstrip("/") + "/v1/notifications"
        notice = ChangeNotification(note.id, note.sender, note.subject, note.category, note.event, note.ref)
        event = to_event(notice, note.created_at, self._settings.source)
        headers = sign_request("POST", url, event.body, self._key, event.headers["content-type"])
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s)
        try:
            async with self._session.post(url, data=event.body, headers=headers, timeout=timeout) as answer:
                await answer.read()
                return answer.status, None if 200 <= answer.status < 300 else f"http-{answer.status}"
        except TimeoutError:
            return 0, "timeout"
        except aiohttp.ClientError:
            return 0, "unreachable"
