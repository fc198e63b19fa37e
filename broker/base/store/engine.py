"""Opening the store: an async engine for a SQLite file or a PostgreSQL URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


class StoreUnavailable(Exception):
    """The store could not be read or written; the hub fails closed (503)."""


def database_url_for(state_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{state_dir / 'crossroads.db'}"


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def create_engine(url: str) -> AsyncEngine:
    if is_postgres(url):
        # No ping before each checkout: that round trip cost a fifth of the hub's CPU per exchange (bench/README.md).
        # A connection the server dropped fails its one request (503), and SQLAlchemy then discards every pooled
        # connection older than the disconnect, so the next requests connect afresh.
        return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=False)
    engine = create_async_engine(url, connect_args={"timeout": 30})
    event.listen(engine.sync_engine, "connect", sqlite_pragmas)
    return engine


def sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL lets readers run while the audit writer commits; foreign keys are off by default in SQLite.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
