"""Shared fixtures: stores (SQLite, and PostgreSQL where a server can run), the demo world on loopback
ports, and signed requests. Tests build the real hub through its composition root, never monkeypatching.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from blockbuster import blockbuster_ctx

from broker.cli.demo import DemoWorld, demo_world
from tests import postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.Server]:
    server = postgres.start()
    if isinstance(server, str):
        pytest.skip(server)
    yield server
    server.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each kind: a SQLite file, or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    server: postgres.Server = request.getfixturevalue("postgres_server")
    return await server.new_database()


@pytest.fixture
async def world(tmp_path: Path, database_url: str) -> AsyncIterator[DemoWorld]:
    """The demo world (hub and six agency adapters on loopback) on each kind of store."""
    async with demo_world(tmp_path / "state", database_url) as running:
        yield running


@pytest.fixture
async def sqlite_world(tmp_path: Path) -> AsyncIterator[DemoWorld]:
    """The demo world on SQLite only, for behaviour that does not depend on the store."""
    async with demo_world(tmp_path / "state") as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[None]:
    """Fail any test in which the project's own code makes a blocking call on the event loop.

    Starting a hub (opening the store, running migrations, writing the demo's key files) happens once,
    before it serves; only the serving path must never block.
    """
    with blockbuster_ctx(["broker", "adapters", "consent", "directory", "policies"]) as busters:
        for function in busters.functions.values():
            function.can_block_in("broker/cli/demo.py", "demo_world").can_block_in("broker/hub.py", "open_hub")
            function.can_block_in("broker/cli/main.py", "run")  # one-shot commands: nothing is being served
            function.can_block_in("broker/cli/audit.py", "run")
            # Alembic reads its scripts inside run_sync's greenlet, whose stack does not show the caller.
            function.can_block_in("broker/schema/migrations/__init__.py", ["upgrade", "run", "read", "heads"])
            function.can_block_in("broker/base/store/engine.py", "create_engine")
            # Opening a pooled store connection (aiosqlite's file, asyncpg's passfile) stats files once per
            # connection; the pool keeps connections open, so requests do not pay it again.
            function.can_block_in("sqlalchemy/pool/base.py", "_create_connection")
            # asyncpg looks for ~/.postgresql client certificates when it connects; its coroutine runs outside
            # the pool's greenlet frames, so the exemption above does not see it.
            function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
            # asyncpg looks for its passfile and TLS files in the event loop, outside SQLAlchemy's greenlet, where
            # the frame above is not on the stack: a pool growing under concurrent requests connects this way.
            function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
        yield
