"""Alembic migrations of the hub's one schema, run programmatically on an async engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


class SchemaNotCurrent(SystemExit):
    """The store's schema is not at the code's migration head: the hub refuses to start."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    return config


def heads() -> set[str]:
    """The newest revision of every branch: each package may add its own branch of migrations."""
    return set(ScriptDirectory.from_config(_config()).get_heads())


async def upgrade(engine: AsyncEngine) -> list[str]:
    """Migrate the store to every head; the revisions applied, in order (none when it was current)."""
    applied: list[str] = []

    def run(connection: Connection) -> None:
        config = _config()
        config.attributes["connection"] = connection
        config.attributes["applied"] = applied
        command.upgrade(config, "heads")

    async with engine.begin() as connection:
        await connection.run_sync(run)
    return applied


async def current(engine: AsyncEngine) -> set[str]:
    def read(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def require_current_schema(engine: AsyncEngine) -> None:
    revisions, expected = await current(engine), heads()
    if revisions != expected:
        raise SchemaNotCurrent(
            f"the database schema is at {', '.join(sorted(revisions)) or 'nothing'}, this hub needs "
            f"{', '.join(sorted(expected))}: run `crossroads db upgrade` first"
        )
