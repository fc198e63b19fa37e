"""Room kept in the store for completing the exchanges in flight: the audit reserve and its table
(`audit_reserve`).

Why. An exchange's record is written before it is forwarded and completed once the holder has answered
(broker/audit/log.py). A store that fills up in between would let the holder be called and then refuse the
completion: the requester gets 503 for an answer the holder gave, and the record stays `forwarding`. So the
store keeps ballast that no other write can take, and a completion that finds the store full is written on the
room the ballast gives back.

How.
- The reserve is rows of random (incompressible) bytes, `size` bytes in all, written when the audit writer
  starts.
- A batch of completions that fails because the store is full (SQLite's SQLITE_FULL, a disk or the database's
  size limit; PostgreSQL's disk_full) is written again after ballast is given back (`spend`). On SQLite the
  transaction that completes also deletes ballast rows, one, then two, four... until the completions fit: the
  pages freed go to the database's free list, which the same transaction takes pages from before growing the
  file, so no other write can take them first. On PostgreSQL a deleted row frees nothing until a vacuum, so the
  table is truncated (its files go back to the filesystem as that transaction commits) and the completions are
  written by the next transaction.
- An exchange is forwarded only while the reserve is whole and covers, with PER_COMPLETION bytes each, every
  exchange this process has in flight (`whole`, `capacity`; broker/audit/log.py refuses with 503 otherwise,
  before anything reaches the holder). A completion adds about 250 bytes to its row and moves one index entry;
  PER_COMPLETION leaves room for the page splits that may cost.
- The reserve is made whole again by a committed write that needs fresh room (`refill`: the missing rows and one
  more are inserted, then the oldest surplus row is deleted), tried at most once a second whoever asks: at start,
  for readiness probes (/readyz: the same write says whether the store takes writes at all) and for exchanges
  refused while it is not whole. It is whole again as soon as the store has room.

Limits. On SQLite in WAL mode a full disk also stops the WAL file from growing; the ballast gives back room in
the database file only (which lets checkpoints complete, so the WAL is reused from its start rather than grown).
On PostgreSQL another session may take the space given back between the truncation and the completions, and
several hub processes share one reserve: one that did not give it back learns that it is gone at its next
readiness probe, or when a completion of its own finds the store full, and meanwhile still forwards.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from functools import partial
from typing import TypeVar

import structlog
from sqlalchemy import Connection, LargeBinary, bindparam, delete, func, insert, select, text
from sqlalchemy.orm import Mapped, mapped_column

from broker.base.store import Base, Lane
from broker.base.store.bare import DRIVER_ERRORS, Bare, BareUnit

log = structlog.get_logger("crossroads.audit")

ROW_BYTES = 16 * 1024  # one ballast row: what is given back at a time on SQLite
PER_COMPLETION = 1024  # room counted for completing one exchange in flight
RETRY_S = 1.0  # a refill is tried at most this often
Result = TypeVar("Result")


class Ballast(Base):
    __tablename__ = "audit_reserve"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    ballast: Mapped[bytes] = mapped_column(LargeBinary)


BALLAST = Base.metadata.tables[Ballast.__tablename__]


def store_full(error: BaseException) -> bool:
    """Whether a store error says the store is full: SQLite's SQLITE_FULL or PostgreSQL's disk_full (53100)."""
    cause = getattr(error, "orig", error)
    return (
        getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or getattr(cause, "sqlstate", None) == "53100"
    )


class Reserve:
    def __init__(self, lane: Lane, size: int) -> None:
        self._lane = lane
        self.rows = max(1, size // ROW_BYTES)
        self.capacity = self.rows * ROW_BYTES // PER_COMPLETION  # exchanges in flight it covers
        self.held = 0  # rows held, as this process last saw
        self._writable = False  # whether the store took the last refill
        self._tried = -RETRY_S
        self._lock = asyncio.Lock()

    async def whole(self) -> bool:
        """Whether the reserve is whole, refilling it first (at most once a second) if it is not."""
        return self.held >= self.rows or await self.refill()

    async def refill(self) -> bool:
        """Make the reserve whole by a committed write that needs fresh room; whether the store took that write
        and the reserve is whole. Between two tries the last one's answer is given."""
        async with self._lock:
            if time.monotonic() - self._tried >= RETRY_S:
                self._tried = time.monotonic()
                try:
                    self.held = await self._lane.write(self._refill)
                    self._writable = True
                except Exception as error:  # whatever stops the write (a full or read-only store, no store at all)
                    log.warning("audit.reserve_unwritable", error=type(error).__name__)
                    self._writable = False
            return self._writable and self.held >= self.rows

    def _refill(self, connection: Connection) -> int:
        held = connection.scalar(select(func.count()).select_from(BALLAST)) or 0
        missing = max(self.rows - held, 0) + 1
        connection.execute(insert(BALLAST), [{"ballast": secrets.token_bytes(ROW_BYTES)} for _ in range(missing)])
        oldest = select(BALLAST.c.id).order_by(BALLAST.c.id).limit(held + missing - self.rows)
        connection.execute(delete(BALLAST).where(BALLAST.c.id.in_(oldest.scalar_subquery())))
        return self.rows

    async def spend(self, unit: BareUnit[Result]) -> Result:
        """What `unit` (completions the full store refused, on the bare driver) returns, written on room the reserve
        gives back."""
        if self._lane.dialect == "postgresql":
            await self._lane.write(lambda connection: connection.execute(text("TRUNCATE audit_reserve")))
            self.held = 0
            return await self._lane.transact(unit)
        rows = 1
        while True:
            try:
                result = await self._lane.transact(partial(_released, rows, unit))
            except DRIVER_ERRORS as error:
                if not store_full(error) or rows >= self.rows:
                    raise
                rows *= 2
                continue
            self.held = max(self.held - rows, 0)
            log.warning("audit.reserve_spent", rows=rows, held=self.held)
            return result


# The `rows` oldest ballast rows given back
RELEASE = delete(BALLAST).where(
    BALLAST.c.id.in_(select(BALLAST.c.id).order_by(BALLAST.c.id).limit(bindparam("rows")).scalar_subquery())
)


async def _released(rows: int, unit: BareUnit[Result], bare: Bare) -> Result:
    """`unit` run after giving back the `rows` oldest ballast rows, in the same transaction."""
    await bare.each(RELEASE, [{"rows": rows}])
    return await unit(bare)
