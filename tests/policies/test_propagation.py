"""Two real hub processes on one PostgreSQL: a rule changed with the CLI is followed by the other process
(the policy service polls the published version every second and drops its decision cache on a change)."""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from adapters.client import HubClient
from broker.base.keyfiles import write_private_key
from broker.base.signing import SigningKey, load_public_key, public_key_pem
from broker.base.store import create_engine
from broker.cli.demo import free_port
from broker.cli.world import load_world
from broker.config import Config
from broker.hub import open_hub
from broker.schema.migrations import upgrade
from tests import postgres
from tests.processes import crossroads

pytestmark = pytest.mark.postgres
INCOME = {"requester": "family-benefits", "category": "income", "purpose": "benefit-eligibility"}


async def _crossroads(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, (out + err).decode()


async def _zone(client: HubClient) -> str:
    _, decision = await client.call("POST", "/v1/policies/evaluate", INCOME)
    return str(decision["zone"])


async def test_a_cli_edit_reaches_another_hub_process(postgres_server: postgres.Server, tmp_path: Path) -> None:
    url = await postgres_server.new_database()
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    hub_key = SigningKey("crossroads-hub", await asyncio.to_thread(write_private_key, tmp_path / "hub.pem"))
    admin = SigningKey("admin-1", await asyncio.to_thread(write_private_key, tmp_path / "admin.pem"))
    world = {
        "categories": [{"name": "income"}],
        "purposes": [{"name": "benefit-eligibility"}],
        "operators": [
            {
                "id": "admin-desk",
                "name": "Admin",
                "role": "admin",
                "keys": [{"key_id": admin.key_id, "public_key_pem": public_key_pem(admin.public_key)}],
            }
        ],
        "rules": [
            {
                "id": "r-income",
                "requester": "agency:family-benefits",
                "category": "income",
                "purpose": "benefit-eligibility",
                "zone": "white",
                "ground": "Family Benefits Decree, art. 18",
            }
        ],
    }
    async with open_hub(Config(state_dir=tmp_path, database_url=url)) as hub:
        await load_world(hub, world, actor="test", reason="seed")
    ports = (free_port(), free_port())
    async with AsyncExitStack() as stack, aiohttp.ClientSession() as session:
        for port in ports:
            await stack.enter_async_context(
                crossroads(
                    "serve",
                    "--state-dir",
                    str(tmp_path),
                    "--database-url",
                    url,
                    "--port",
                    str(port),
                    answers=f"http://127.0.0.1:{port}/healthz",
                    log=tmp_path / f"hub-{port}.log",
                )
            )
        public_key = load_public_key(public_key_pem(hub_key.public_key))
        clients = [
            HubClient(f"http://127.0.0.1:{port}", admin, "crossroads-hub", public_key, session) for port in ports
        ]
        assert [await _zone(client) for client in clients] == ["white", "white"]
        await _crossroads(
            "policy",
            "remove",
            "r-income",
            "--reason",
            "benefit reform",
            "--state-dir",
            str(tmp_path),
            "--database-url",
            url,
        )
        for client in clients:
            zone = await _zone(client)
            for _ in range(100):  # bounded wait: the processes poll the version every second
                if zone == "black":
                    break
                await asyncio.sleep(0.1)
                zone = await _zone(client)
            assert zone == "black"
