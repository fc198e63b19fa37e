"""Replay protection's table (`replay_nonces`): a signature nonce is accepted once per key id within the created
window.

The table is shared by every hub process on the same store, so a replay sent to another process is refused too:
a nonce is claimed by inserting it, and the primary key on (key id, nonce) lets only the first insert in. Claims
are written by the audit log's group commit (broker/audit/log.py), in the same transaction as the request's
record (an exchange's reservation, or a refusal's final record), or alone, before a call changes any state.
Nonces older than twice the window can never be accepted again and are pruned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from broker.base.signing import CREATED_WINDOW_S
from broker.base.store import Base, Lane
from broker.base.store.bare import Bare


class SeenNonce(Base):
    __tablename__ = "replay_nonces"

    key_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)


class NonceAlreadySeen(Exception):
    """The nonce was claimed before, with the same key id: the request is a replay."""


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


async def claim(bare: Bare, uses: Sequence[NonceUse]) -> list[bool]:
    """Insert the nonces, skipping pairs already stored; per use, whether it was claimed (any other was stored
    before, or is repeated within `uses`: a replay)."""
    distinct, first = first_uses(uses)
    rows = await bare.each(CLAIM[bare.dialect], [vars(use) for use in distinct])
    inserted = {(row.key_id, row.nonce) for row in rows}
    return [is_first and (use.key_id, use.nonce) in inserted for use, is_first in zip(uses, first, strict=True)]


async def prune(lane: Lane, now: datetime) -> int:
    """Delete the nonces that can never be accepted again; how many."""
    horizon = now - timedelta(seconds=2 * CREATED_WINDOW_S)
    deleted = await lane.write(lambda connection: connection.execute(delete(NONCES).where(NONCES.c.seen_at < horizon)))
    return int(deleted.rowcount or 0)


# INSERT ... ON CONFLICT DO NOTHING RETURNING the pair when it was inserted (SQLite and PostgreSQL both have it),
# built once per dialect.
CLAIM = {
    name: insert(NONCES)
    .values({column: bindparam(column) for column in ("key_id", "nonce", "seen_at")})
    .on_conflict_do_nothing()
    .returning(NONCES.c.key_id, NONCES.c.nonce)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
