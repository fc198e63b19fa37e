"""The audit log: exactly one record per attempt, whatever its outcome, never a payload; its tables
(`audit_records`, `audit_checkpoints`) and every read and write of them.

Writing. A record is committed before its answer leaves the hub ("no audit, no data"). An exchange about
to be forwarded is recorded first with outcome `forwarding` (`reserve`) and completed once the holder has
answered (`commit`), so a log that cannot be written stops the exchange before anything reaches a holder.
Writes go through group commit (broker/base/store/group_commit.py): the records of concurrent requests, and the
nonces they claim (broker/audit/nonces.py), share one transaction on the bare driver (broker/base/store/bare.py),
and each request waits for its own batch; a failed batch fails every request in it (503). A
completion never fails for want of room: the store keeps room for the completions of the exchanges in flight,
and an exchange is forwarded only while that room is kept (broker/audit/reserve.py).

Leases. A reserved record carries its lease (`lease_until`: the exchange's arrival plus the holder's timeout
plus a margin), by the end of which a live hub process has completed it. Any hub process closes a
record left `forwarding` past its lease as `abandoned` (its process died mid-exchange): at start, and on every
pass of its sequencer. A record whose lease still runs may belong to a live process (another hub on the same
PostgreSQL store, or a command's hub on the same SQLite file beside a running server), so it is left alone until
its lease runs out; should a request still complete it after that, it finds it closed and answers 503.

Linking. Records are written without chain fields; a single sequencer (broker/audit/sequencer.py) links them
afterwards, as Certificate Transparency logs do: it takes the committed, unlinked records in `seq` order,
gives each the next `position` and `hash = SHA-256(previous hash ‖ RFC 8785 content)` (broker/audit/chain.py),
and signs a checkpoint (size, head hash, time, key id) every N records or T seconds. On PostgreSQL every
hub process runs a sequencer but a transaction-scoped advisory lock lets one link at a time, so several
processes still give one sequence; `seq` only orders what is ready together (a row committed late by
another process is linked later, at a later position), and the chain's order is `position`. On SQLite
the sequencer's transaction starts with a write, so SQLite's one-writer lock serialises it the same way.
A record at `forwarding` is not linked: its request will still complete it, or its lease will run out and it
is closed as `abandoned` and linked. A linked record never changes: `commit` only updates rows still at
`forwarding`.

Checkpoints store the signer's key id and public key, so they stay verifiable after the hub's key
rotates; a hub whose key is not the one that signed the newest checkpoint signs a new one at start, so
the newest is always signed by the current key, which a verifier trusts (the older ones are covered by
it). Records committed but not yet linked, or linked after the newest checkpoint, are not yet covered.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Index, String, bindparam, case, func, insert, literal, select, text, tuple_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from broker.audit import chain, nonces
from broker.audit.anomalies import Lookup
from broker.audit.nonces import NonceUse
from broker.audit.queries import AuditQuery, Cursor
from broker.audit.reserve import Reserve, store_full
from broker.base import errors
from broker.base.signing import SigningKey
from broker.base.store import Base, Lane, StoreUnavailable
from broker.base.store.bare import DRIVER_ERRORS, Bare, BareUnit
from broker.base.store.group_commit import GroupCommit, WriterClosed
from policies.changes import Pending, Question

SEQUENCER_LOCK = 0x63726F7373726F64  # PostgreSQL advisory lock key of the audit sequencer ("crossrod")
SEARCH_COLUMNS = ("subject", "requester", "holder", "category", "purpose", "zone", "outcome", "kind")


class AuditRecord(Base):
    __tablename__ = "audit_records"
    __table_args__ = (
        *(Index(None, column, "at") for column in SEARCH_COLUMNS),
        Index(None, "at"),
        Index(None, "exchange"),
        Index(None, "position", unique=True),
    )

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
    ground: Mapped[str | None] = mapped_column(String(500))  # the deciding rule's ground as it stood; None: no rule's
    fields: Mapped[list[str] | None]  # the field set the deciding rule let through; None: the whole answer
    emergency: Mapped[bool] = mapped_column(default=False)
    consent_id: Mapped[str | None] = mapped_column(String(40))
    review_id: Mapped[str | None] = mapped_column(String(40))
    latency_ms: Mapped[float | None]
    request_digest: Mapped[str | None] = mapped_column(String(80))
    response_digest: Mapped[str | None] = mapped_column(String(80))
    sealed_digest: Mapped[str | None] = mapped_column(String(80))  # a sealed answer's ciphertext's (never itself)
    # Until when a record reserved at `forwarding` may still be completed; not part of the record's content.
    lease_until: Mapped[datetime | None]
    # The chain, filled in by the sequencer; None until the record is linked.
    position: Mapped[int | None]
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(index=True)
    head: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    key_id: Mapped[str] = mapped_column(String(128))
    public_key_pem: Mapped[str] = mapped_column(String(400))
    signature: Mapped[str] = mapped_column(String(100))


RECORDS = Base.metadata.tables[AuditRecord.__tablename__]  # the table itself, for Core statements
COLUMNS = tuple(column.name for column in RECORDS.columns if column.name != "lease_until")  # what a record says
# What the steps after forwarding fill in: a record completed with only these changed since its reservation is
# completed by setting only them (the other columns' eight indexes are then left alone: 150 -> 60 us on SQLite).
COMPLETED = ("outcome", "status", "reason", "review_id", "latency_ms", "response_digest", "sealed_digest")
# The writer's statements, each run on the bare driver for all the rows of a batch: a new record, returning its seq;
# a reserved record completed unless closed meanwhile (wholly, or the completed columns only), returning its seq;
# whether it was closed as abandoned.
STORED = tuple(column.name for column in RECORDS.columns if column.name not in ("seq", "position", "prev_hash", "hash"))
INSERT = insert(RECORDS).values({name: bindparam(name) for name in STORED}).returning(RECORDS.c.seq)
COMPLETE = update(RECORDS).where(RECORDS.c.seq == bindparam("reserved_seq"), RECORDS.c.outcome == "forwarding")
COMPLETE_WHOLE = COMPLETE.values({name: bindparam(name) for name in STORED}).returning(RECORDS.c.seq)
COMPLETE_ONLY_COMPLETED = COMPLETE.values({name: bindparam(name) for name in COMPLETED}).returning(RECORDS.c.seq)
CHAINED = (*chain.CHAIN_FIELDS, *chain.COVERED_WHEN_SET, "prev_hash", "hash")  # what verifying a record reads
LINKED = {
    names: select(*(RECORDS.c[name] for name in names))
    .where(RECORDS.c.position > bindparam("after"), RECORDS.c.position <= bindparam("until"))
    .order_by(RECORDS.c.position)
    .limit(bindparam("batch"))
    for names in (COLUMNS, CHAINED)
}
# What the records of some exchanges ended with (a batch's lines, looked for again after a restart).
ENDED = select(
    RECORDS.c.exchange, RECORDS.c.outcome, RECORDS.c.status, RECORDS.c.reason, RECORDS.c.zone, RECORDS.c.review_id
).where(RECORDS.c.kind == "exchange", RECORDS.c.exchange.in_(bindparam("exchanges", expanding=True)))
ABANDONED = select(RECORDS.c.seq).where(RECORDS.c.seq == bindparam("seq"), RECORDS.c.outcome == "abandoned")


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
    ground: str | None = None
    fields: list[str] | None = None
    emergency: bool = False
    consent_id: str | None = None
    review_id: str | None = None
    latency_ms: float | None = None
    request_digest: str | None = None
    response_digest: str | None = None
    sealed_digest: str | None = None
    lease_until: datetime | None = None
    seq: int | None = field(default=None, repr=False)
    holder_ms: float | None = field(default=None, repr=False)  # for metrics only: never stored
    reserved: dict[str, object] | None = field(default=None, repr=False)  # the values its reservation stored
    claim: NonceUse | None = field(default=None, repr=False)  # the request's nonce, claimed with the first write

    def values(self) -> dict[str, object]:
        return {name: value for name, value in vars(self).items() if name not in NOT_STORED}

    def completion(self) -> tuple[bool, dict[str, object]]:
        """Whether only the COMPLETED columns changed since the reservation, and the values to set."""
        values = self.values()
        reserved = self.reserved
        if reserved is not None and all(reserved[name] == values[name] for name in values if name not in COMPLETED):
            return True, {name: values[name] for name in COMPLETED}
        return False, values


NOT_STORED = frozenset({"seq", "holder_ms", "reserved", "claim"})


class Abandoned(StoreUnavailable):
    """The record was closed as abandoned before its request completed it."""


@dataclass(frozen=True)
class Sequenced:
    """One pass of the sequencer: how many records it linked, the chain's head, any checkpoint it signed."""

    linked: int
    head: chain.Head
    checkpoint: chain.Checkpoint | None


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


