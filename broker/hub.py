"""The composition root: builds every service of a hub process once and hands each its dependencies."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import aiohttp
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from broker.accounts.store import ConsoleStore
from broker.audit.call import audited
from broker.audit.log import AuditEntry, AuditLog
from broker.audit.sequencer import Sequencer, SequencerSettings
from broker.base import eventloop, logs
from broker.base.caches import CacheSettings, Clock
from broker.base.keyfiles import load_signing_key
from broker.base.metrics import Metrics
from broker.base.signing import SigningKey
from broker.base.store import Lane, create_engine
from broker.batches.runner import BatchRunner, BatchSettings
from broker.batches.store import BatchStore
from broker.config import Config
from broker.exchange.authentication import Authenticator
from broker.exchange.forwarding import HolderClient
from broker.exchange.limits import ConcurrencyCap, PeerLimiter, RateLimiter
from broker.exchange.pipeline import ExchangePipeline
from broker.notifications.alerts import AlertRound, AlertSettings, AlertStore, Channel
from broker.notifications.digests import Mail, MailSettings, Webhook
from broker.notifications.outbox import OutboxStore
from broker.notifications.service import DeliverySettings, DeliveryWorker, NotificationService
from broker.schema.migrations import require_current_schema
from consent.service import ConsentService
from consent.store import ConsentStore
from directory.imports import Importer, ImportJob, ImportStore
from directory.registry import Registry
from directory.store import DirectoryStore
from policies.reviews import ReviewStore
from policies.service import OperatorGate, PolicyService
from policies.store import PolicyStore

log = structlog.get_logger("crossroads.hub")
# Lines of an import a transaction, by store (bench/README.md, "The directory"). An import is applied in a process
# of its own (directory/imports.py). On SQLite its batches take the one writer from the exchanges' writes, which
# wait for it in SQLite's busy handler: short batches. On PostgreSQL they take nothing from them, and fewer, larger
# batches make fewer round trips.
IMPORT_BATCH = {"sqlite": 500, "postgresql": 10_000}
ALERT_SEND_S = 30.0  # how long sending a round's alerts may take; past it, any process may try them again
BATCH_NICENESS = 10  # a batch's process yields the CPU to the serving hub's (os.nice: 0 to 19, higher yields more)


@dataclass
class Hub:
    config: Config
    key: SigningKey
    engine: AsyncEngine
    directory: DirectoryStore
    policies: PolicyService
    consents: ConsentService
    reviews: ReviewStore
    audit: AuditLog
    authenticator: Authenticator
    limiter: RateLimiter
    pipeline: ExchangePipeline
    metrics: Metrics
    notifications: NotificationService
    sequencer: Sequencer
    console: ConsoleStore  # operators' console passwords, sessions and failed sign-ins
    concurrency: ConcurrencyCap  # requests each principal has inside the hub
    registry: Registry  # what administrators register: agencies, categories, purposes, capacities
    imports: Importer  # bulk imports of references, applied in the background
    peers: PeerLimiter  # requests refused before authentication, per peer address
    alerts: AlertRound  # what privacy officers must hear about, sent to the channels configured
    batches: BatchRunner  # agencies' mass exchanges, run in the background


@asynccontextmanager
async def open_hub(config: Config, clock: Clock = time.monotonic, *, serving: bool = True) -> AsyncIterator[Hub]:
    """A running hub: store opened and checked, client session, background refreshers; all closed on exit.

    Only a `serving` hub makes the rounds (following edits, pruning nonces, delivering notifications, taking up
    imports, alerting privacy officers): a one-shot command leaves them to the serving processes, and a round cut
    off mid-query at its exit would leave the store's connection half-open when the event loop closes."""
    engine = create_engine(config.database)
    try:
        await require_current_schema(engine)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        lane = Lane(engine)  # closed by `engine.dispose()` below, once the writers have committed what they hold
        key = await asyncio.to_thread(load_signing_key, config.key_path, config.hub_key_id)
        directory = DirectoryStore(
            sessions,
            lane,
            CacheSettings(
                config.cache_ttl_s,
                config.cache_max_entries,
                clock,
                config.cache_follow_s,
                config.cache_principals_ttl_s,
            ),
        )
        policies = PolicyService(
            PolicyStore(sessions),
            directory.category_exists,
            directory.purpose_exists,
            approvals=config.policy_approvals,
        )
        await policies.refresh()
        consents = ConsentService(
            ConsentStore(sessions, lane),
            _exists(directory.agency),
            directory.category_exists,
            directory.purpose_exists,
        )
        reviews = ReviewStore(sessions)
        metrics = Metrics()
        metrics.policy_version.set_function(lambda: policies.version)
        audit = AuditLog(
            sessions,
            lane,
            config.audit_batch_max,
            config.audit_batch_wait_s,
            metrics.audit_batch,
            reserve_bytes=config.audit_reserve_bytes,
            lease=timedelta(seconds=config.holder_timeout_s + config.audit_abandon_after_s),
        )
        sequencer = Sequencer(audit, key, _sequencer_settings(config))
        notifications = NotificationService(OutboxStore(sessions), directory, policies)
        connector = aiohttp.TCPConnector(limit=config.holder_connections, limit_per_host=config.holder_connections_each)
        # On exit the client session closes first, then the audit writer commits what it holds (nonces and records),
        # then the sequencer links it and signs a last checkpoint.
        async with (
            sequencer.running(),
            audit.writing(),
            aiohttp.ClientSession(connector=connector) as session,
        ):
            holders = HolderClient(session, key, directory.answering_key, config.holder_timeout_s)
            authenticator = Authenticator(directory, OperatorGate(), config.url)
            channels = _alert_channels(config, session, key)
            pipeline, batch_pipeline = (
                ExchangePipeline(
                    reading,
                    authenticator.confirm,
                    directory,
                    policies,
                    consents,
                    reviews,
                    holders,
                    audit,
                    config.emergency_per_day,
                )
                # Batches read on a lane of their own (a thread and connection of their own on SQLite): a window's
                # read overlaps the audit writer's transactions on the other (a batch's own process runs both).
                for reading in (lane, Lane(engine))
            )
            hub = Hub(
                config,
                key,
                engine,
                directory,
                policies,
                consents,
                reviews,
                audit,
                authenticator,
                RateLimiter(config.rate_per_s, config.rate_burst),
                pipeline,
                metrics=metrics,
                notifications=notifications,
                sequencer=sequencer,
                console=ConsoleStore(sessions),
                concurrency=ConcurrencyCap(config.in_flight_per_principal),
                registry=Registry(sessions, directory.forget),
                imports=Importer(
                    ImportStore(sessions),
                    directory,
                    config.state_dir / "imports",
                    config.import_batch or IMPORT_BATCH[engine.dialect.name],
                    finished=partial(_import_finished, audit),
                    apart=config.database,
                ),
                peers=PeerLimiter(
                    config.unauthenticated_rate_per_s, config.unauthenticated_burst, config.trusted_proxies
                ),
                alerts=AlertRound(
                    AlertStore(sessions),
                    reviews,
                    audit,
                    channels,
                    AlertSettings(config.alert_interval_s, config.alert_max_attempts, ALERT_SEND_S),
                ),
                batches=BatchRunner(
                    BatchStore(sessions),
                    batch_pipeline,
                    holders,
                    audit,
                    config.state_dir / "batches",
                    _batch_settings(config),
                    apart=partial(run_batch_apart, config) if serving else None,
                ),
            )
            worker = DeliveryWorker(
                notifications.outbox,
                directory,
                audit,
                key,
                session,
                _delivery_settings(config),
                metrics,
                notifications.wake,
            )
            tasks: list[asyncio.Task[None]] = []
            if serving:
                await policies.declare_approvals(datetime.now(UTC))
                rounds = (_refresh_policies(hub), _follow_directory(hub), _prune_nonces(hub), worker.run())
                alerting = (hub.alerts.run(),) if channels else ()
                resuming = (_resume_imports(hub), _resume_batches(hub))
                tasks = [asyncio.create_task(work) for work in (*rounds, *resuming, *alerting)]
            try:
                yield hub
            finally:
                await hub.batches.close()
                await hub.imports.close()
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with suppress(asyncio.CancelledError):
                        await task
    finally:
        await engine.dispose()


