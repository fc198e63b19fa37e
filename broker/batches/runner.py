"""Running batches: a window of lines at a time, each line decided exactly as a single exchange is
(broker/exchange/pipeline.py: `question`, then `read_many` for the whole window, then `decide`), the lines cleared
for a holder forwarded to it in chunks, each line's record committed, then the window's answers and progress. The
next window is read while one is forwarded.

Exactly once. A line's exchange id is derived from the batch and the line's number (`exchange_id`), and its record
is its proof. A window's refusals and grey lines are recorded first; then its marker (`asked`: its last line) is
committed, and only then are its cleared lines forwarded, each recorded once its holder has answered. A restart
takes the batch up at its last committed window: a line of it with a record is answered from its record, not
decided or forwarded again; a line without one, under the marker, may have been asked and is answered
`interrupted` (asking the holder again could deliver twice), with a record; any other is decided afresh. A grey
line's review has an id derived from its exchange id, so it is found again rather than opened twice.

Fair. Batches have a budget of their own, apart from the exchanges': a serving hub runs each in a process of its own
at a lower scheduling priority (`apart`: broker/hub.py), so the exchanges it answers meanwhile have the CPU first;
`at_once` batches at a time, `chunks_at_once` chunks in flight to holders; a window's records wait behind single
requests' in group commit. Nothing is forwarded unless the audit reserve keeps room for the records to come
(`AuditLog.hold`). A holder that fails or times out has its chunk asked again, `attempts` times in all with doubling
waits, then fails its lines, never the batch.

A batch belongs to the hub whose spool folder holds its file (as an import does, directory/imports.py); its lease
lets that hub take it up again after a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Any

import structlog

from broker import problems
from broker.audit.log import AuditEntry, AuditLog, digest, outcome_for
from broker.base import errors
from broker.base.processes import Background, run_apart
from broker.batches.lines import Line, Window, exchange_id, read_window, result
from broker.batches.store import Answered, BatchJob, BatchStore
from broker.exchange.authentication import Principal
from broker.exchange.forwarding import Answer, HolderClient
from broker.exchange.gates import ExchangeRequest
from broker.exchange.pipeline import ExchangePipeline, Facts, PendingReview, Seal, forwarded, released
from directory.store import AgencyEntry
from policies.rules import Decision

log = structlog.get_logger("crossroads.batches")
YIELD_EVERY = 50  # lines decided between two turns of the event loop


@dataclass(frozen=True)
class BatchSettings:
    window: int = 2_000  # lines decided together: one read of each table for all of them
    chunk: int = 250  # lines of one chunk to a holder
    chunks_at_once: int = 2  # chunks in flight to holders, in a process
    at_once: int = 2  # batches running at once, in a process; the others wait their turn
    attempts: int = 3  # tries of a chunk whose holder fails or times out
    backoff_s: float = 0.5  # the wait before a chunk's second try; doubled for each further one
    lease: timedelta = timedelta(seconds=60)  # a running batch whose process stops is taken up after this
    keep: timedelta = timedelta(days=7)  # an ended batch's answers are forgotten this long after, read or not


@dataclass
class Asked:
    """A line of the window on its way: its record, the answer once it has one (status and fields)."""

    line: Line
    entry: AuditEntry
    request: ExchangeRequest | None = None
    facts: Facts | None = None  # what the store said for it, read with its window
    decision: Decision | None = None
    holder: AgencyEntry | None = None  # where it is forwarded, once cleared
    seal: Seal | None = None  # how its answer is sealed, where its category is
    answer: tuple[int, dict[str, Any]] | None = None
    recorded: bool = field(default=False)  # its record was committed before a restart: nothing to commit
    answered: Answered | None = None  # its answer as its requester reads it, once its record is committed


@dataclass(frozen=True)
class Read:
    """A window of lines, asked and read from the store, ready to be decided."""

    window: Window
    asked: list[Asked]
    at: datetime


class BatchRunner:
    def __init__(
        self,
        batches: BatchStore,
        pipeline: ExchangePipeline,
        holders: HolderClient,
        audit: AuditLog,
        spool_dir: Path,
        settings: BatchSettings,
        apart: Callable[[str], None] | None = None,
    ) -> None:
        self.batches = batches
        self.spool_dir = spool_dir
        self._pipeline = pipeline
        self._holders = holders
        self._audit = audit
        self._settings = settings
        self._apart = apart  # runs a batch, by its id, in a process of its own
        self._turn = asyncio.Semaphore(settings.at_once)
        self._chunks = asyncio.Semaphore(settings.chunks_at_once)
        self._running = Background(_failed)

    def start(self, job: BatchJob) -> None:
        """Run `job` in the background, when its turn comes: in a process of its own with `apart`."""
        self._running.start(job.id, partial(self._run_apart if self._apart else self.run, job.id))

    async def _run_apart(self, batch_id: str) -> BatchJob | None:
        """Run the batch in a process of its own (`apart`), within this runner's budget of batches at once; once
        that process has ended, the batch as it stands. Cancelled, the process is asked to stop (SIGTERM): the
        batch stands at its last committed window."""
        assert self._apart is not None  # noqa: S101 -- only started with `apart`
        async with self._turn:
            await run_apart(self._apart, (batch_id,), f"crossroads-batch-{batch_id}")
        return await self.batches.get(batch_id)

    async def run(self, batch_id: str) -> BatchJob | None:
        """Run the batch from where it stands to its end, or until it is cancelled; None when it is not to be run
        here (finished, or held by another process). Each window is read (its file lines, then the store) while
        the one before it is forwarded."""
        async with self._turn:
            job = await self.batches.claim(batch_id, datetime.now(UTC), self._settings.lease)
            if job is None:
                return None
            principal = Principal("agency", job.requester, "agency", job.key_id)
            ahead: asyncio.Future[Read | None] = asyncio.ensure_future(
                self._read(job, principal, job.position, job.last_line, resumed=True)
            )
            try:
                while (read := await ahead) is not None and job.status == "running":
                    window = read.window
                    ahead = asyncio.ensure_future(self._read(job, principal, window.end, window.last, resumed=False))
                    answered = await self._finish(job, principal, read)
                    job = await self.batches.advance(job, window.end, window.last, answered, self._settings.lease)
            except asyncio.CancelledError:
                await asyncio.shield(self.batches.release(job))  # this process is closing: taken up at its start
                raise
            finally:
                _drop(ahead)
            job = await self.batches.finish(job, "done")
        log.info("batch.ended", batch=job.id, requester=job.requester, status=job.status, done=job.done)
        spool = Path(job.spool)
        if spool.parent == self.spool_dir:
            await asyncio.to_thread(spool.unlink, missing_ok=True)
        return job

    async def _read(self, job: BatchJob, principal: Principal, start: int, before: int, resumed: bool) -> Read | None:
        """The window of lines from byte offset `start`, each asked (`question`) and the store read for all of them
        at once (`read_many`); None past the file's end. A window a restart cut short (`resumed`) first finds its
        lines' records."""
        if start >= job.size:
            return None
        window = await asyncio.to_thread(read_window, Path(job.spool), start, before, self._settings.window)
        if window.end == start:
            return None  # the file is shorter than it was: nothing more to read
        at = datetime.now(UTC)
        asked = [Asked(line, self._entry(job, line, at)) for line in window.lines]
        if resumed:
            await self._recall(job, asked)
        for number, item in enumerate(asked):
            await _turn(number)
            if item.answer is None:
                await self._question(item)
        await self._read_store(principal, [item for item in asked if item.request is not None], at)
        return Read(window, asked, at)

    async def _read_store(self, principal: Principal, questions: Sequence[Asked], at: datetime) -> None:
        if not questions:
            return
        try:
            facts = await self._pipeline.read_many(principal, [item.request for item in questions], at)  # type: ignore[misc]
        except errors.Problem as stopped:  # the key revoked or the agency suspended meanwhile
            for item in questions:
                item.request, item.answer = None, refused(item.entry, stopped)
            return
        for item, fact in zip(questions, facts, strict=True):
            item.facts = fact

    async def _finish(self, job: BatchJob, principal: Principal, read: Read) -> list[Answered]:
        """Decide the lines read, record those refused or waiting for a review, forward the others and record
        them with their holders' answers; the window's answers, in order."""
        started = perf_counter()
        for number, item in enumerate(read.asked):
            await _turn(number)
            if item.request is not None:
                await self._decide(principal.id, item, read.at)
        await self._recorded([item for item in read.asked if item.answer is not None], started)
        cleared = [item for item in read.asked if item.holder is not None]
        if cleared:
            await self.batches.asking(job, read.window.last)  # from here a line without a record may have been asked
            await self._forward_all(principal.id, cleared, started)
        return [item.answered for item in read.asked if item.answered is not None]

    async def _recall(self, job: BatchJob, asked: Sequence[Asked]) -> None:
        """The lines of the window a restart cut short that were decided before it: each answered from its record,
        or, cleared for its holder and maybe asked, `interrupted` (never asked twice)."""
        earlier = await self._audit.ended([item.entry.exchange or "" for item in asked])
        for item in asked:
            row = earlier.get(item.entry.exchange or "")
            if row is not None:
                item.answer, item.recorded = recalled(row), True
            elif item.line.number <= job.asked:
                item.answer = refused(item.entry, INTERRUPTED)

    async def _question(self, item: Asked) -> None:
        try:
            if item.line.problem is not None:
                raise item.line.problem
            assert item.line.document is not None  # noqa: S101 -- a line without a problem has its request
            request = await self._pipeline.question(item.line.document, item.entry)
            if request.emergency is not None:
                raise errors.Invalid("a batch carries no emergency access: ask for one as a single exchange")
            item.request = request
        except Exception as error:
            item.answer = refused(item.entry, error)

    async def _decide(self, requester: str, item: Asked, at: datetime) -> None:
        assert item.request is not None and item.facts is not None  # noqa: S101 -- only questions read are decided
        try:
            decision = await self._pipeline.rule(requester, item.request)
            outcome = await self._pipeline.decide(requester, item.request, decision, item.facts, item.entry, at)
        except Exception as error:
            item.answer = refused(item.entry, error)
            return
        if isinstance(outcome, PendingReview):
            item.answer = (202, {"zone": "grey", "review": outcome.answer["review"]})
        else:
            item.decision, item.holder, item.seal = decision, outcome.holder, outcome.seal

    async def _forward_all(self, requester: str, cleared: Sequence[Asked], started: float) -> None:
        by_holder: dict[str, list[Asked]] = {}
        for item in cleared:
            assert item.holder is not None  # noqa: S101 -- only cleared lines are forwarded
            by_holder.setdefault(item.holder.id, []).append(item)
        size = self._settings.chunk
        chunks = [items[start : start + size] for items in by_holder.values() for start in range(0, len(items), size)]
        await asyncio.gather(*(self._forward(requester, chunk, started) for chunk in chunks))

    async def _forward(self, requester: str, chunk: Sequence[Asked], started: float) -> None:
        """Ask the chunk's holder, once the log keeps room for the chunk's records (nothing is forwarded that it
        could not then hold), and commit each line's record with its answer."""
        holder = chunk[0].holder
        assert holder is not None  # noqa: S101 -- a chunk is one holder's cleared lines
        entries = [item.entry for item in chunk]
        async with self._chunks:
            await self._audit.hold(entries)
            try:
                answers = await self._ask(holder, [_payload(requester, item) for item in chunk])
                for item, answer in zip(chunk, answers, strict=True):
                    if isinstance(answer, Exception):
                        item.answer = refused(item.entry, answer)
                    else:
                        assert item.decision is not None  # noqa: S101 -- a cleared line was decided
                        item.answer = (200, {**_delivered(item), **released(answer, item.decision, item.entry)})
                await self._recorded(chunk, started)
            finally:
                self._audit.release(entries)  # those whose record was not committed (the store failed)

    async def _ask(self, holder: AgencyEntry, payloads: list[dict[str, Any]]) -> list[Answer | Exception]:
        """The holder's answers to a chunk, asked again after a failure of the whole chunk, `attempts` times in all;
        then each line fails with that failure."""
        for attempt in range(self._settings.attempts):
            try:
                return await self._holders.chunk(holder, payloads)
            except errors.Problem as failure:
                if attempt + 1 == self._settings.attempts:
                    return [failure] * len(payloads)
                log.info("batch.chunk_retried", holder=holder.id, lines=len(payloads), error=failure.name)
                await asyncio.sleep(self._settings.backoff_s * 2**attempt)
        return []  # attempts is at least 1: not reached

    async def _recorded(self, items: Sequence[Asked], started: float) -> None:
        """Commit the records of answered lines (those not recorded before a restart) with their answers."""
        for number, item in enumerate(items):
            await _turn(number)
            assert item.answer is not None  # noqa: S101 -- only answered lines are recorded
            status, fields = item.answer
            body, outcome = result(item.line, item.entry.exchange, status, fields), outcome_for(status)
            item.answered = Answered(item.line.number, outcome, body)
            if not item.recorded:
                item.entry.status, item.entry.outcome = status, outcome
                item.entry.response_digest = digest(body)
                item.entry.latency_ms = round((perf_counter() - started) * 1000, 3)
        await self._audit.commit_all([item.entry for item in items if not item.recorded])

    def _entry(self, job: BatchJob, line: Line, at: datetime) -> AuditEntry:
        return AuditEntry(
            at=at,
            kind="exchange",
            exchange=exchange_id(job.id, line.number),
            requester=job.requester,
            key_id=job.key_id,
            request_digest=digest(line.raw),
        )

    async def resume(self) -> None:
        """Take up every unfinished batch whose file is in this runner's spool folder."""
        for job in await self.batches.unfinished(datetime.now(UTC)):
            spool = Path(job.spool)
            if spool.parent == self.spool_dir and await asyncio.to_thread(spool.exists):
                self.start(job)

    async def expire(self) -> int:
        """Forget the answers of batches ended longer than `keep` ago; how many."""
        return await self.batches.expire(datetime.now(UTC) - self._settings.keep)

    async def close(self) -> None:
        """Stop the batches running here; each is taken up again at its last committed window."""
        await self._running.close()