REASON_LENGTH = 63  # characters of a record's `reason`


def clipped(reason: str) -> str:
    """A free-text reason (a policy edit's runs to 1000 characters) as a record's `reason` holds it: cut with `…`
    when longer; the whole text stays where the edit is kept (the policy history, its change)."""
    return reason if len(reason) <= REASON_LENGTH else reason[: REASON_LENGTH - 1] + "…"


def edit_recorded(entry: AuditEntry, outcome: int | Pending | None, reason: str) -> None:
    """Fill in the record of a policy edit, the same from every front end: the version it published, or the change
    it is held as for another administrator's approval (202, as the API answers it) and why."""
    if isinstance(outcome, Pending):
        entry.status, entry.exchange, entry.reason = 202, outcome.change, clipped(reason)
    else:
        entry.policy_version = outcome


def record_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A record as searches answer it and exports hold it: every column, times in RFC 3339."""
    return {name: chain.timestamp(row[name]) if name == "at" else row[name] for name in COLUMNS}


class AuditLog:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        lane: Lane,
        batch_max: int = 256,
        batch_wait_s: float = 0.0,
        on_commit: Callable[[int, float], None] | None = None,
        *,
        reserve_bytes: int = 1024**2,
        lease: timedelta = timedelta(seconds=30),
    ) -> None:
        self._sessions = sessions
        self._lane = lane  # the writer's transactions: no ORM session, one hand-off each
        self._writer: GroupCommit[AuditEntry | NonceUse] = GroupCommit(self._write, batch_max, batch_wait_s, on_commit)
        self._reserve = Reserve(lane, reserve_bytes)
        self._lease = lease  # from an exchange's arrival, how long its reservation may be completed
        self._forwarding: set[int] = set()  # the entries (by id) in flight: reserved or held, not yet committed

    @property
    def batches(self) -> int:
        """Transactions the group commit has run so far."""
        return self._writer.batches

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """The group-commit writer's lifetime: records can be written while it is open, and all are
        committed when it closes. The reserve is filled first (if the store has no room for it, exchanges are
        refused until it has)."""
        await self._reserve.refill()
        async with self._writer.running():
            yield

    async def ready(self) -> None:
        """Raise StoreUnavailable unless the writer is running and the store takes a write that needs fresh room
        (the reserve's refill, at most once a second), with the room for completions kept."""
        if not self._writer.open:
            raise StoreUnavailable("the audit writer is not running")
        if not await self._reserve.refill():
            raise StoreUnavailable("the store takes no write, or has no room to complete an exchange")

    async def reserve(self, entry: AuditEntry) -> None:
        """Write the record of an exchange before forwarding it, so nothing is forwarded that the log cannot
        hold, nor whose completion it could not write; the record is found again by its exchange id. The
        request's nonce, if not claimed yet, is claimed in the same transaction (a replay raises errors.Replay)."""
        if entry.exchange is None:
            raise ValueError("only an exchange with its id is reserved")
        if len(self._forwarding) >= self._reserve.capacity or not await self._reserve.whole():
            raise StoreUnavailable("the store keeps no room to complete another exchange: nothing is forwarded")
        entry.outcome, entry.lease_until = "forwarding", entry.at + self._lease
        self._forwarding.add(id(entry))
        try:
            await self._submit(entry)
        except (StoreUnavailable, errors.Replay):
            self._forwarding.discard(id(entry))  # not written: there is nothing to complete
            raise

    async def hold(self, entries: Sequence[AuditEntry]) -> None:
        """Count `entries` as exchanges in flight whose records are committed whole once their holder has answered
        (a batch's lines: their window's marker, not a reserved record, says they were forwarded), so that nothing
        is forwarded that the log could not then hold; StoreUnavailable unless the reserve keeps room for them
        beside the exchanges already in flight. `commit` or `release` ends the count of each."""
        if len(self._forwarding) + len(entries) > self._reserve.capacity or not await self._reserve.whole():
            raise StoreUnavailable("the store keeps no room to record these exchanges: nothing is forwarded")
        self._forwarding.update(id(entry) for entry in entries)

    def release(self, entries: Sequence[AuditEntry]) -> None:
        """No longer count `entries` as in flight (those `hold` counted and no `commit` ended)."""
        self._forwarding.difference_update(id(entry) for entry in entries)

    async def commit(self, entry: AuditEntry) -> None:
        """Commit the final record of the attempt, claiming its nonce if not claimed yet; raises StoreUnavailable
        when the log cannot be written, errors.Replay (and writes nothing) when the nonce was claimed before."""
        try:
            await self._submit(entry)
        finally:
            self._forwarding.discard(id(entry))

    async def commit_all(self, entries: Sequence[AuditEntry]) -> None:
        """`commit` for many entries at once (a window of a batch's lines), behind the single requests' records in
        the writer's shared transactions (broker/base/store/group_commit.py); raises StoreUnavailable when any could
        not be written (the others stand). Entries claim no nonce."""
        try:
            await self._writer.submit_all(entries, background=True)
        except (SQLAlchemyError, *DRIVER_ERRORS, WriterClosed) as error:
            raise StoreUnavailable("audit log not writable") from error
        finally:
            self.release(entries)

    async def claim(self, entry: AuditEntry) -> None:
        """Claim the request's nonce now, alone (before the call changes any state); errors.Replay when it was
        claimed before. Nothing to do once it is claimed."""
        if entry.claim is not None:
            use, entry.claim = entry.claim, None
            await self._submit(use)

    async def prune_nonces(self, now: datetime) -> int:
        """Forget the nonces too old to be accepted again; how many."""
        return await nonces.prune(self._lane, now)

    async def _submit(self, item: AuditEntry | NonceUse) -> None:
        try:
            await self._writer.submit(item)
        except (SQLAlchemyError, *DRIVER_ERRORS, WriterClosed) as error:
            raise StoreUnavailable("audit log not writable") from error

    async def _write(self, items: Sequence[AuditEntry | NonceUse]) -> list[Exception | None]:
        """One batch in one transaction on the bare driver (_batch: a batch of one write statement needs none on
        PostgreSQL, where a statement is atomic by itself); what it says of each item."""
        uses = [item if isinstance(item, NonceUse) else item.claim for item in items]
        for item in items:
            if isinstance(item, AuditEntry):
                item.claim = None  # claimed by this batch, or refused: never claimed twice
        reserved = [item for item in items if isinstance(item, AuditEntry) and item.seq is not None]
        partly, wholly = _completions(reserved)
        complete = partial(_complete, reserved, partly, wholly)
        new = any(isinstance(item, AuditEntry) and item.seq is None for item in items)
        single = any(uses) + new + bool(partly) + bool(wholly) <= 1  # one write statement: a completion at low load
        try:
            batch = await self._lane.transact(partial(_batch, items, uses, complete), single)
        except DRIVER_ERRORS as error:
            if all(isinstance(item, NonceUse) or item.seq is None for item in items) or not store_full(error):
                raise
            # The store is full: the new records and claims fail (none was forwarded) and the completions of
            # exchanges already forwarded are written on the room the reserve kept for them.
            abandoned = await self._reserve.spend(complete)
            return [
                _closed(item, abandoned) if isinstance(item, AuditEntry) and item.seq is not None else error
                for item in items
            ]
        for entry, seq, values in batch.inserted:
            if entry.outcome == "forwarding":
                entry.seq, entry.reserved = seq, values
        return [_verdict(item, use, batch.replays, batch.abandoned) for item, use in zip(items, uses, strict=True)]

    async def records(self, **filters: str | None) -> list[AuditRecord]:
        query = select(AuditRecord).order_by(AuditRecord.seq)
        for name, value in filters.items():
            if value is not None:
                query = query.where(getattr(AuditRecord, name) == value)
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def ended(self, exchanges: Sequence[str]) -> dict[str, Any]:
        """The records of those of `exchanges` that have one, by exchange id: each row's exchange, outcome, status,
        reason, zone and review id."""
        rows = await self._lane.read(lambda connection: connection.execute(ENDED, {"exchanges": list(exchanges)}).all())
        return {row.exchange: row for row in rows}

    async def count(self) -> int:
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(AuditRecord)) or 0)

    async def search(self, query: AuditQuery) -> tuple[list[dict[str, Any]], Cursor | None]:
        """A page of records in (at, seq) order and the cursor of the next page, if there is one."""
        table = RECORDS.c
        statement = select(RECORDS)
        for name, value in query.filters.items():
            statement = statement.where(table[name] == value)
        if query.since is not None:
            statement = statement.where(table.at >= query.since)
        if query.until is not None:
            statement = statement.where(table.at < query.until)
        key = tuple_(table.at, table.seq)
        if query.after is not None:
            bound = tuple_(literal(query.after.at, table.at.type), literal(query.after.seq, table.seq.type))
            statement = statement.where(key < bound if query.newest_first else key > bound)
        order = (table.at.desc(), table.seq.desc()) if query.newest_first else (table.at, table.seq)
        statement = statement.order_by(*order).limit(query.limit + 1)
        async with self._sessions() as session:
            rows = [record_json(row._mapping) for row in (await session.execute(statement)).all()]
        if len(rows) <= query.limit:
            return rows, None
        last = rows[query.limit - 1]
        return rows[: query.limit], Cursor(datetime.fromisoformat(last["at"]), last["seq"])

    async def lookups(self, since: datetime, until: datetime, most: int) -> list[Lookup] | None:
        """Summaries of the exchange attempts made in [since, until), or None when there are more than `most`."""
        table = RECORDS.c
        statement = (
            select(table.seq, table.at, table.requester, table.subject, table.outcome, table.emergency)
            .where(table.kind == "exchange", table.at >= since, table.at < until, table.requester.is_not(None))
            .order_by(table.at, table.seq)
            .limit(most + 1)
        )
        async with self._sessions() as session:
            rows = (await session.execute(statement)).all()
        if len(rows) > most:
            return None
        return [Lookup(row.seq, row.at, row.requester, row.subject, row.outcome, row.emergency) for row in rows]

    async def decided(self, since: datetime) -> list[Question]:
        """The exchanges recorded since `since` that reached a zone, counted by (requester, category, purpose, zone)
        by the store: what a dry run of proposed rules re-decides (policies/changes.py)."""
        table = RECORDS.c
        keys = (table.requester, table.category, table.purpose, table.zone)
        statement = (
            select(*keys, func.count())
            .where(table.kind == "exchange", table.at >= since, *(key.is_not(None) for key in keys))
            .group_by(*keys)
            .order_by(*keys)
        )
        async with self._sessions() as session:
            rows = (await session.execute(statement)).all()
        return [Question(*row) for row in rows]

    async def tally(
        self,
        since: datetime,
        until: datetime,
        by: Sequence[str],
        filters: Mapping[str, str],
        step: timedelta | None = None,
    ) -> list[tuple[Any, ...]]:
        """How many records in [since, until) match `filters`, grouped by the columns `by`: rows of
        (*values, count); with `step`, grouped first by the index of the step-long slice of the period each
        record falls in: rows of (slice, *values, count). Counted by the store: nothing is read row by row."""
        table = RECORDS.c
        columns: list[Any] = [table[name] for name in by]
        if step is not None:
            edges = [since + step * (index + 1) for index in range(math.ceil((until - since) / step))]
            slices = case(*((table.at < edge, index) for index, edge in enumerate(edges)), else_=len(edges))
            columns.insert(0, slices.label("slice"))
        inner = select(*columns).where(table.at >= since, table.at < until)
        for name, value in filters.items():
            inner = inner.where(table[name] == value)
        # Grouped outside the subquery: PostgreSQL cannot tell that two CASE expressions with their own bound
        # parameters are the same, so it would refuse grouping by one and selecting the other.
        matched = inner.subquery()
        groups = list(matched.c)
        statement = select(*groups, func.count()).group_by(*groups)
        async with self._sessions() as session:
            return [tuple(row) for row in (await session.execute(statement)).all()]

    async def sequence(
        self, key: SigningKey, now: datetime, *, most: int, every: int, interval_s: float
    ) -> Sequenced | None:
        """Close the records left `forwarding` past their lease as abandoned, link up to `most` committed records
        and sign a checkpoint when one is due, in one transaction; None when another hub process holds the
        sequencer lock. A record reserved before leases were kept counts its arrival as its lease's end."""
        async with self._sessions() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                locked = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SEQUENCER_LOCK})
                if not locked:
                    return None
            await session.execute(
                update(AuditRecord)
                .where(
                    AuditRecord.position.is_(None),
                    AuditRecord.outcome == "forwarding",
                    func.coalesce(AuditRecord.lease_until, AuditRecord.at) < now,
                )
                .values(outcome="abandoned")
            )
            head = await _head(session)
            table = RECORDS.c
            pending = (
                await session.execute(
                    select(RECORDS)
                    .where(table.position.is_(None), table.outcome != "forwarding")
                    .order_by(table.seq)
                    .limit(most)
                )
            ).all()
            links = await asyncio.to_thread(chain.link, head, [record_json(row._mapping) for row in pending])
            if links:
                await session.execute(
                    update(AuditRecord),
                    [
                        {"seq": link.seq, "position": link.position, "prev_hash": link.prev_hash, "hash": link.hash}
                        for link in links
                    ],
                )
                head = chain.Head(links[-1].position, links[-1].hash)
            checkpoint = None
            if chain.checkpoint_due(await _last_checkpoint(session), head, now, every, interval_s, key):
                checkpoint = chain.sign_checkpoint(key, head, now)
                session.add(AuditCheckpoint(**vars(checkpoint)))
        return Sequenced(len(links), head, checkpoint)

    @property
    def store(self) -> str:
        """The store's URL, for a process of its own to open (see verify_spans.py)."""
        return self._lane.url

    async def checkpoints(self) -> list[chain.Checkpoint]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id))).all()
        return [_checkpoint(row) for row in rows]

    async def last_checkpoint(self) -> chain.Checkpoint | None:
        async with self._sessions() as session:
            return await _last_checkpoint(session)

    async def head(self) -> chain.Head:
        async with self._sessions() as session:
            return await _head(session)

    async def unlinked(self) -> int:
        async with self._sessions() as session:
            query = select(func.count()).select_from(AuditRecord).where(AuditRecord.position.is_(None))
            return int(await session.scalar(query) or 0)

    async def linked(
        self, batch: int = 10_000, after: int = 0, until: int = 2**31 - 1, names: tuple[str, ...] = COLUMNS
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The linked records after position `after` up to `until`, in chain order, `batch` at a time, in export
        form (read and converted on the lane): every column, or the `names` (COLUMNS or CHAINED)."""
        while True:

            def page(connection: Connection, after: int = after) -> list[dict[str, Any]]:
                rows = connection.execute(LINKED[names], {"after": after, "until": until, "batch": batch}).all()
                records = [dict(zip(names, row, strict=True)) for row in rows]
                for record in records:
                    record["at"] = chain.timestamp(record["at"])
                return records

            rows = await self._lane.read(page)
            if not rows:
                return
            yield rows
            after = rows[-1]["position"]

    async def verify(
        self, trusted: Collection[Ed25519PublicKey] | None, progress: Callable[[int], object] | None = None
    ) -> chain.Verdict:
        """Recompute the chain in the store and check it against the signed checkpoints, the newest signed by
        one of `trusted`; None trusts the hub keys the store records (the checkpoints' signers). Only a key kept
        apart from the store tells a log re-signed by someone who can write the store from the hub's own."""
        checkpoints = await self.checkpoints()
        verifier = chain.ChainVerifier(checkpoints, chain.signers(checkpoints) if trusted is None else trusted)
        async for records in self.linked(names=CHAINED):
            await asyncio.to_thread(verifier.feed, records)
            if progress is not None:
                progress(len(records))
        return await asyncio.to_thread(verifier.finish)


@dataclass(frozen=True)
class Batch:
    """What a batch's transaction wrote: the items (by id) whose nonce was claimed before, the new records with the
    seq and values stored, the reserved records found closed as abandoned (by seq)."""

    replays: set[int]
    inserted: list[tuple[AuditEntry, int, dict[str, object]]]
    abandoned: set[int]


async def _batch(
    items: Sequence[AuditEntry | NonceUse],
    uses: Sequence[NonceUse | None],
    complete: BareUnit[set[int]],
    bare: Bare,
) -> Batch:
    """A batch's writes, each a statement for all its rows (one round trip on asyncpg): the nonces claimed (an
    entry whose nonce was claimed before is a replay, and writes nothing); the new records inserted, returning
    their seq (a reserved record is found again by it); the reserved records completed (`complete`)."""
    claimants = [(item, use) for item, use in zip(items, uses, strict=True) if use is not None]
    claimed = await nonces.claim(bare, [use for _, use in claimants])
    replays = {id(item) for (item, _), first in zip(claimants, claimed, strict=True) if not first}
    new = [item for item in items if isinstance(item, AuditEntry) and item.seq is None and id(item) not in replays]
    values = [entry.values() for entry in new]
    seqs = [row.seq for row in await bare.each(INSERT, values)]
    return Batch(replays, list(zip(new, seqs, values, strict=True)), await complete(bare))


def _completions(entries: Sequence[AuditEntry]) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The rows completing the reserved records of `entries`: those setting the completed columns only, and those
    setting every column."""
    partly: list[dict[str, object]] = []
    wholly: list[dict[str, object]] = []
    for entry in entries:
        only_completed, values = entry.completion()
        (partly if only_completed else wholly).append({"reserved_seq": entry.seq, **values})
    return partly, wholly


async def _complete(
    entries: Sequence[AuditEntry], partly: list[dict[str, object]], wholly: list[dict[str, object]], bare: Bare
) -> set[int]:
    """Complete the reserved records of `entries` (`_completions`) unless they were closed meanwhile; the seqs of
    those found closed as abandoned, looked up only for the records not completed."""
    completed = {row.seq for row in await bare.each(COMPLETE_ONLY_COMPLETED, partly)}
    completed |= {row.seq for row in await bare.each(COMPLETE_WHOLE, wholly)}
    closed = [{"seq": entry.seq} for entry in entries if entry.seq not in completed]
    return {row.seq for row in await bare.each(ABANDONED, closed)}


def _verdict(
    item: AuditEntry | NonceUse, use: NonceUse | None, replays: set[int], abandoned: set[int]
) -> Exception | None:
    """What a batch's write says of one of its items: its nonce was claimed before, its record was closed as
    abandoned before its completion, or it is written."""
    if use is not None and id(item) in replays:
        return errors.Replay(f"nonce already used with key {use.key_id!r}")
    return _closed(item, abandoned) if isinstance(item, AuditEntry) else None


def _closed(entry: AuditEntry, abandoned: set[int]) -> Exception | None:
    if entry.seq in abandoned:
        return Abandoned(f"audit record {entry.seq} was closed as abandoned before it was completed")
    return None


async def _head(session: AsyncSession) -> chain.Head:
    query = select(AuditRecord.position, AuditRecord.hash).where(AuditRecord.position.is_not(None))
    row = (await session.execute(query.order_by(AuditRecord.position.desc()).limit(1))).first()
    if row is None:
        return chain.EMPTY
    assert row.position is not None and row.hash is not None  # noqa: S101 -- a linked row has both; for the type checker
    return chain.Head(row.position, row.hash)


async def _last_checkpoint(session: AsyncSession) -> chain.Checkpoint | None:
    row = (await session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1))).first()
    return None if row is None else _checkpoint(row)


def _checkpoint(row: AuditCheckpoint) -> chain.Checkpoint:
    return chain.Checkpoint(row.size, row.head, row.at, row.key_id, row.public_key_pem, row.signature)
