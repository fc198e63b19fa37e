"""The exchange path's way to the store: short units of work (a few Core statements) run with the least overhead.

Through the async ORM, every statement on SQLite costs several thread hand-offs to aiosqlite's thread (execute,
fetch, close, commit, the pool's reset) and a session set up and torn down around it: about 1 ms of CPU for a
point read. A unit here is a plain function of a synchronous SQLAlchemy Core connection:

- on SQLite it runs in the lane's own thread on a synchronous engine of the same file: one hand-off a unit,
  whatever it does (SQLite's own locking orders its writes with every other connection's). One thread, not a
  pool: threads running SQLAlchemy's Python contend with the event loop for the interpreter lock, and a pool
  of three cost more CPU per exchange than one (bench/README.md). Units queued while the thread is busy run
  one after another without waking it again;
- on PostgreSQL it runs on the async engine's connection as synchronous code (`run_sync`), each statement one
  round trip, with no ORM session around it.

Either way the statements, column types and dialect are SQLAlchemy's, the same as the rest of the store uses.

The exchange path's read plans (broker/base/store/plans.py) and the audit writer's transactions run on the bare
drivers (broker/base/store/bare.py): on SQLite `sqlite3` on the lane's thread, one hand-off a unit; on PostgreSQL
asyncpg on the event loop, one round trip a read (its queries made one statement: plans.together) and one for each
statement of a write (run for all its rows at once: Bare.each). At most BARE_CONNECTIONS such units hold one of the
engine pool's connections at once, the others wait for one: fewer than the pool keeps open, so the exchange path
never makes the pool open connections beyond it (each a new server process, its prepared statements lost when the
pool closes it again: that tripled the server's CPU an exchange at 64 requests at once) and leaves the pool's
other connections to the rest of the hub.

Whoever builds an engine builds its one lane and hands it to every store built on it (broker/hub.py is that place
for the hub); the lane closes when the engine is disposed, or earlier with `close()`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from functools import partial
from queue import SimpleQueue
from typing import Any, TypeVar, cast

import asyncpg
from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.base.store.bare import DRIVER_ERRORS, AsyncpgBare, Bare, BareUnit, SQLiteBare, finished
from broker.base.store.engine import StoreUnavailable, sqlite_pragmas
from broker.base.store.plans import Plan

Result = TypeVar("Result")
Unit = Callable[[Connection], Result]
Job = tuple[Callable[[], Any], asyncio.Future[Any]]
BARE_CONNECTIONS = 8  # PostgreSQL connections the bare units hold at most at once (the engine's pool keeps 10)


class Lane:
    """Units of work on one engine's store, in one thread on SQLite; open until the engine is disposed or
    `close()` is called, and opened again by the next unit after that."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._url = engine.url
        self.dialect = engine.dialect.name
        self._threaded = self.dialect == "sqlite"
        self._jobs: SimpleQueue[Job | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._sync: Engine | None = None  # SQLite's synchronous engine, made by the lane's thread
        self._connections = asyncio.Semaphore(BARE_CONNECTIONS)  # on PostgreSQL: the bare units' share of the pool
        # Its owner disposes the engine and nothing else: the lane's thread and connections go with it.
        event.listen(engine.sync_engine, "engine_disposed", lambda _engine: self.close())

    @property
    def url(self) -> str:
        """The engine's URL, password included: another process opens the same store with it."""
        return self._url.render_as_string(hide_password=False)

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

    async def plans(self, plans: Sequence[Plan[Any]]) -> list[Any]:
        """What each plan reads, all of them read together on the bare driver; StoreUnavailable when the store
        cannot be read (the driver's error is its cause)."""
        try:
            rows = await self._bare(partial(_plan_rows, plans), write=False)
        except DRIVER_ERRORS as error:
            raise StoreUnavailable(f"the store cannot be read ({type(error).__name__})") from error
        answers, start = [], 0
        for plan in plans:
            answers.append(plan.decode(rows[start : start + len(plan.queries)]))
            start += len(plan.queries)
        return answers

    async def transact(self, work: BareUnit[Result], single: bool = False) -> Result:
        """Run `work` on the bare driver in one transaction, committed when it returns, rolled back when it raises
        (with the driver's own error: DRIVER_ERRORS). `single`: `work` writes with one statement at most, atomic by
        itself, so on PostgreSQL it runs without the BEGIN and COMMIT round trips."""
        return await self._bare(work, write=True, transaction=not single)

    async def _bare(self, work: BareUnit[Result], write: bool, transaction: bool = True) -> Result:
        if self._threaded:
            return await self._in_thread(partial(self._sqlite_bare, work, "BEGIN IMMEDIATE" if write else "BEGIN"))
        async with self._connections, self._engine.connect() as connection:  # the pool's, as the pool prepared it
            driver = cast(asyncpg.Connection, (await connection.get_raw_connection()).driver_connection)
            if not (write and transaction):  # one statement: atomic, one snapshot, no BEGIN and COMMIT round trips
                return await work(AsyncpgBare(driver, self._engine.dialect))
            async with driver.transaction():
                return await work(AsyncpgBare(driver, self._engine.dialect))

    def _sqlite_bare(self, work: BareUnit[Result], begin: str) -> Result:
        checked_out = self._sqlite().raw_connection()
        try:
            driver = cast(sqlite3.Connection, checked_out.driver_connection)
            driver.execute(begin)  # a read too: one consistent view
            try:
                result = finished(work(SQLiteBare(driver, self._engine.dialect)))
            except BaseException:
                if driver.in_transaction:  # SQLite rolls back by itself on some errors (a full store)
                    driver.execute("ROLLBACK")
                raise
            driver.execute("COMMIT")
            return result
        finally:
            checked_out.close()

    async def _in_thread(self, call: Callable[[], Result]) -> Result:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="crossroads-store", daemon=True)
            self._thread.start()
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._jobs.put((call, done))
        return await done

    def _run(self) -> None:
        """The lane's thread: each job in turn, its outcome handed back to the loop that is waiting for it."""
        while (job := self._jobs.get()) is not None:
            call, done = job
            try:
                outcome, failure = call(), None
            except BaseException as error:  # handed to the waiting request, which decides what it means
                outcome, failure = None, error
            with suppress(RuntimeError):  # that loop is closed: nobody waits for the outcome; the thread goes on
                done.get_loop().call_soon_threadsafe(_settle, done, outcome, failure)

    def _read(self, unit: Unit[Result]) -> Result:
        with self._sqlite().connect() as connection:
            connection.exec_driver_sql("BEGIN")  # the driver would not begin a transaction for reads
            return unit(connection)

    def _write(self, unit: Unit[Result]) -> Result:
        with self._sqlite().begin() as connection:
            return unit(connection)

    def _sqlite(self) -> Engine:
        if self._sync is None:
            self._sync = create_sync_engine(
                self._url.set(drivername="sqlite"),
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            event.listen(self._sync, "connect", sqlite_pragmas)  # the same settings as every other connection
        return self._sync

    def close(self) -> None:
        """Let the thread go and close its connections; a later unit starts them again."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None
        if self._sync is not None:
            self._sync.dispose()


async def _plan_rows(plans: Sequence[Plan[Any]], bare: Bare) -> list[list[Any]]:
    return await bare.together([query for plan in plans for query in plan.queries])


def _settle(done: asyncio.Future[Any], outcome: Any, failure: BaseException | None) -> None:
    if done.done():  # the request was cancelled; what the unit did stands
        return
    if failure is None:
        done.set_result(outcome)
    else:
        done.set_exception(failure)
