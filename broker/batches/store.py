"""The batches' progress and their lines' answers (`batches`, `batch_results`): the only code that touches them."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from broker.base.store import Base
from broker.batches.models import Batch, BatchResult

UNFINISHED = ("queued", "running")
RESULTS = Base.metadata.tables[BatchResult.__tablename__]  # the table itself, for Core's executemany


@dataclass(frozen=True)
class BatchJob:
    id: str
    requester: str
    key_id: str
    status: str
    body_digest: str
    size: int
    spool: str
    lines: int
    position: int
    done: int
    last_line: int  # the number of the last line of the file read (blank lines counted)
    asked: int  # the last line of the window being forwarded (models.Batch.asked)
    by_outcome: dict[str, int]
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "batch": self.id,
            "requester": self.requester,
            "status": self.status,
            "lines": self.lines,
            "done": self.done,
            "by_outcome": self.by_outcome,
            "created_at": _time(self.created_at),
            "updated_at": _time(self.updated_at),
        }


@dataclass(frozen=True)
class Answered:
    """A line's answer: its number, its outcome (delivered, pending, refused, failed) and the NDJSON line."""

    line: int
    outcome: str
    body: bytes


class BatchStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(
        self, requester: str, key_id: str, body_digest: str, size: int, spool: Path, lines: int, at: datetime
    ) -> BatchJob:
        row = Batch(
            id=str(uuid.uuid4()),
            requester=requester,
            key_id=key_id,
            status="queued",
            body_digest=body_digest,
            size=size,
            spool=str(spool),
            lines=lines,
            position=0,
            done=0,
            last_line=0,
            asked=0,
            by_outcome={},
            created_at=at,
            updated_at=at,
            lease_until=None,
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
        return _job(row)

    async def get(self, batch_id: str) -> BatchJob | None:
        async with self._sessions() as session:
            row = await session.get(Batch, batch_id)
        return None if row is None else _job(row)

    async def lines_since(self, requester: str, since: datetime) -> int:
        """The lines of the batches `requester` submitted since `since`: what its daily quota counts."""
        query = select(func.coalesce(func.sum(Batch.lines), 0)).where(
            Batch.requester == requester, Batch.created_at >= since
        )
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    async def claim(self, batch_id: str, now: datetime, lease: timedelta) -> BatchJob | None:
        """Take the batch up, unless it is finished or another process holds it."""
        async with self._sessions() as session, session.begin():
            taken = await session.execute(
                update(Batch)
                .where(Batch.id == batch_id, Batch.status.in_(UNFINISHED))
                .where((Batch.lease_until.is_(None)) | (Batch.lease_until < now))
                .values(status="running", lease_until=now + lease, updated_at=now)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row = await session.get(Batch, batch_id)
            assert row is not None  # noqa: S101 -- just updated, in this transaction
            return _job(row)

    async def advance(
        self, job: BatchJob, end: int, last_line: int, answered: Sequence[Answered], lease: timedelta
    ) -> BatchJob:
        """Commit a window's answers and progress in one transaction; the batch as it now stands (its status
        `cancelled` if it was cancelled meanwhile: the window's answers are kept all the same)."""
        now = datetime.now(UTC)
        counts = Counter(job.by_outcome)
        counts.update(answer.outcome for answer in answered)
        advanced = replace(
            job,
            position=end,
            last_line=last_line,
            done=job.done + len(answered),
            by_outcome=dict(sorted(counts.items())),
            updated_at=now,
        )
        values = {
            name: getattr(advanced, name) for name in ("position", "last_line", "done", "by_outcome", "updated_at")
        }
        async with self._sessions() as session, session.begin():
            if answered:
                rows = [{"batch_id": job.id, "line": answer.line, "body": answer.body} for answer in answered]
                await session.execute(insert(RESULTS), rows)  # Core's executemany: no ORM bookkeeping a row
            await session.execute(update(Batch).where(Batch.id == job.id).values(**values, lease_until=now + lease))
            status = await session.scalar(select(Batch.status).where(Batch.id == job.id))
        return replace(advanced, status=status or job.status)

    async def asking(self, job: BatchJob, last_line: int) -> BatchJob:
        """Say that the lines of the window up to `last_line` cleared for a holder are about to be forwarded."""
        async with self._sessions() as session, session.begin():
            await session.execute(update(Batch).where(Batch.id == job.id).values(asked=last_line))
        return replace(job, asked=last_line)

    async def finish(self, job: BatchJob, status: str) -> BatchJob:
        """End the batch `status` (done), unless it was cancelled meanwhile; the batch as it now stands."""
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Batch)
                .where(Batch.id == job.id, Batch.status.in_(UNFINISHED))
                .values(status=status, updated_at=now, lease_until=None)
            )
            row = await session.get(Batch, job.id)
        return job if row is None else _job(row)

    async def release(self, job: BatchJob) -> None:
        """Give up the batch's lease (its process is closing): any process may take it up at once."""
        async with self._sessions() as session, session.begin():
            await session.execute(update(Batch).where(Batch.id == job.id).values(lease_until=None))

    async def cancel(self, batch_id: str) -> BatchJob | None:
        """Cancel an unfinished batch: no further window of it is decided. The batch as it now stands."""
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Batch)
                .where(Batch.id == batch_id, Batch.status.in_(UNFINISHED))
                .values(status="cancelled", updated_at=now)
            )
            row = await session.get(Batch, batch_id)
        return None if row is None else _job(row)

    async def results(self, batch_id: str, after: int, most: int) -> list[bytes]:
        """The answers of lines after line `after`, at most `most`, in order; those up to `after`, which the
        requester says it has read by asking past them, are forgotten first."""
        async with self._sessions() as session, session.begin():
            if after > 0:
                await session.execute(
                    delete(BatchResult).where(BatchResult.batch_id == batch_id, BatchResult.line <= after)
                )
            query = (
                select(BatchResult.body)
                .where(BatchResult.batch_id == batch_id, BatchResult.line > after)
                .order_by(BatchResult.line)
                .limit(most)
            )
            return list((await session.scalars(query)).all())

    async def unfinished(self, now: datetime) -> list[BatchJob]:
        """Batches not finished whose process holds them no longer (or never took them up), oldest first."""
        query = select(Batch).where(
            Batch.status.in_(UNFINISHED), (Batch.lease_until.is_(None)) | (Batch.lease_until < now)
        )
        async with self._sessions() as session:
            return [_job(row) for row in (await session.scalars(query.order_by(Batch.created_at))).all()]

    async def expire(self, before: datetime) -> int:
        """Forget the answers of batches that ended before `before`, read or not; how many."""
        ended = select(Batch.id).where(Batch.status.not_in(UNFINISHED), Batch.updated_at < before)
        async with self._sessions() as session, session.begin():
            gone = await session.execute(delete(BatchResult).where(BatchResult.batch_id.in_(ended)))
        return int(gone.rowcount)  # type: ignore[attr-defined]


def _time(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _job(row: Batch) -> BatchJob:
    return BatchJob(
        row.id,
        row.requester,
        row.key_id,
        row.status,
        row.body_digest,
        row.size,
        row.spool,
        row.lines,
        row.position,
        row.done,
        row.last_line,
        row.asked,
        dict(row.by_outcome),
        row.created_at,
        row.updated_at,
    )
