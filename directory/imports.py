"""Bulk imports of references: an agency's NDJSON file, one reference a line, applied a batch at a time.

A batch's lines are read and checked off the event loop, the valid ones declared in one transaction
(`DirectoryStore.declare_many`: a line is applied whole or not at all), and then the import's progress (the byte
offset of its next line, the counts, the lines rejected and why) is committed. A restart therefore resumes an
import at its last committed batch: that batch may be declared a second time, which changes nothing, since a
declaration that says what the directory already says is not written again (the same holds for a file sent
twice). An import belongs to the process whose state directory holds its file; another process marks one whose
process stopped `interrupted`, with exactly what it applied, and the first takes it up again when it restarts.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Sequence
from contextlib import aclosing, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import structlog
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from broker.base import eventloop, logs
from broker.base.processes import Background, run_apart
from broker.base.store import Lane, create_engine
from broker.base.wire import bounded_line
from directory.models import DirectoryImport, DirectoryImportRejection
from directory.references import Declaration, DeclarationInvalid, parse_declaration
from directory.store import DirectoryStore

log = structlog.get_logger("crossroads.directory")

MAX_LINE = 4096  # bytes of one reference line; a longer line is rejected whole
UNFINISHED = ("queued", "running", "interrupted")


@dataclass(frozen=True)
class ImportJob:
    id: str
    agency: str
    declared_by: str
    status: str
    body_digest: str
    size: int
    spool: str
    position: int
    lines: int
    applied: int
    rejected: int
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "import": self.id,
            "agency": self.agency,
            "status": self.status,
            "lines": self.lines,
            "applied": self.applied,
            "rejected": self.rejected,
            "bytes": self.size,
            "bytes_read": self.position,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "updated_at": self.updated_at.isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True)
class Batch:
    """Lines read from `start` to `end` (byte offsets): the declarations, each with its line number, and the
    lines rejected while reading them."""

    end: int
    lines: int
    declarations: list[tuple[int, Declaration]]
    rejected: list[tuple[int, str]]


def read_batch(path: Path, start: int, first_line: int, most: int, owner: str) -> Batch:
    """Up to `most` reference lines of the file from byte offset `start`, whose first is line `first_line`
    (blank lines are counted as lines but are no reference)."""
    declarations: list[tuple[int, Declaration]] = []
    rejected: list[tuple[int, str]] = []
    number, read = first_line - 1, 0
    with path.open("rb") as file:
        file.seek(start)
        while read < most:
            raw, too_long = bounded_line(file, MAX_LINE)
            if not raw:
                break
            number += 1
            if too_long:
                rejected.append((number, f"the line is longer than {MAX_LINE} bytes"))
                read += 1
                continue
            if not raw.strip():
                continue
            read += 1
            verdict = parse_line(raw, owner)
            if isinstance(verdict, str):
                rejected.append((number, verdict))
            else:
                declarations.append((number, verdict))
        end = file.tell()
    return Batch(end, number - first_line + 1, declarations, rejected)


def parse_line(raw: bytes, owner: str) -> Declaration | str:
    """The declaration on one line, or why the line is rejected."""
    try:
        document = orjson.loads(raw)
    except ValueError:  # orjson's JSONDecodeError, invalid UTF-8 included
        return "the line is not a JSON object"
    try:
        return parse_declaration(document, owner)
    except DeclarationInvalid as error:
        return str(error)


class ImportStore:
    """The imports' progress and rejected lines (directory_imports, directory_import_rejections)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(self, agency: str, declared_by: str, body_digest: str, size: int, spool: Path) -> ImportJob:
        now = datetime.now(UTC)
        row = DirectoryImport(
            id=str(uuid.uuid4()),
            agency=agency,
            declared_by=declared_by,
            status="queued",
            body_digest=body_digest,
            size=size,
            spool=str(spool),
            position=0,
            lines=0,
            applied=0,
            rejected=0,
            created_at=now,
            updated_at=now,
            lease_until=None,
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
        return _job(row)

    async def get(self, import_id: str) -> ImportJob | None:
        async with self._sessions() as session:
            row = await session.get(DirectoryImport, import_id)
        return None if row is None else _job(row)

    async def rejections(self, import_id: str, after: int, most: int) -> list[tuple[int, str]]:
        """The rejected lines after line `after`, at most `most`, in order."""
        query = (
            select(DirectoryImportRejection.line, DirectoryImportRejection.detail)
            .where(DirectoryImportRejection.import_id == import_id, DirectoryImportRejection.line > after)
            .order_by(DirectoryImportRejection.line)
            .limit(most)
        )
        async with self._sessions() as session:
            return [(row.line, row.detail) for row in (await session.execute(query)).all()]

    async def claim(self, import_id: str, now: datetime, lease: timedelta) -> ImportJob | None:
        """Take the import up, unless another process holds it; the rejections of lines it had not committed
        (none, unless a batch was cut short) are dropped, since they will be read again."""
        async with self._sessions() as session, session.begin():
            taken = await session.execute(
                update(DirectoryImport)
                .where(DirectoryImport.id == import_id, DirectoryImport.status.in_(UNFINISHED))
                .where((DirectoryImport.lease_until.is_(None)) | (DirectoryImport.lease_until < now))
                .values(status="running", lease_until=now + lease, updated_at=now)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row = await session.get(DirectoryImport, import_id)
            assert row is not None  # noqa: S101 -- just updated, in this transaction
            await session.execute(
                delete(DirectoryImportRejection).where(
                    DirectoryImportRejection.import_id == import_id, DirectoryImportRejection.line > row.lines
                )
            )
            return _job(row)

    async def advance(
        self, job: ImportJob, batch: Batch, applied: int, rejected: Sequence[tuple[int, str]], lease: timedelta
    ) -> ImportJob:
        """Commit a batch's progress and its rejected lines; the import as it now stands."""
        now = datetime.now(UTC)
        advanced = replace(
            job,
            position=batch.end,
            lines=job.lines + batch.lines,
            applied=job.applied + applied,
            rejected=job.rejected + len(rejected),
            updated_at=now,
        )
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(DirectoryImport)
                .where(DirectoryImport.id == job.id)
                .values(
                    position=advanced.position,
                    lines=advanced.lines,
                    applied=advanced.applied,
                    rejected=advanced.rejected,
                    updated_at=now,
                    lease_until=now + lease,
                )
            )
            if rejected:
                await _insert_rejections(session, [(job.id, line, detail[:500]) for line, detail in rejected])
        return advanced

    async def finish(self, job: ImportJob, status: str) -> ImportJob:
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(DirectoryImport)
                .where(DirectoryImport.id == job.id)
                .values(status=status, updated_at=now, lease_until=None)
            )
        return replace(job, status=status, updated_at=now)

    async def unfinished(self, now: datetime) -> list[ImportJob]:
        """Imports not finished whose process holds them no longer (or never took them up)."""
        query = select(DirectoryImport).where(
            DirectoryImport.status.in_(UNFINISHED),
            (DirectoryImport.lease_until.is_(None)) | (DirectoryImport.lease_until < now),
        )
        async with self._sessions() as session:
            return [_job(row) for row in (await session.scalars(query.order_by(DirectoryImport.created_at))).all()]