async def _resume_imports(hub: Hub) -> None:
    """Take up the imports this process holds the files of, at start and whenever one's worker stopped."""
    while True:
        try:
            await hub.imports.resume()
        except Exception as error:  # the store may be briefly unreachable; the next round tries again
            log.warning("directory.imports_resume_failed", error=type(error).__name__)
        await asyncio.sleep(30)


async def _resume_batches(hub: Hub) -> None:
    """Take up the batches this process holds the files of, at start and whenever one's lease ran out; forget the
    answers of batches ended long ago."""
    while True:
        try:
            await hub.batches.resume()
            await hub.batches.expire()
        except Exception as error:  # the store may be briefly unreachable; the next round tries again
            log.warning("batches.resume_failed", error=type(error).__name__)
        await asyncio.sleep(min(30.0, hub.config.batch_lease_s))


def run_batch_apart(config: Config, batch_id: str) -> None:
    """The life of a batch's own process (broker/batches/runner.py): a hub of its own on the same store, at a lower
    scheduling priority than the serving hub's (BATCH_NICENESS), runs the batch until its end, or until SIGTERM
    stops it at its last committed window (its hub takes it up again)."""
    os.nice(BATCH_NICENESS)
    logs.configure(logs.StandardError())
    eventloop.run(_run_batch_apart(config, batch_id))


