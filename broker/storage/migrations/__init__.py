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


def head() -> str:
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


async def upgrade(engine: AsyncEngine) -> None:
    def run(connection: Connection) -> None:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def current(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def require_current_schema(engine: AsyncEngine) -> None:
    revision, expected = await current(engine), head()
    if revision != expected:
        raise SchemaNotCurrent(
            f"the database schema is at {revision or 'nothing'}, this hub needs {expected}: "
            "run `crossroads db upgrade` first"
        )
