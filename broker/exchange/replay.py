"""Replay protection: a signature nonce is accepted once per key id within the created window.

The nonce table is shared by every hub process on the same store, so a replay sent to another process
is refused too. Nonces older than twice the window can never be accepted again and are pruned. Writes go
through group commit (broker/base/store/group_commit.py) on the store's lane (broker/base/store/lane.py): the nonces of
concurrent requests are inserted in one transaction, and each request waits until its own is durably recorded
(or found used) before going on.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, String, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from broker.base.signing import CREATED_WINDOW_S
from broker.base.store import Base, Lane, StoreUnavailable
from broker.base.store.group_commit import GroupCommit, WriterClosed


class SeenNonce(Base):
    __tablename__ = "replay_nonces"

    key_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)


class NonceAlreadySeen(Exception):
    pass


NONCES = Base.metadata.tables[SeenNonce.__tablename__]


@dataclass(frozen=True)
class NonceUse:
    key_id: str
    nonce: str
    seen_at: datetime


def first_uses(batch: Sequence[NonceUse]) -> tuple[list[NonceUse], list[bool]]:
    """The distinct (key id, nonce) pairs of a batch, and per item whether it is the first of its pair."""
    seen: set[tuple[str, str]] = set()
    distinct: list[NonceUse] = []
    first: list[bool] = []
    for item in batch:
        pair = (item.key_id, item.nonce)
        first.append(pair not in seen)
        if pair not in seen:
            seen.add(pair)
            distinct.append(item)
    return distinct, first


class NonceStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], lane: Lane, batch_max: int = 256) -> None:
        self._sessions = sessions
        self._lane = lane
        self._writer: GroupCommit[NonceUse] = GroupCommit(self._write, batch_max, 0.0)

    @property
    def batches(self) -> int:
        """Transactions the group commit has run so far."""
        return self._writer.batches

    def writing(self) -> AbstractAsyncContextManager[None]:
        """The group-commit writer's lifetime: nonces can be remembered while it is open."""
        return self._writer.running()

    async def remember(self, key_id: str, nonce: str, at: datetime) -> None:
        """Record the nonce; raises NonceAlreadySeen if this key id used it before."""
        try:
            await self._writer.submit(NonceUse(key_id, nonce, at))
        except (SQLAlchemyError, WriterClosed) as error:
            raise StoreUnavailable("nonce store not writable") from error

    async def _write(self, batch: Sequence[NonceUse]) -> list[Exception | None]:
        """Insert the batch in one statement that skips pairs already stored and returns those it inserted:
        any other item (stored before, or repeated within the batch) is a replay."""
        distinct, first = first_uses(batch)
        rows = [vars(use) for use in distinct]

        def insert_new(connection: Connection) -> set[tuple[str, str]]:
            inserting = INSERT_NEW[connection.dialect.name]
            return {(row.key_id, row.nonce) for row in connection.execute(inserting, rows)}

        inserted = await self._lane.write(insert_new)
        return [
            None if is_first and (item.key_id, item.nonce) in inserted else NonceAlreadySeen(item.nonce)
            for item, is_first in zip(batch, first, strict=True)
        ]

    async def prune(self, now: datetime) -> int:
        horizon = now - timedelta(seconds=2 * CREATED_WINDOW_S)
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(SeenNonce).where(SeenNonce.seen_at < horizon))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


# INSERT ... ON CONFLICT DO NOTHING RETURNING the pairs inserted (SQLite and PostgreSQL both have it), built once
# per dialect; a batch's rows go in as one multi-row statement (SQLAlchemy's "insertmanyvalues").
INSERT_NEW = {
    name: insert(NONCES).on_conflict_do_nothing().returning(NONCES.c.key_id, NONCES.c.nonce)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
