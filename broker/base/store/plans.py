"""Read plans: SELECTs that do not depend on each other's results, and what to make of their rows. The exchange
path runs the plans of several packages together on the bare driver (Lane.plans), each package still reading only
its own tables; any other caller runs one on a Core connection (`Plan.on`), and both give the same answer.

The statements stay SQLAlchemy's, built once by the package that owns the tables and compiled once per dialect;
on the bare driver their rows come back through the statements' own result processors (the column types'
conversions: UTC timestamps, JSON), as namedtuples with the columns' names. What is skipped is SQLAlchemy's
execution machinery around each statement (bench/README.md measures it). On PostgreSQL the queries read together
are one statement (`together`): one round trip, not one a query.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import BindParameter, Connection, Delete, Insert, Select, Update, bindparam, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.visitors import replacement_traverse

Result = TypeVar("Result")
Rows = Sequence[Any]  # rows with the selected columns as attributes (a Core Row, or a namedtuple)
Query = Select[*tuple[Any, ...]]
Statement = Query | Insert | Update | Delete  # what the bare drivers run


@dataclass(frozen=True)
class Plan(Generic[Result]):
    queries: tuple[tuple[Query, Mapping[str, Any]], ...]
    decode: Callable[[Sequence[Rows]], Result]  # the rows of each query, in order

    def on(self, connection: Connection) -> Result:
        """The plan run on a Core connection, in its transaction."""
        return self.decode([connection.execute(statement, values).all() for statement, values in self.queries])


NOTHING: Plan[None] = Plan((), lambda _rows: None)  # a plan that reads nothing


@dataclass(frozen=True)
class Compiled:
    """A statement as a bare driver runs it: its SQL, its parameters in order, and how to read its rows."""

    sql: str
    names: tuple[str, ...]  # the parameters, in the order the SQL takes them
    defaults: Mapping[str, Any]  # the values bound in the statement itself (its literals)
    binds: Mapping[str, Callable[[Any], Any]]  # per parameter that has one: the type's bind conversion
    processors: tuple[Callable[[Any], Any] | None, ...]  # per column: the type's result conversion
    row: type[tuple[Any, ...]]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        given = {**self.defaults, **values}
        return [self.binds[name](given[name]) if name in self.binds else given[name] for name in self.names]

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[Any]:
        if not any(self.processors):
            return [self.row(*row) for row in raw]
        return [self.row(*map(_processed, self.processors, row)) for row in raw]


def _processed(process: Callable[[Any], Any] | None, value: Any) -> Any:
    return value if process is None else process(value)


_COMPILED: dict[tuple[int, str], Compiled] = {}


def compiled(statement: Statement, dialect: Dialect) -> Compiled:
    """`statement` compiled for `dialect`, once (statements are module constants: kept for the process's life)."""
    key = (id(statement), dialect.name)
    found = _COMPILED.get(key)
    if found is None:
        form = statement.compile(dialect=dialect)
        columns = form._result_columns  # the compiled columns and their types, as Core reads them
        # IN lists (their values given in the statement) rendered as one parameter per value, as Core does
        expanded = form.construct_expanded_state(form.construct_params(_check=False), escape_names=False)
        found = Compiled(
            expanded.statement,
            tuple(expanded.positiontup or ()),
            expanded.parameters,
            form._bind_processors,  # type: ignore[arg-type] # one callable each; an IN list's values are bound as given
            tuple(column.type._cached_result_processor(dialect, None) for column in columns),
            namedtuple("Row", [column.keyname for column in columns], rename=True),
        )
        _COMPILED[key] = found
    return found


_TOGETHER: dict[tuple[int, ...], Query] = {}


def together(queries: Sequence[Query]) -> Query:
    """The queries as one PostgreSQL query of one row, a column each: the array of its rows, each row a record
    (`ARRAY(SELECT q FROM (query) AS q)`, in the query's order). Query i's parameter `name` becomes `q{i}_name`
    (`apart`). Built once per sequence of queries (module constants, as for `compiled`)."""
    key = tuple(map(id, queries))
    found = _TOGETHER.get(key)
    if found is None:
        columns = []
        for index, query in enumerate(queries):
            rows = apart(query, index).subquery(f"q{index}")
            columns.append(func.array(select(rows.table_valued()).scalar_subquery()))
        found = _TOGETHER[key] = select(*columns)
    return found


def apart(query: Query, index: int) -> Query:
    """`query` with its named parameters renamed `q{index}_name` (its literals are anonymous: left alone)."""

    def renamed(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter) and not element.unique:
            return bindparam(f"q{index}_{element.key}", type_=element.type, expanding=element.expanding)
        return None

    return cast(Query, replacement_traverse(query, {}, renamed))


def values_apart(values: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The values of queries read `together`, by their renamed parameters."""
    return {f"q{index}_{name}": value for index, given in enumerate(values) for name, value in given.items()}
