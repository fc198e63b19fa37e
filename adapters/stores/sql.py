"""The SQL store: answers a category from an agency's existing database, any SQLAlchemy URL. Either a
table, its key column and the mapped fields, or a query of its own with `:subject` (and params) bound.
Async drivers run on the loop; any other driver runs in a worker thread.

A chunk of a batch (`fetch_many`) over a table is answered set-based: the requests that filter alike (the same
params) share one query a SUBJECTS_AT_ONCE subjects, `key IN (...)`, compared by the database as a single
request's query compares them; a query of its own is asked once a request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Sequence
from typing import Any

import structlog
from sqlalchemy import Engine, TableClause, bindparam, column, create_engine, make_url, select, table, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import Select

from adapters.mapping import Field, MappingError, project
from adapters.server import RecordRequest, StoreUnavailable, UnknownSubject
from adapters.validation import InvalidParams

log = structlog.get_logger("crossroads.adapter.sql")
Statement = Select[Any] | TextClause
SUBJECTS_AT_ONCE = 500
KEY = "crossroads_subject_key"  # the key column's label in a chunk's rows (a name no mapped column has)


class SqlStore:
    def __init__(
        self,
        url: str,
        fields: Sequence[Field],
        *,
        table_name: str | None = None,
        key: str | None = None,
        schema: str | None = None,
        query: str | None = None,
        filters: dict[str, str] | None = None,
    ) -> None:
        if (query is None) == (table_name is None):
            raise MappingError("a SQL store names either a table (with its key column) or a query")
        self._url = url
        self._fields = tuple(fields)
        self._filters = dict(filters or {})
        self._query: TextClause | None = None
        self._table: TableClause | None = None
        self._key = key or ""
        if query is not None:
            self._query = text(query)
            self._binds = tuple(self._query.compile().params)
            if "subject" not in self._binds:
                raise MappingError("a SQL store's query must bind :subject")
        else:
            if not key:
                raise MappingError("a SQL store over a table needs its key column")
            self._columns = sorted({field.source for field in self._fields})
            names = {key, *self._columns, *self._filters.values()}
            self._table = table(str(table_name), *(column(name) for name in sorted(names)), schema=schema)
        self._async: AsyncEngine | None = None
        self._sync: Engine | None = None

    async def open(self) -> None:
        self._async, self._sync = await asyncio.to_thread(_engine, self._url)

    async def close(self) -> None:
        if self._async is not None:
            await self._async.dispose()
        if self._sync is not None:
            await asyncio.to_thread(self._sync.dispose)

    async def fetch(self, request: RecordRequest) -> dict[str, Any]:
        statement, binds = self._statement(request)
        try:
            rows = await self._rows(statement, binds, 2)
        except SQLAlchemyError as error:
            log.warning("sql.unavailable", exchange=request.exchange, error=type(error).__name__)
            raise StoreUnavailable from error
        return self._record(request, rows)

    async def fetch_many(self, requests: Sequence[RecordRequest]) -> list[dict[str, Any] | Exception]:
        """Each request's record, or the exception `fetch` would raise for it."""
        if self._query is not None:
            return [await _settled(self.fetch(request)) for request in requests]
        alike: dict[str, list[RecordRequest]] = {}  # the requests by the filters they ask for
        for request in requests:
            alike.setdefault(json.dumps(self._filtering(request), sort_keys=True), []).append(request)
        found: dict[int, dict[str, Any] | Exception] = {}  # by id of the request
        for group in alike.values():
            subjects = sorted({request.subject for request in group})
            parts = [subjects[first : first + SUBJECTS_AT_ONCE] for first in range(0, len(subjects), SUBJECTS_AT_ONCE)]
            try:
                rows = [row for part in parts for row in await self._rows(*self._of_subjects(group[0], part))]
            except SQLAlchemyError as error:
                log.warning("sql.unavailable", lines=len(group), error=type(error).__name__)
                found.update((id(request), StoreUnavailable()) for request in group)
                continue
            by_subject: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                by_subject.setdefault(str(row.pop(KEY)), []).append(row)
            for request in group:
                found[id(request)] = self._settled_record(request, by_subject.get(request.subject, []))
        return [found[id(request)] for request in requests]

    def _settled_record(self, request: RecordRequest, rows: list[dict[str, Any]]) -> dict[str, Any] | Exception:
        try:
            return self._record(request, rows)
        except (UnknownSubject, InvalidParams) as error:
            return error

    def _record(self, request: RecordRequest, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if not rows:
            raise UnknownSubject(request.subject)
        if len(rows) > 1:
            names = ", ".join(sorted(self._filters)) or "none configured"
            raise InvalidParams(f"several records of this subject match; narrow the question with params ({names})")
        return project(rows[0], self._fields)

    def _filtering(self, request: RecordRequest) -> dict[str, Any]:
        """The params of `request` that filter the table's rows."""
        return {param: request.params[param] for param in self._filters if param in request.params}

    def _statement(self, request: RecordRequest) -> tuple[Statement, dict[str, Any]]:
        """The query for this request: the table's, filtered by the params given, or the configured one."""
        binds: dict[str, Any] = {"subject": request.subject}
        if self._query is not None:
            missing = [name for name in self._binds if name != "subject" and name not in request.params]
            if missing:
                raise InvalidParams(f"this category needs the params {', '.join(sorted(missing))}")
            binds.update({name: request.params[name] for name in self._binds if name != "subject"})
            return self._query, binds
        return self._of_table(request, self._table_key() == bindparam("subject"), binds)

    def _of_subjects(self, request: RecordRequest, subjects: list[str]) -> tuple[Statement, dict[str, Any]]:
        """The table's rows of `subjects` filtered as `request` asks, each with its key (as KEY)."""
        key = self._table_key()
        return self._of_table(request, key.in_(subjects), {}, key.label(KEY))

    def _of_table(
        self, request: RecordRequest, where: Any, binds: dict[str, Any], *extra: Any
    ) -> tuple[Statement, dict[str, Any]]:
        assert self._table is not None  # noqa: S101 -- an invariant the type checker cannot see; -O drops only the check
        source = self._table
        statement = select(*extra, *(source.c[name] for name in self._columns)).where(where)
        for param, name in self._filters.items():
            if param in request.params:
                statement = statement.where(source.c[name] == bindparam(f"param_{param}"))
                binds[f"param_{param}"] = request.params[param]
        return statement, binds

    def _table_key(self) -> Any:
        assert self._table is not None  # noqa: S101 -- an invariant the type checker cannot see; -O drops only the check
        return self._table.c[self._key]

    async def _rows(self, statement: Statement, binds: dict[str, Any], most: int | None = None) -> list[dict[str, Any]]:
        """The statement's rows (its first `most`, when given)."""
        if self._async is not None:
            async with self._async.connect() as connection:
                result = await connection.execute(statement, binds)
                return [dict(row._mapping) for row in (result.all() if most is None else result.fetchmany(most))]
        assert self._sync is not None  # noqa: S101 -- an invariant the type checker cannot see; -O drops only the check
        return await asyncio.to_thread(_sync_rows, self._sync, statement, binds, most)


def _engine(url: str) -> tuple[AsyncEngine | None, Engine | None]:
    parsed = make_url(url)
    if parsed.get_dialect().is_async:
        return create_async_engine(parsed), None
    return None, create_engine(parsed)


def _sync_rows(engine: Engine, statement: Statement, binds: dict[str, Any], most: int | None) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(statement, binds)
        return [dict(row._mapping) for row in (result.all() if most is None else result.fetchmany(most))]


async def _settled(answer: Awaitable[dict[str, Any]]) -> dict[str, Any] | Exception:
    """A request's record, or the exception a store raises for it."""
    try:
        return await answer
    except (UnknownSubject, InvalidParams, StoreUnavailable) as error:
        return error
