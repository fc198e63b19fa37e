"""Declaring a batch of references in one transaction: check it against the registry, read what the directory
already says of its references, and append the declarations that say something new, in a handful of statements
whatever the batch's size. Each list a statement takes is one parameter (an array on PostgreSQL, a JSON array on
SQLite), so a statement's text is the same for every batch: compiled and prepared once. On PostgreSQL the rows
go in by binary COPY instead of one execution a row. Runs on the store's thread (the lane);
directory/store.py calls it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import ARRAY, JSON, Connection, Dialect, String, any_, bindparam, func, insert, select, update
from sqlalchemy.util import await_

from directory.models import Agency, Capacity, Category, DirectoryVersion, Holding, Relationship
from directory.references import NAMED_BY, Declaration, Kind, refusal

REFERENCES = 2  # the directory_version row of holdings and relationships
Reference = tuple[Kind, str, str, str, datetime]  # Declaration.reference
Said = tuple[datetime | None, datetime, str]  # a reference's standing end, when and by whom it was declared
Declared = tuple[Declaration, str, datetime]  # a declaration, on whose word and when the hub took it

TABLES: dict[Kind, type[Relationship] | type[Holding]] = {"relationship": Relationship, "holding": Holding}
# The columns a declaration fills, in its table's order (the order of an INSERT's parameters).
APPENDED: dict[Kind, tuple[str, ...]] = {
    "relationship": ("agency", "subject", "capacity", "valid_from", "valid_until", "declared_at", "declared_by"),
    "holding": ("holder", "category", "subject", "valid_from", "valid_until", "declared_at", "declared_by"),
}
OWNER: dict[Kind, str] = {"relationship": "agency", "holding": "holder"}
REGISTERED = {"agency": Agency.id, "category": Category.name, "capacity": Capacity.name}  # active agencies only
BUMP_REFERENCES = (
    update(DirectoryVersion).where(DirectoryVersion.id == REFERENCES).values(version=DirectoryVersion.version + 1)
)


class Verdict(NamedTuple):
    """What became of one declaration: refused (`reason`), or standing as declared at `declared_at` by
    `declared_by` (by this batch, or before it when the directory already said so); `created` when the reference
    is new."""

    reason: str | None
    declared_at: datetime | None = None
    declared_by: str | None = None
    created: bool = False


class Unchanged(Exception):
    """Every declaration of a batch was refused or already said: the transaction is rolled back, so the directory
    version does not move."""

    def __init__(self, verdicts: list[Verdict]) -> None:
        super().__init__("nothing to write")
        self.verdicts = verdicts


def declare(connection: Connection, declared: Sequence[Declared]) -> list[Verdict]:
    """Check a batch against the registry, read the declarations standing for its references, and append those
    that say something new, in one transaction.

    The first statement moves the references' version: the lock that takes (the version's row on PostgreSQL, the
    store itself on SQLite) lets one batch be declared at a time, so no other batch can write between what this one
    reads and what it writes. A batch that has nothing to write raises Unchanged, to be rolled back."""
    if not declared:
        return []
    _bump_references(connection)
    declarations = [declaration for declaration, _, _ in declared]
    agencies = _present(connection, "agency", {declaration.owner for declaration in declarations})
    names = {kind: _present(connection, NAMED_BY[kind], _names_of(declarations, kind)) for kind in TABLES}
    reasons = [refusal(declaration, agencies, names[declaration.kind]) for declaration in declarations]
    stored = _standing_for(
        connection, [declaration for declaration, reason in zip(declarations, reasons, strict=True) if reason is None]
    )
    newest, written = dict(stored), {}
    verdicts = []
    for (declaration, by, at), reason in zip(declared, reasons, strict=True):
        if reason is not None:
            verdicts.append(Verdict(reason))
            continue
        reference = declaration.reference
        prior = newest.get(reference)
        if prior is not None and prior[0] == declaration.valid_until:
            verdicts.append(Verdict(None, prior[1], prior[2]))
            continue
        newest[reference] = (declaration.valid_until, at, by)
        written[reference] = (declaration, by, at)  # within a batch, the last declaration of a reference stands
        verdicts.append(Verdict(None, at, by, prior is None))
    new = [
        item
        for reference, item in written.items()
        if reference not in stored or stored[reference][0] != item[0].valid_until
    ]
    if not new:
        raise Unchanged(verdicts)
    for kind in TABLES:
        _append(connection, kind, [item for item in new if item[0].kind == kind])
    return verdicts


def _bump_references(connection: Connection) -> None:
    """Move the references' version on, in the transaction of the write, so every process drops its cached
    holdings and relationships (the row's lock also lets one batch of declarations write at a time)."""
    if not connection.execute(BUMP_REFERENCES).rowcount:
        connection.execute(insert(DirectoryVersion).values(id=REFERENCES, version=1))


def _names_of(declarations: Sequence[Declaration], kind: Kind) -> set[str]:
    return {declaration.name for declaration in declarations if declaration.kind == kind}


def _present(connection: Connection, what: str, names: set[str]) -> set[str]:
    """Those of `names` registered as `what` (REGISTERED)."""
    if not names:
        return set()
    return set(connection.execute(_registered(connection.dialect, what), {"names": sorted(names)}).scalars())


def _standing_for(connection: Connection, declarations: Sequence[Declaration]) -> dict[Reference, Said]:
    """What the directory says of each reference of the batch it has: the end, time and author of its standing
    declaration. The rows come in the order recorded, so the last of a reference stands (`standing`, without
    making a Stated of every row: a batch reads up to one row per line)."""
    said: dict[Reference, Said] = {}
    for kind in TABLES:
        of_kind = [declaration for declaration in declarations if declaration.kind == kind]
        if not of_kind:
            continue
        subjects = sorted({declaration.subject for declaration in of_kind})
        for owner, subject, name, valid_from, valid_until, declared_at, declared_by in connection.execute(
            _among(connection.dialect, kind), {"subjects": subjects}
        ):
            said[kind, owner, subject, name, valid_from] = (valid_until, declared_at, declared_by)
    return said


def _append(connection: Connection, kind: Kind, declared: list[Declared]) -> None:
    """Append declarations of one kind, each time converted for the driver once (starts, ends and declaration times
    are few): on SQLite one executemany of the driver's INSERT, a tuple a row; on PostgreSQL one binary COPY, on
    the connection of this transaction (asyncpg's own, awaited from SQLAlchemy's synchronous code as its adapter
    does: an array a column costs asyncpg a check of every value)."""
    if not declared:
        return
    time = _converter(TABLES[kind].valid_from.type.dialect_impl(connection.dialect).bind_processor(connection.dialect))
    rows = [(d.owner, *_in_order(d), time(d.valid_from), time(d.valid_until), time(at), by) for d, by, at in declared]
    if _arrays(connection.dialect):
        copying = connection.connection.driver_connection.copy_records_to_table  # type: ignore[union-attr]
        await_(copying(TABLES[kind].__tablename__, records=rows, columns=APPENDED[kind]))
    else:
        connection.exec_driver_sql(_insert_sql(connection.dialect, kind), rows)


def _in_order(declaration: Declaration) -> tuple[str, str]:
    """The subject and the name of a declaration in its table's order (APPENDED)."""
    if declaration.kind == "relationship":
        return declaration.subject, declaration.name
    return declaration.name, declaration.subject


def _converter(process: Callable[[Any], Any] | None) -> Callable[[datetime | None], Any]:
    """`process` (a column type's conversion of a time for the driver), made once for each distinct time."""
    done: dict[datetime, Any] = {}

    def convert(moment: datetime | None) -> Any:
        if moment is None or process is None:
            return moment
        if moment not in done:
            done[moment] = process(moment)
        return done[moment]

    return convert


def _arrays(dialect: Dialect) -> bool:
    return dialect.name == "postgresql"


# Statements, made once for each dialect (an engine's dialect; a test suite makes a few).


def _is_in(column: Any, dialect: Dialect, name: str) -> Any:
    """`column` is one of the list bound as `name`: one parameter whatever the list's length, so the statement's
    text is the same for every list (an array on PostgreSQL, a JSON array that json_each unpacks on SQLite)."""
    if _arrays(dialect):
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(select(func.json_each(bindparam(name, type_=JSON)).table_valued("value").c.value))


@lru_cache(maxsize=16)
def _registered(dialect: Dialect, what: str) -> Any:
    """Which of a list of names are registered as `what` (REGISTERED); agencies only when active."""
    column = REGISTERED[what]
    statement = select(column).where(_is_in(column, dialect, "names"))
    return statement.where(Agency.status == "active") if what == "agency" else statement


@lru_cache(maxsize=16)
def _among(dialect: Dialect, kind: Kind) -> Any:
    """The declarations of a batch's subjects (a subject has a few; those of references not in the batch are read
    and ignored: a narrower condition on the agency lets PostgreSQL's generic plan scan all of that agency's)."""
    table = TABLES[kind]
    owner, name = getattr(table, OWNER[kind]), getattr(table, NAMED_BY[kind])
    return (
        select(owner, table.subject, name, table.valid_from, table.valid_until, table.declared_at, table.declared_by)
        .where(_is_in(table.subject, dialect, "subjects"))
        .order_by(table.id)
    )


@lru_cache(maxsize=16)
def _insert_sql(dialect: Dialect, kind: Kind) -> str:
    """The driver's INSERT of APPENDED[kind], its parameters by position (qmark)."""
    columns = APPENDED[kind]
    compiled = insert(TABLES[kind]).compile(dialect=dialect, column_keys=list(columns))
    assert compiled.positiontup == list(columns)  # noqa: S101 -- the rows are tuples in this order
    return compiled.string
