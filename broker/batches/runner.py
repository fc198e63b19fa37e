"""Running batches: a window of lines at a time, each line decided exactly as a single exchange is
(broker/exchange/pipeline.py: `question`, then `read_many` for the whole window, then `decide`), the lines cleared
for a holder forwarded to it in chunks, each line's record committed, then the window's answers and progress.

Exactly once. A line's exchange id is derived from the batch and the line's number (`exchange_id`), and its record
is its proof: a restart takes the batch up at its last committed window, and a line of that window that has a
record is not decided or forwarded again but answered from its record (a line whose holder was asked but whose
answer was not kept is answered `interrupted`: asking the holder again could deliver twice). Its grey review, if
it opened one, has an id derived from its exchange id, so it is found again rather than opened twice.

Fair. Batches have a budget of their own, apart from the exchanges': `at_once` batches run at a time in a process,
`chunks_at_once` chunks are in flight to holders, and every forwarded line first reserves its record as a single
exchange does, within the audit reserve's room (broker/audit/reserve.py). A holder that fails or times out has its
chunk asked again, `attempts` times in all with doubling waits, then fails its lines, never the batch.

A batch belongs to the process whose spool folder holds its file (as an import does, directory/imports.py); its
lease lets that process take it up again after a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress
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
from broker.batches.lines import Line, Window, exchange_id, read_window, result
from broker.batches.store import Answered, BatchJob, BatchStore
from broker.exchange.authentication import Principal
from broker.exchange.forwarding import HolderClient
from broker.exchange.gates import ExchangeRequest
from broker.exchange.pipeline import ExchangePipeline, PendingReview
from directory.store import AgencyEntry
from policies.rules import Decision, minimise

log = structlog.get_logger("crossroads.batches")


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
    decision: Decision | None = None
    holder: AgencyEntry | None = None  # where it is forwarded, once cleared
    answer: tuple[int, dict[str, Any]] | None = None
    recorded: bool = field(default=False)  # its record was committed before a restart: nothing to commit
    answered: Answered | None = None  # its answer as its requester reads it, once its record is committed


class BatchRunner:
    def __init__(
        self,
        batches: BatchStore,
        pipeline: ExchangePipeline,
        holders: HolderClient,
        audit: AuditLog,
        spool_dir: Path,
        settings: BatchSettings,
    ) -> None:
        self.batches = batches
        self.spool_dir = spool_dir
        self._pipeline = pipeline
        self._holders = holders
        self._audit = audit
        self._settings = settings
        self._turn = asyncio.Semaphore(settings.at_once)
        self._chunks = asyncio.Semaphore(settings.chunks_at_once)
        self._running: dict[str, asyncio.Task[BatchJob | None]] = {}

    def start(self, job: BatchJob) -> None:
        """Run `job` in the background, when its turn comes."""
        if job.id not in self._running:
            task = asyncio.create_task(self.run(job.id))
            self._running[job.id] = task
            task.add_done_callback(partial(self._ended, job.id))

    def _ended(self, batch_id: str, task: asyncio.Task[BatchJob | None]) -> None:
        self._running.pop(batch_id, None)
        if not task.cancelled() and task.exception() is not None:  # the store went away: taken up again later
            log.warning("batch.stopped", batch=batch_id, error=type(task.exception()).__name__)

    async def run(self, batch_id: str) -> BatchJob | None:
        """Run the batch from where it stands to its end, or until it is cancelled; None when it is not to be run
        here (finished, or held by another process)."""
        async with self._turn:
            job = await self.batches.claim(batch_id, datetime.now(UTC), self._settings.lease)
            if job is None:
                return None
            principal = Principal("agency", job.requester, "agency", job.key_id)
            resumed = True  # the first window after taking a batch up looks for its lines' records
            try:
                while job.status == "running" and job.position < job.size:
                    window = await asyncio.to_thread(
                        read_window, Path(job.spool), job.position, job.last_line, self._settings.window
                    )
                    if window.end == job.position:
                        break  # the file is shorter than it was: nothing more to read
                    answered = await self._window(job, principal, window, resumed)
                    resumed = False
                    job = await self.batches.advance(job, window.end, window.last, answered, self._settings.lease)
            except asyncio.CancelledError:
                await asyncio.shield(self.batches.release(job))  # this process is closing: taken up at its start
                raise
            job = await self.batches.finish(job, "done")
        log.info("batch.ended", batch=job.id, requester=job.requester, status=job.status, done=job.done)
        spool = Path(job.spool)
        if spool.parent == self.spool_dir:
            await asyncio.to_thread(spool.unlink, missing_ok=True)
        return job

    async def _window(self, job: BatchJob, principal: Principal, window: Window, resumed: bool) -> list[Answered]:
        """Decide, forward and record a window's lines; their answers, in order."""
        at, started = datetime.now(UTC), perf_counter()
        asked = [Asked(line, self._entry(job, line, at)) for line in window.lines]
        if resumed:
            earlier = await self._audit.ended([item.entry.exchange or "" for item in asked])
            for item in asked:
                row = earlier.get(item.entry.exchange or "")
                if row is not None:
                    item.answer, item.recorded = recalled(row), True
        for item in asked:
            if item.answer is None:
                await self._question(item)
        questions = [item for item in asked if item.request is not None]
        if questions:
            try:
                facts = await self._pipeline.read_many(principal, [item.request for item in questions], at)  # type: ignore[misc]
            except errors.Problem as stopped:  # the key revoked or the agency suspended meanwhile
                for item in questions:
                    item.answer = refused(item.entry, stopped)
                facts = []
            for item, fact in zip(questions, facts, strict=False):
                await self._decide(principal.id, item, fact, at)
        await self._recorded([item for item in asked if item.answer is not None], started)
        await self._forward_all(principal.id, [item for item in asked if item.holder is not None], started)
        return [item.answered for item in asked if item.answered is not None]

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

    async def _decide(self, requester: str, item: Asked, facts: Any, at: datetime) -> None:
        assert item.request is not None  # noqa: S101 -- only questions are decided
        try:
            decision = await self._pipeline.rule(requester, item.request)
            outcome = await self._pipeline.decide(requester, item.request, decision, facts, item.entry, at)
        except Exception as error:
            item.answer = refused(item.entry, error)
            return
        if isinstance(outcome, PendingReview):
            item.answer = (202, {"zone": "grey", "review": outcome.answer["review"]})
        else:
            item.decision, item.holder = decision, outcome.holder

    async def _forward_all(self, requester: str, cleared: Sequence[Asked], started: float) -> None:
        by_holder: dict[str, list[Asked]] = {}
        for item in cleared:
            assert item.holder is not None  # noqa: S101 -- only cleared lines are forwarded
            by_holder.setdefault(item.holder.id, []).append(item)
        size = self._settings.chunk
        chunks = [items[start : start + size] for items in by_holder.values() for start in range(0, len(items), size)]
        await asyncio.gather(*(self._forward(requester, chunk, started) for chunk in chunks))

    async def _forward(self, requester: str, chunk: Sequence[Asked], started: float) -> None:
        """Reserve the chunk's records (nothing is forwarded that the log could not complete), ask its holder,
        complete the records with its answers."""
        async with self._chunks:
            holder = chunk[0].holder
            assert holder is not None  # noqa: S101 -- a chunk is one holder's cleared lines
            for item in chunk:
                item.entry.at = datetime.now(UTC)  # its lease runs from now, not from the window's start
            await asyncio.gather(*(self._audit.reserve(item.entry) for item in chunk))
            payloads = [_payload(requester, item) for item in chunk]
            asking = perf_counter()
            answers = await self._ask(holder, payloads)
            holder_ms = (perf_counter() - asking) * 1000
        for item, answer in zip(chunk, answers, strict=True):
            item.entry.holder_ms = holder_ms
            if isinstance(answer, Exception):
                item.answer = refused(item.entry, answer)
            else:
                assert item.decision is not None  # noqa: S101 -- a cleared line was decided
                fields = {"zone": item.decision.zone, "holder": holder.id}
                item.answer = (200, {**fields, "data": minimise(answer, item.decision.fields)})
        await self._recorded(chunk, started)

    async def _ask(self, holder: AgencyEntry, payloads: list[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
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
        for item in items:
            assert item.answer is not None  # noqa: S101 -- only answered lines are recorded
            status, fields = item.answer
            body = result(item.line, item.entry.exchange, status, fields)
            item.answered = Answered(item.line.number, outcome_for(status), body)
            if not item.recorded:
                item.entry.status, item.entry.outcome = status, outcome_for(status)
                item.entry.response_digest = digest(body)
                item.entry.latency_ms = round((perf_counter() - started) * 1000, 3)
        await asyncio.gather(*(self._audit.commit(item.entry) for item in items if not item.recorded))

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
        for task in list(self._running.values()):
            task.cancel()
        for task in list(self._running.values()):
            with suppress(asyncio.CancelledError):
                await task


def _payload(requester: str, item: Asked) -> dict[str, Any]:
    request = item.request
    assert request is not None  # noqa: S101 -- a forwarded line was asked
    return {
        "exchange": item.entry.exchange,
        "requester": requester,
        "subject": request.subject,
        "category": request.category,
        "purpose": request.purpose,
        "params": request.params,
    }


def refused(entry: AuditEntry, error: Exception) -> tuple[int, dict[str, Any]]:
    """The answer of a line stopped by `error`: its problem, named in its record."""
    problem = problems.problem_for(error, kind=entry.kind, exchange=entry.exchange)
    entry.reason = entry.reason or problem.name
    return problem.status, {"problem": problem.document()}


TITLES = {problem.name: problem.title for problem in errors.ALL}


def recalled(row: Any) -> tuple[int, dict[str, Any]]:
    """The answer of a line decided before a restart, from its record: a grey line's review, a refusal's problem
    (its detail not kept), and for a line whose holder was asked, `interrupted`."""
    if row.outcome == "pending":
        return 202, {"zone": row.zone, "review": row.review_id}
    if row.outcome in ("refused", "failed") and row.reason in TITLES:
        detail = "decided before the hub restarted: its record keeps the reason, not the detail"
        document = {"type": errors.PROBLEM_BASE + row.reason, "title": TITLES[row.reason], "status": row.status}
        return row.status, {"problem": {**document, "detail": detail}}
    interrupted = errors.Interrupted("the hub stopped after asking the holder for this line; ask for it again")
    return interrupted.status, {"problem": interrupted.document()}