async def _run_batch_apart(config: Config, batch_id: str) -> None:
    running = asyncio.current_task()
    assert running is not None  # noqa: S101 -- for the type checker: eventloop.run runs this as a task
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, running.cancel)
    async with open_hub(config, serving=False) as hub:
        with suppress(asyncio.CancelledError):
            await hub.batches.run(batch_id)


async def _import_finished(audit: AuditLog, job: ImportJob) -> None:
    """An import's end is a record of its own: the agency's, naming the import, once every line is applied."""
    entry = AuditEntry(at=datetime.now(UTC), kind="directory", requester=job.agency, exchange=job.id)

    def settle(entry: AuditEntry, _answer: None) -> None:
        entry.status, entry.outcome, entry.reason = 200, "recorded", entry.reason or "import-done"

    async def done() -> None:
        return None

    await audited(audit, entry, done, lambda _problem: None, settle)


def _sequencer_settings(config: Config) -> SequencerSettings:
    return SequencerSettings(
        interval_s=config.audit_link_interval_s,
        checkpoint_every=config.audit_checkpoint_every,
        checkpoint_interval_s=config.audit_checkpoint_interval_s,
    )


def _batch_settings(config: Config) -> BatchSettings:
    return BatchSettings(
        window=config.batch_window,
        chunk=config.batch_chunk,
        chunks_at_once=config.batch_chunks_at_once,
        at_once=config.batch_at_once,
        attempts=config.batch_attempts,
        backoff_s=config.batch_backoff_s,
        lease=timedelta(seconds=config.batch_lease_s),
        keep=timedelta(seconds=config.batch_keep_s),
    )


def _delivery_settings(config: Config) -> DeliverySettings:
    return DeliverySettings(
        poll_s=config.notification_poll_s,
        backoff_s=config.notification_backoff_s,
        backoff_cap_s=config.notification_backoff_cap_s,
        max_attempts=config.notification_max_attempts,
        max_age_s=config.notification_max_age_s,
        lease_s=config.notification_lease_s,
        timeout_s=config.holder_timeout_s,
        source=config.url,
    )


def _alert_channels(config: Config, session: aiohttp.ClientSession, key: SigningKey) -> list[Channel]:
    """The channels alerts go to: a webhook and e-mail, each when configured."""
    console = f"{config.url}/console"
    channels: list[Channel] = []
    if config.alert_webhook_url:
        channels.append(Webhook(session, config.alert_webhook_url, key, console, ALERT_SEND_S))
    if config.alert_smtp_host:
        recipients = tuple(address.strip() for address in config.alert_email_to.split(",") if address.strip())
        settings = MailSettings(
            config.alert_smtp_host,
            config.alert_smtp_port,
            config.alert_smtp_starttls == 1,
            config.alert_smtp_username,
            config.alert_smtp_password,
            config.alert_email_from,
            recipients,
            ALERT_SEND_S,
        )
        channels.append(Mail(settings, console, config.url))
    return channels


def _exists(lookup: Callable[[str], Awaitable[object | None]]) -> Callable[[str], Awaitable[bool]]:
    async def exists(name: str) -> bool:
        return await lookup(name) is not None

    return exists


async def _refresh_policies(hub: Hub) -> None:
    """Follow policy edits made by any hub process on the shared store."""
    while True:
        await asyncio.sleep(hub.config.policy_poll_s)
        try:
            if await hub.policies.refresh():
                log.info("policy.reloaded", version=hub.policies.version)
        except Exception as error:  # the store may be briefly unreachable; the next poll tries again
            log.warning("policy.refresh_failed", error=type(error).__name__)


async def _follow_directory(hub: Hub) -> None:
    """Follow directory writes made by any hub process even while no request comes in (requests follow them
    too): cached keys, agencies and names are dropped within a second of a change."""
    while True:
        await asyncio.sleep(1.0)
        try:
            await hub.directory.follow()
        except Exception as error:  # the store may be briefly unreachable; the next round tries again
            log.warning("directory.follow_failed", error=type(error).__name__)


async def _prune_nonces(hub: Hub) -> None:
    while True:
        await asyncio.sleep(60)
        try:
            await hub.audit.prune_nonces(datetime.now(UTC))
        except Exception as error:
            log.warning("nonces.prune_failed", error=type(error).__name__)
