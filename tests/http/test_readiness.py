"""`/readyz` on SQLite and PostgreSQL: ready only while the store takes a write and the audit writer runs, so that
a load balancer stops sending exchanges that would all be answered 503."""

from __future__ import annotations

import asyncio

import aiohttp

from broker.cli.demo import DemoWorld
from tests.faults import READ_ONLY, store_fault


async def readiness(world: DemoWorld, session: aiohttp.ClientSession, expected: int) -> dict[str, object]:
    """The answer of /readyz once it is `expected`: the hub probes the store at most once a second, and a loaded
    machine may take a while more (a generous bound: this waits for the state, not for a time)."""
    for _ in range(1200):
        async with session.get(world.hub_url + "/readyz") as answer:
            if answer.status == expected:
                return dict(await answer.json(content_type=None))
        await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz never answered {expected}")


async def test_a_store_that_takes_no_write_is_not_ready(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    assert (await readiness(world, session, 200))["status"] == "ready"
    with store_fault(READ_ONLY[world.hub.engine.dialect.name]):
        problem = await readiness(world, session, 503)
        assert problem["type"] == "https://crossroads.example/problems/unavailable"
    await readiness(world, session, 200)
