"""Faults of a real store, for tests: while one is on, every store connection runs a statement as it connects (a
size limit on SQLite, read-only transactions), through SQLAlchemy's public pool events. A pooled connection opened
under another fault, or none, is invalidated (closed) as it is checked out and opened again, so the hub's own
connections, its lane's included, all come under the fault and out of it; nothing in the hub is replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool

FULL = "PRAGMA max_page_count = 1"  # SQLite: the file as it is, not a page more (SQLITE_FULL, as on a full disk)
READ_ONLY = {"sqlite": "PRAGMA query_only = 1", "postgresql": "SET default_transaction_read_only = on"}

_fault: str | None = None  # the statement every connection runs as it connects, now


@contextmanager
def store_fault(statement: str) -> Iterator[None]:
    """`statement` run by every store connection the process checks out inside the block."""
    global _fault  # one fault at a time for the whole process, as the pool events see it
    _fault = statement
    try:
        yield
    finally:
        _fault = None


@event.listens_for(Pool, "connect")
def _connect(connection: Any, record: Any) -> None:
    if _fault is not None:
        cursor = connection.cursor()
        cursor.execute(_fault)
        cursor.close()
    record.info["fault"] = _fault


@event.listens_for(Pool, "checkout")
def _check_out(_connection: Any, record: Any, _proxy: Any) -> None:
    if record.info.get("fault") != _fault:
        raise DisconnectionError("the store's fault changed: connect again")
