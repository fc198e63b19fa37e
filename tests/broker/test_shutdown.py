"""SIGTERM: a hub process stops accepting, finishes the exchanges it accepted, flushes its audit batch, and
exits; every accepted exchange is answered and has its audit record."""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.client import HubClient
from adapters.server import Adapter, RecordRequest
from broker.base.keyfiles import write_private_key
from broker.base.signing import SigningKey, public_key_pem
from broker.base.store import create_engine
from broker.cli.demo import free_port
from broker.cli.world import load_world
from broker.config import Config
from broker.hub import open_hub
from broker.schema.migrations import upgrade
from tests.processes import crossroads

IN_FLIGHT = 6


async def _key(path: Path, key_id: str) -> SigningKey:
    return SigningKey(key_id, await asyncio.to_thread(write_private_key, path))


async def test_sigterm_finishes_accepted_exchanges(tmp_path: Path) -> None:
    hub_key = await _key(tmp_path / "hub.pem", "crossroads-hub")
    asker, holder = await _key(tmp_path / "asker.pem", "asker-1"), await _key(tmp_path / "holder.pem", "holder-1")
    holder_port, hub_port = free_port(), free_port()
    arrived, release = asyncio.Event(), asyncio.Event()
    seen: list[str] = []

    async def slow(request: RecordRequest) -> dict[str, Any]:
        seen.append(request.exchange)
        if len(seen) == IN_FLIGHT:
            arrived.set()
        await release.wait()
        return {"pension": 1480}

    adapter = Adapter("holder", holder, "crossroads-hub", hub_key.public_key, f"http://127.0.0.1:{holder_port}")
    adapter.category("pension")(slow)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'crossroads.db'}")
    await upgrade(engine)
    await engine.dispose()
    world = {
        "categories": [{"name": "pension"}],
        "purposes": [{"name": "benefit-eligibility"}],
        "agencies": [
            {
                "id": "asker",
                "name": "Asker",
                "adapter_url": "http://127.0.0.1:9",
                "keys": [{"key_id": asker.key_id, "public_key_pem": public_key_pem(asker.public_key)}],
            },
            {
                "id": "holder",
                "name": "Holder",
                "adapter_url": f"http://127.0.0.1:{holder_port}",
                "keys": [{"key_id": holder.key_id, "public_key_pem": public_key_pem(holder.public_key)}],
            },
        ],
        "holdings": [{"holder": "holder", "category": "pension", "subjects": ["66040412399"]}],
        "relationships": [{"agency": "asker", "capacity": "beneficiary", "subjects": ["66040412399"]}],
        "rules": [
            {
                "id": "r-1",
                "requester": "agency:asker",
                "category": "pension",
                "purpose": "benefit-eligibility",
                "zone": "white",
                "ground": "Pensions Act, art. 12",
            }
        ],
    }
    async with open_hub(Config(state_dir=tmp_path)) as hub:
        await load_world(hub, world, actor="test", reason="seed")

    async with AsyncExitStack() as stack:
        runner = web.AppRunner(adapter.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", holder_port).start()
        stack.push_async_callback(runner.cleanup)
        process = await stack.enter_async_context(
            crossroads(
                "serve",
                "--state-dir",
                str(tmp_path),
                "--port",
                str(hub_port),
                answers=f"http://127.0.0.1:{hub_port}/healthz",
                log=tmp_path / "hub.log",
            )
        )
        session = await stack.enter_async_context(aiohttp.ClientSession())
        client = HubClient(f"http://127.0.0.1:{hub_port}", asker, "crossroads-hub", hub_key.public_key, session)
        exchanges = [
            asyncio.create_task(client.exchange("66040412399", "pension", "benefit-eligibility"))
            for _ in range(IN_FLIGHT)
        ]
        await asyncio.wait_for(arrived.wait(), 30)
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)  # the hub has stopped listening by now, while its exchanges wait on the holder
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as late, late.get(f"http://127.0.0.1:{hub_port}/healthz"):
                pass
        release.set()
        results = await asyncio.gather(*exchanges)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    assert [result.status for result in results] == [200] * IN_FLIGHT
    async with open_hub(Config(state_dir=tmp_path)) as reopened:
        records = await reopened.audit.records(kind="exchange")
    assert sorted(record.exchange for record in records if record.outcome == "delivered") == sorted(
        result.exchange for result in results
    )
