"""The exchange path's way to the store: short units of work (a few Core statements) run with the least overhead.

Through the async ORM, every statement on SQLite costs several thread hand-offs to aiosqlite's thread (execute,
fetch, close, commit, the pool's reset) and a session set up and torn down around it: about 1 ms of CPU for a
point read. A unit here is a plain function of a synchronous SQLAlchemy Core connection:

- on SQLite it runs in one of a few worker threads on a synchronous engine of the same file (one hand-off a
  unit, whatever it does; SQLite's own locking orders its writes with every other connection's);
- on PostgreSQL it runs on the async engine's connection as synchronous code (`run_sync`), each statement one
  round trip, with no ORM session around it.

Either way the statements, column types and dialect are SQLAlchemy's, the same as the rest of the store uses.
One lane serves an engine, shared by every store built on it (`lane_for`), and closes with it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.storage.engine import sqlite_pragmas

Result = TypeVar("Result")
Unit = Callable[[Connection], Result]

SQLITE_WORKERS = 1  # threads running units on SQLite: readers run side by side (WAL); writers take turns


class Lane:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._threaded = engine.dialect.name == "sqlite"
        self._threads: ThreadPoolExecutor | None = None
        self._sync: Engine | None = None  # SQLite's synchronous engine, made by the first unit (in a worker)
        self._making = threading.Lock()

    async def read(self, unit: Unit[Result]) -> Result:
        """Run `unit` in one transaction (one consistent view on SQLite too), keeping nothing it wrote."""
        if not self._threaded:
            async with self._engine.connect() as connection:
                return await connection.run_sync(unit)
        return await self._in_thread(partial(self._read, unit))

    async def write(self, unit: Unit[Result]) -> Result:
        """Run `unit` in one transaction, committed when it returns, rolled back when it raises."""
        if not self._threaded:
            async with self._engine.begin() as connection:
                return await connection.run_sync(unit)
        return await self._in_thread(partial(self._write, unit))

    async def _in_thread(self, call: Callable[[], Result]) -> Result:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(SQLITE_WORKERS, thread_name_prefix="crossroads-store")
        return await asyncio.get_running_loop().run_in_executor(self._threads, call)

    def _read(self, unit: Unit[Result]) -> Result:
        with self._sqlite().connect() as connection:
            connection.exec_driver_sql("BEGIN")  # the driver would not begin a transaction for reads
            return unit(connection)

    def _write(self, unit: Unit[Result]) -> Result:
        with self._sqlite().begin() as connection:
            return unit(connection)

    def _sqlite(self) -> Engine:
        with self._making:
            if self._sync is None:
                self._sync = create_sync_engine(
                    self._engine.url.set(drivername="sqlite"),
                    connect_args={"timeout": 30, "check_same_thread": False},
                    pool_size=SQLITE_WORKERS,
                )
                event.listen(self._sync, "connect", sqlite_pragmas)  # the same settings as every other connection
            return self._sync

    def close(self) -> None:
        """Let the threads go and close the connections; a later unit opens them again."""
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None
        if self._sync is not None:
            self._sync.dispose()


_lanes: WeakKeyDictionary[AsyncEngine, Lane] = WeakKeyDictionary()


def lane_for(engine: AsyncEngine) -> Lane:
    """The engine's lane, made on first use and closed whenever the engine is disposed."""
    lane = _lanes.get(engine)
    if lane is None:
        lane = _lanes[engine] = Lane(engine)
        event.listen(engine.sync_engine, "engine_disposed", lambda _engine: lane.close())
    return lane
