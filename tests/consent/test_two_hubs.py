"""Two hub processes on one store, SQLite and PostgreSQL: the demo world's hub, and a real `crossroads serve`
started beside it. A consent given, withdrawn, refused or lifted through one counts for the very next
exchange through the other (nothing is cached), and the emergency allowance is one count for both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

import aiohttp
import pytest

from adapters.client import HubClient, HubProblem
from adapters.examples.demo_agencies import ANNA, SOFIE
from broker.cli.demo import FIRE, HUB_KEY_ID, DemoWorld, free_port
from tests.processes import crossroads

INCOME = {"subject": ANNA, "category": "income", "purpose": "benefit-eligibility"}
CONSENT = {
    "subject": ANNA,
    "grantee": "family-benefits",
    "categories": ["income"],
    "purposes": ["benefit-eligibility"],
    "evidence": "portal session 7731",
}


@asynccontextmanager
async def other_hub(world: DemoWorld) -> AsyncIterator[str]:
    """A second `crossroads serve` process on the demo world's store."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with crossroads(
        "serve",
        "--state-dir",
        str(world.state_dir),
        "--database-url",
        world.hub.config.database,
        "--hub-key",
        str(world.hub.config.key_path),
        "--port",
        str(port),
        answers=base + "/readyz",
        log=world.state_dir / f"hub-{port}.log",
    ):
        yield base


def client(world: DemoWorld, base: str, principal: str, session: aiohttp.ClientSession) -> HubClient:
    return HubClient(base, world.keys[principal], HUB_KEY_ID, world.hub.key.public_key, session)


async def problem_of(call: Awaitable[object]) -> str:
    with pytest.raises(HubProblem) as problem:
        await call
    return problem.value.name


async def test_consent_changes_count_at_once_on_the_other_process(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    async with other_hub(world) as base:
        portal_a, portal_b = world.client("citizen-portal", session), client(world, base, "citizen-portal", session)
        agency_a, agency_b = world.client("family-benefits", session), client(world, base, "family-benefits", session)
        admin_b = client(world, base, "admin-desk", session)

        _, given = await portal_a.call("POST", "/v1/consents", CONSENT)
        assert (await agency_b.exchange(**INCOME)).status == 200
        await portal_b.call("POST", f"/v1/consents/{given['consent']}/withdraw")
        assert await problem_of(agency_a.exchange(**INCOME)) == "no-consent"
        assert await problem_of(agency_b.exchange(**INCOME)) == "no-consent"

        sofie = {"subject": SOFIE, "category": "income", "purpose": "benefit-eligibility"}
        assert (await agency_a.exchange(**sofie)).status == 200
        _, refusal = await admin_b.call("POST", "/v1/refusals", {"subject": SOFIE, "agency": "family-benefits"})
        assert await problem_of(agency_a.exchange(**sofie)) == "consent-refused"
        await portal_a.call("POST", f"/v1/refusals/{refusal['refusal']}/lift")
        assert (await agency_b.exchange(**sofie)).status == 200


async def test_the_emergency_allowance_is_shared_by_every_process(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    civil = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility", "emergency": FIRE}
    async with other_hub(world) as base:
        hub_a = world.client("municipality-leuven", session)
        hub_b = client(world, base, "municipality-leuven", session)
        allowance = world.hub.config.emergency_per_day
        for index in range(allowance):
            assert (await (hub_a if index % 2 else hub_b).exchange(**civil)).status == 200
        assert await problem_of(hub_a.exchange(**civil)) == "emergency-limit"
        assert await problem_of(hub_b.exchange(**civil)) == "emergency-limit"
