"""Test agencies added to a running demo world: a real adapter (or a misbehaving server) on a loopback
port, registered in the directory, with the rule that lets family-benefits ask it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from adapters.examples.demo_agencies import PIETER
from adapters.server import Adapter, RecordRequest
from broker.base.signing import SigningKey, generate_key, public_key_pem
from broker.cli.demo import HUB_KEY_ID, DemoWorld, free_port
from policies.rules import Rule


async def serve(stack: AsyncExitStack, app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stack.push_async_callback(runner.cleanup)


async def register(
    world: DemoWorld,
    agency: str,
    url: str,
    key: SigningKey,
    category: str = "pension",
    fields: tuple[str, ...] | None = None,
) -> None:
    """Make `agency` the holder of `category` for Pieter, and let family-benefits ask it (white), for `fields`."""
    await world.hub.directory.load(
        {
            "agencies": [
                {
                    "id": agency,
                    "name": agency,
                    "adapter_url": url,
                    "keys": [{"key_id": key.key_id, "public_key_pem": public_key_pem(key.public_key)}],
                }
            ],
            "holdings": [{"holder": agency, "category": category, "subjects": [PIETER]}],
        },
        datetime.now(UTC),
    )
    rule_set = await world.hub.policies.rules()
    rules = [
        *rule_set.rules,
        Rule(f"r-{agency}", "agency:family-benefits", category, "benefit-eligibility", "white", fields=fields),
    ]
    await world.hub.policies.replace(
        rules, list(rule_set.groups), "test", f"let family-benefits ask {agency}", datetime.now(UTC)
    )


async def add_holder(
    world: DemoWorld,
    stack: AsyncExitStack,
    agency: str,
    handler: Callable[[RecordRequest], Awaitable[dict[str, Any]]],
    category: str = "pension",
    params: dict[str, Any] | None = None,
    fields: tuple[str, ...] | None = None,
    kind: type[Adapter] = Adapter,
) -> None:
    """A real adapter (of `kind`) for `agency` answering `category` with `handler`."""
    key = SigningKey(f"{agency}-key", generate_key())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    adapter = kind(agency, key, HUB_KEY_ID, world.hub.key.public_key, url)
    adapter.category(category, params)(handler)
    await serve(stack, adapter.app(), port)
    await register(world, agency, url, key, category, fields)