def _failed(batch_id: str, error: BaseException) -> None:  # the store went away: taken up again later
    log.warning("batch.stopped", batch=batch_id, error=type(error).__name__)


def _drop(ahead: asyncio.Future[Any]) -> None:
    """Cancel a window read ahead that is no longer wanted; a failure it already met is the next run's to meet."""
    if ahead.done() and not ahead.cancelled():
        ahead.exception()  # retrieved: not reported as never retrieved
    ahead.cancel()


async def _turn(number: int) -> None:
    """Let the event loop run the exchanges waiting every YIELD_EVERY lines: a window's decisions are many short
    steps that rarely wait, which would otherwise hold the loop for the whole window."""
    if number % YIELD_EVERY == YIELD_EVERY - 1:
        await asyncio.sleep(0)


def _payload(requester: str, item: Asked) -> dict[str, Any]:
    assert item.request is not None  # noqa: S101 -- a forwarded line was asked
    return forwarded(requester, item.request, item.entry, item.seal)


def _delivered(item: Asked) -> dict[str, Any]:
    assert item.decision is not None and item.holder is not None  # noqa: S101 -- a delivered line was cleared
    return {"zone": item.decision.zone, "holder": item.holder.id}


def refused(entry: AuditEntry, error: Exception) -> tuple[int, dict[str, Any]]:
    """The answer of a line stopped by `error`: its problem, named in its record."""
    problem = problems.problem_for(error, kind=entry.kind, exchange=entry.exchange)
    entry.reason = entry.reason or problem.name
    return problem.status, {"problem": problem.document()}


TITLES = {problem.name: problem.title for problem in errors.ALL}
INTERRUPTED = errors.Interrupted("the hub stopped after asking the holder for this line; ask for it again")


def recalled(row: Any) -> tuple[int, dict[str, Any]]:
    """The answer of a line decided before a restart, from its record: a grey line's review, a refusal's problem
    (its detail not kept), and for a line whose holder was asked, `interrupted`."""
    if row.outcome == "pending":
        return 202, {"zone": row.zone, "review": row.review_id}
    if row.outcome in ("refused", "failed") and row.reason in TITLES:
        detail = "decided before the hub restarted: its record keeps the reason, not the detail"
        document = {"type": errors.PROBLEM_BASE + row.reason, "title": TITLES[row.reason], "status": row.status}
        return row.status, {"problem": {**document, "detail": detail}}
    return INTERRUPTED.status, {"problem": INTERRUPTED.document()}
