"""Read plans on SQLite and PostgreSQL: run on the bare driver (Lane.plans) they answer exactly as on a Core
connection, with the columns' own conversions (UTC timestamps, JSON, NULLs, booleans), IN lists and literals bound
in the statement, several plans at once (on PostgreSQL one statement: their parameters kept apart), each decoding
its own rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, Column, Integer, MetaData, String, Table, bindparam, insert, select

from broker.base.store import Lane, StoreUnavailable, UTCDateTime, create_engine
from broker.base.store.plans import NOTHING, Plan, Rows

METADATA = MetaData()
THINGS = Table(
    "plan_things",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("owner", String(20)),
    Column("at", UTCDateTime),
    Column("tags", JSON),
    Column("done", Boolean),
    Column("score", Integer, nullable=True),
)
AT = datetime(2026, 12, 3, 10, 30, 15, 123456, tzinfo=UTC)
OF_OWNER = select(THINGS).where(THINGS.c.owner == bindparam("owner"), THINGS.c.id.in_((1, 2, 3))).order_by(THINGS.c.id)
MINE_OR_SHARED = select(THINGS.c.id, THINGS.c.tags).where(
    (THINGS.c.owner == bindparam("owner")) | (THINGS.c.owner == "*")
)


def _things(rows: Sequence[Rows]) -> list[tuple[Any, ...]]:
    [things] = rows
    return [(row.id, row.owner, row.at, row.tags, row.done, row.score) for row in things]


def _ids_and_tags(rows: Sequence[Rows]) -> list[tuple[int, list[str]]]:
    [found] = rows
    return sorted((row.id, row.tags) for row in found)


async def test_a_plan_reads_the_same_on_the_bare_driver_as_on_core(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(METADATA.create_all)
            await connection.execute(
                insert(THINGS),
                [
                    {"id": 1, "owner": "a", "at": AT, "tags": ["x", "é"], "done": True, "score": 7},
                    {"id": 2, "owner": "a", "at": AT, "tags": [], "done": False, "score": None},
                    {"id": 3, "owner": "*", "at": AT, "tags": ["shared"], "done": False, "score": 1},
                    {"id": 4, "owner": "a", "at": AT, "tags": None, "done": True, "score": 2},
                ],
            )
        lane = Lane(engine)
        things = Plan(((OF_OWNER, {"owner": "a"}),), _things)
        shared = Plan(((MINE_OR_SHARED, {"owner": "b"}),), _ids_and_tags)
        mine = Plan(((MINE_OR_SHARED, {"owner": "a"}),), _ids_and_tags)  # the same query and parameter, another value
        nobody = Plan(((OF_OWNER, {"owner": "nobody"}),), _things)
        plans = [things, NOTHING, shared, mine, nobody]
        bare = await lane.plans(plans)
        assert bare == [None if plan is NOTHING else await lane.read(plan.on) for plan in plans]
        assert bare[0] == [
            (1, "a", AT, ["x", "é"], True, 7),
            (2, "a", AT, [], False, None),
        ]
        assert bare[0][0][2].tzinfo is not None  # read back timezone-aware
        assert bare[2] == [(3, ["shared"])]
        assert bare[3] == [(1, ["x", "é"]), (2, []), (3, ["shared"]), (4, None)]
        assert bare[4] == []
        assert await lane.plans([]) == []
        async with engine.begin() as connection:
            await connection.run_sync(METADATA.drop_all)
        with pytest.raises(StoreUnavailable):  # the hub answers 503, as for any store it cannot read
            await lane.plans([things])
    finally:
        await engine.dispose()