REJECTION_COLUMNS = ("import_id", "line", "detail")


async def _insert_rejections(session: AsyncSession, rows: list[tuple[str, int, str]]) -> None:
    """A batch's rejected lines, in its transaction: on PostgreSQL by binary COPY on the session's own connection
    (asyncpg runs an INSERT a row for an executemany: a tenth of an import's time where a line in ten is bad)."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        copying = (await connection.get_raw_connection()).driver_connection.copy_records_to_table  # type: ignore[union-attr]
        await copying("directory_import_rejections", records=rows, columns=REJECTION_COLUMNS)
    else:
        values = [dict(zip(REJECTION_COLUMNS, row, strict=True)) for row in rows]
        await session.execute(insert(DirectoryImportRejection), values)


Progress = Callable[[ImportJob], object]
Finished = Callable[[ImportJob], Awaitable[None]]


class Importer:
    """Applies imports; one per hub process (or CLI command), several share the store safely. Files in
    `spool_dir` are the hub's own copies of what agencies sent, deleted once applied; others are left alone.

    Given the store's URL (`apart`), an importer applies each import it starts in a process of its own, on its own
    connection to the store: the import's reading and checking take another core than the hub's event loop, which
    keeps its own for the exchanges (the store orders the two processes' writes as it orders any two hubs')."""

    def __init__(
        self,
        imports: ImportStore,
        directory: DirectoryStore,
        spool_dir: Path,
        batch: int = 1_000,
        lease: timedelta = timedelta(seconds=60),
        finished: Finished | None = None,
        apart: str | None = None,
    ) -> None:
        self.imports = imports
        self.spool_dir = spool_dir
        self._directory = directory
        self._batch = batch
        self._lease = lease
        self._finished = finished
        self._apart = apart
        self._apart_turn = asyncio.Semaphore(1)
        self._running = Background(_failed)

    def start(self, job: ImportJob) -> None:
        """Apply `job` in the background: in a process of its own with `apart`, else in this one."""
        self._running.start(job.id, partial(self._run_apart if self._apart else self.run, job.id))

    async def run(self, import_id: str, progress: Progress | None = None) -> ImportJob | None:
        """Apply the import from where it stands to its end; None when another process holds it."""
        job = await self.imports.claim(import_id, datetime.now(UTC), self._lease)
        if job is None:
            return None
        spool = Path(job.spool)
        try:
            async with aclosing(self._batches(job)) as batches:
                async for batch in batches:
                    job = await self._apply(job, batch)
                    if progress is not None:
                        progress(job)
        except asyncio.CancelledError:
            await asyncio.shield(self.imports.finish(job, "interrupted"))
            raise
        job = await self.imports.finish(job, "done")
        log.info("directory.import_done", id=job.id, agency=job.agency, lines=job.lines, rejected=job.rejected)
        if spool.parent == self.spool_dir:
            await asyncio.to_thread(spool.unlink, missing_ok=True)
        if self._finished is not None:
            await self._finished(job)
        return job

    async def _run_apart(self, import_id: str) -> ImportJob | None:
        """Apply the import in a process of its own (`apply_apart`), one import at a time (each takes a core; the
        others stay queued), and once it has ended read where the import stands. Cancelled, the process is asked to
        stop (SIGTERM), and stands at its last committed batch."""
        async with self._apart_turn:
            arguments = (self._apart, import_id, self.spool_dir, self._batch, self._lease)
            await run_apart(apply_apart, arguments, f"crossroads-import-{import_id}")
        job = await self.imports.get(import_id)
        if job is not None and job.status == "done" and self._finished is not None:
            await self._finished(job)
        return job

    async def _batches(self, job: ImportJob) -> AsyncGenerator[Batch, None]:
        """The file's batches from where `job` stands, each read off the event loop while the one before it is
        applied (the store's work and the reading overlap)."""

        def read(position: int, line: int) -> Coroutine[Any, Any, Batch]:
            return asyncio.to_thread(read_batch, Path(job.spool), position, line, self._batch, job.agency)

        position, line = job.position, job.lines + 1
        ahead: asyncio.Future[Batch] | None = None
        try:
            while position < job.size:
                batch = await (ahead or read(position, line))
                if batch.end == position:
                    return  # the file is shorter than it was said to be: nothing more to read
                position, line = batch.end, line + batch.lines
                ahead = asyncio.ensure_future(read(position, line)) if position < job.size else None
                yield batch
        finally:
            if ahead is not None:
                ahead.cancel()

    async def _apply(self, job: ImportJob, batch: Batch) -> ImportJob:
        declared = [declaration for _, declaration in batch.declarations]
        verdicts = await self._directory.declare_many(declared, job.declared_by, datetime.now(UTC))
        refused = [(line, reason) for (line, _), reason in zip(batch.declarations, verdicts, strict=True) if reason]
        rejected = sorted([*batch.rejected, *refused])
        return await self.imports.advance(job, batch, len(declared) - len(refused), rejected, self._lease)

    async def resume(self) -> None:
        """Take up every unfinished import whose file is in this importer's `spool_dir`; mark `interrupted` those
        whose process stopped and whose file is elsewhere (their own process takes them up when it starts)."""
        for job in await self.imports.unfinished(datetime.now(UTC)):
            spool = Path(job.spool)
            if spool.parent == self.spool_dir and await asyncio.to_thread(spool.exists):
                self.start(job)
            elif job.status == "running":
                await self.imports.finish(job, "interrupted")

    async def close(self) -> None:
        """Stop the imports running here; each stands at its last committed batch."""
        await self._running.close()


def _failed(import_id: str, error: BaseException) -> None:  # the store went away: taken up again later
    log.warning("directory.import_failed", id=import_id, error=type(error).__name__)


def apply_apart(database_url: str, import_id: str, spool_dir: Path, batch: int, lease: timedelta) -> None:
    """The life of an import's own process: apply it on a connection of its own until its end, or until SIGTERM
    stops it at its last committed batch (marked `interrupted`, taken up again when the hub starts)."""
    logs.configure(logs.StandardError())
    eventloop.run(_apply_apart(database_url, import_id, spool_dir, batch, lease))


async def _apply_apart(database_url: str, import_id: str, spool_dir: Path, batch: int, lease: timedelta) -> None:
    running = asyncio.current_task()
    assert running is not None  # noqa: S101 -- for the type checker: eventloop.run runs this as a task
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, running.cancel)
    engine = create_engine(database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        importer = Importer(ImportStore(sessions), DirectoryStore(sessions, Lane(engine)), spool_dir, batch, lease)
        with suppress(asyncio.CancelledError):
            await importer.run(import_id)
    finally:
        await engine.dispose()


def _job(row: DirectoryImport) -> ImportJob:
    return ImportJob(
        row.id,
        row.agency,
        row.declared_by,
        row.status,
        row.body_digest,
        row.size,
        row.spool,
        row.position,
        row.lines,
        row.applied,
        row.rejected,
        row.created_at,
        row.updated_at,
    )
