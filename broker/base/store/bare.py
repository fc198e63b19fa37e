"""The bare drivers under the exchange path: `sqlite3` and asyncpg, as the engine's pool hands them out.

Statements stay SQLAlchemy's, compiled once per dialect (broker/base/store/plans.py); what is skipped is
SQLAlchemy's execution machinery around each of them. Connections are checked out of the engine's own pool, so
everything the pool does to a connection (SQLite's pragmas, a test's fault) holds for them too.

A unit of work on the bare drivers is an async function of a `Bare` connection. On PostgreSQL it awaits asyncpg
on the event loop; on SQLite the lane's thread runs it to the end at once (`finished`): `SQLiteBare` never waits,
its statements run when called. A statement run for many rows (`each`) is one round trip on asyncpg (its
Bind/Execute messages pipelined, one Sync), as cheap as a row at a time on `sqlite3`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import asyncpg
from sqlalchemy.engine import Dialect

from broker.base.store.plans import Query, Statement, compiled, together, values_apart

Result = TypeVar("Result")

# What the drivers raise when the store cannot be read or written (store_full and the like read their codes).
DRIVER_ERRORS = (sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class Bare(Protocol):
    dialect: str  # the dialect's name: "sqlite" or "postgresql"

    async def each(self, statement: Statement, values: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The rows a statement gives (a SELECT, or RETURNING; none else), run once for each of `values`, in order."""
        ...

    async def together(self, queries: Sequence[tuple[Query, Mapping[str, Any]]]) -> list[list[Any]]:
        """The rows of each query (with its values)."""
        ...


BareUnit = Callable[[Bare], Coroutine[Any, Any, Result]]


class SQLiteBare:
    def __init__(self, driver: sqlite3.Connection, dialect: Dialect) -> None:
        self._driver = driver
        self._dialect = dialect
        self.dialect = dialect.name

    async def each(self, statement: Statement, values: Sequence[Mapping[str, Any]]) -> list[Any]:
        form = compiled(statement, self._dialect)
        return form.rows([row for one in values for row in self._driver.execute(form.sql, form.arguments(one))])

    async def together(self, queries: Sequence[tuple[Query, Mapping[str, Any]]]) -> list[list[Any]]:
        return [await self.each(query, [values]) for query, values in queries]


class AsyncpgBare:
    def __init__(self, driver: asyncpg.Connection, dialect: Dialect) -> None:
        self._driver = driver
        self._dialect = dialect
        self.dialect = dialect.name

    async def each(self, statement: Statement, values: Sequence[Mapping[str, Any]]) -> list[Any]:
        if not values:
            return []
        form = compiled(statement, self._dialect)
        return form.rows(await self._driver.fetchmany(form.sql, [form.arguments(one) for one in values]))

    async def together(self, queries: Sequence[tuple[Query, Mapping[str, Any]]]) -> list[list[Any]]:
        """One round trip: the queries as one (plans.together), each query's rows read from its column."""
        if not queries:
            return []
        form = compiled(together([query for query, _ in queries]), self._dialect)
        row = await self._driver.fetchrow(form.sql, *form.arguments(values_apart([values for _, values in queries])))
        return [compiled(query, self._dialect).rows(rows) for (query, _), rows in zip(queries, row, strict=True)]


def finished(work: Coroutine[Any, Any, Result]) -> Result:
    """What a unit of work on `SQLiteBare` returns: run to its end at once, as it never waits."""
    try:
        work.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    work.close()
    raise RuntimeError("a unit of work on SQLite waited for something other than its statements")
