"""The store's lane on SQLite and PostgreSQL: a read sees what is committed and keeps nothing it wrote, a write
commits or, when it raises, rolls back and hands the failure to its caller; on SQLite its thread runs queued
units in turn, goes with `close()` or the engine's disposal, and starts again for the next unit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.base.store import Lane, create_engine

NOTES = Table("notes", MetaData(), Column("id", Integer, primary_key=True), Column("body", String(50)))


class Refused(Exception):
    pass


@dataclass
class Store:
    engine: AsyncEngine
    lane: Lane


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(NOTES.metadata.create_all)
    try:
        yield Store(engine, Lane(engine))
    finally:
        await engine.dispose()


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Store]:
    """Only SQLite gives the lane a thread of its own."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'lane.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(NOTES.metadata.create_all)
    try:
        yield Store(engine, Lane(engine))
    finally:
        await engine.dispose()


def add(body: str) -> Callable[[Connection], int]:
    def unit(connection: Connection) -> int:
        key = connection.execute(insert(NOTES).values(body=body)).inserted_primary_key
        assert key is not None
        return int(key[0])

    return unit


def bodies(connection: Connection) -> list[str]:
    return list(connection.scalars(select(NOTES.c.body).order_by(NOTES.c.id)))


def count(connection: Connection) -> int:
    return int(connection.scalar(select(func.count()).select_from(NOTES)) or 0)


async def test_a_write_commits_and_answers_what_the_unit_returns(store: Store) -> None:
    assert await store.lane.write(add("first")) == 1
    async with store.engine.connect() as connection:  # another connection sees it: it is committed
        assert await connection.run_sync(bodies) == ["first"]


async def test_a_read_sees_what_others_committed_and_keeps_nothing_it_wrote(store: Store) -> None:
    async with store.engine.begin() as connection:
        await connection.run_sync(add("from elsewhere"))
    assert await store.lane.read(bodies) == ["from elsewhere"]

    def add_then_count(connection: Connection) -> int:
        add("kept by no one")(connection)
        return count(connection)

    assert await store.lane.read(add_then_count) == 2  # the read's own transaction sees its row...
    assert await store.lane.read(count) == 1  # ...which is rolled back with it


async def test_a_write_that_raises_rolls_back_and_its_caller_gets_the_failure(store: Store) -> None:
    refusal = Refused("not this one")

    def add_then_refuse(connection: Connection) -> None:
        add("half done")(connection)
        raise refusal

    with pytest.raises(Refused) as raised:
        await store.lane.write(add_then_refuse)
    assert raised.value is refusal
    assert await store.lane.read(count) == 0
    await store.lane.write(add("after"))  # the lane goes on serving
    assert await store.lane.read(bodies) == ["after"]


async def test_concurrent_writes_each_commit(store: Store) -> None:
    keys = await asyncio.gather(*(store.lane.write(add(f"note {n}")) for n in range(20)))
    assert sorted(keys) == list(range(1, 21))
    assert await store.lane.read(count) == 20


async def test_after_close_a_later_unit_starts_the_lane_again(store: Store) -> None:
    await store.lane.write(add("before"))
    store.lane.close()
    store.lane.close()  # closing a closed lane changes nothing
    await store.lane.write(add("after"))
    assert await store.lane.read(bodies) == ["before", "after"]


def _store_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "crossroads-store"}


async def _lane_thread(store: Store, before: set[threading.Thread]) -> threading.Thread:
    await store.lane.read(count)
    [thread] = _store_threads() - before
    return thread


async def _ended(thread: threading.Thread) -> bool:
    await asyncio.to_thread(thread.join, 30)  # a bound for a broken lane, not a wait the test relies on
    return not thread.is_alive()


async def test_on_sqlite_close_ends_the_thread_and_the_next_unit_starts_another(sqlite: Store) -> None:
    before = _store_threads()
    first = await _lane_thread(sqlite, before)
    sqlite.lane.close()
    assert await _ended(first)
    second = await _lane_thread(sqlite, before)
    assert second is not first and second.is_alive()


async def test_on_sqlite_the_thread_goes_with_the_engine(sqlite: Store) -> None:
    thread = await _lane_thread(sqlite, _store_threads())
    await sqlite.engine.dispose()
    assert await _ended(thread)


async def test_on_sqlite_a_cancelled_caller_does_not_undo_its_write(sqlite: Store) -> None:
    started, release = threading.Event(), threading.Event()

    def slow_add(connection: Connection) -> int:
        started.set()
        release.wait()
        return add("stands")(connection)

    caller = asyncio.ensure_future(sqlite.lane.write(slow_add))
    assert await asyncio.to_thread(started.wait, 30)
    caller.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert await sqlite.lane.read(bodies) == ["stands"]  # queued behind the write: runs once it committed
