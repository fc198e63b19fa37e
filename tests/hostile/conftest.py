"""The hostile world: the demo world (on SQLite, one per test module) with principals and keys an attacker
might hold: a suspended agency, a suspended operator, and revoked, expired and not yet valid keys of
family-benefits. Rate limits are lifted so that hundreds of cases from one principal, and hundreds refused
before authentication from one address, are not throttled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from adapters.examples.demo_agencies import AGENCIES
from broker.base.signing import SigningKey, generate_key, public_key_pem
from broker.cli.demo import DemoWorld, demo_world
from tests import postgres

DAY = timedelta(days=1)
UNLIMITED = {"rate_per_s": 1e6, "rate_burst": 1e6, "unauthenticated_rate_per_s": 1e6, "unauthenticated_burst": 1e6}


@dataclass(frozen=True)
class Hostile:
    world: DemoWorld
    keys: dict[str, SigningKey]  # every signing key the corpus uses, by key id

    @property
    def port(self) -> int:
        return self.world.hub.config.port

    def url(self, target: str) -> str:
        return self.world.hub_url + target

    def key_of(self, principal: str) -> SigningKey:
        return self.world.keys[principal]


def _key(key_id: str, **period: object) -> tuple[SigningKey, dict[str, object]]:
    key = SigningKey(key_id, generate_key())
    return key, {"key_id": key_id, "public_key_pem": public_key_pem(key.public_key), **period}


async def hostile_world(world: DemoWorld) -> Hostile:
    now = datetime.now(UTC)
    revoked, revoked_row = _key("family-benefits-revoked", status="revoked")
    expired, expired_row = _key("family-benefits-expired", valid_from=now - 2 * DAY, valid_until=now - DAY)
    future, future_row = _key("family-benefits-future", valid_from=now + DAY)
    suspended, suspended_row = _key("suspended-agency-2026")
    desk, desk_row = _key("suspended-desk-2026")
    await world.hub.directory.load(
        {
            "agencies": [
                {
                    "id": "family-benefits",
                    "name": AGENCIES["family-benefits"]["name"],
                    "adapter_url": world.adapter_urls["family-benefits"],
                    "keys": [revoked_row, expired_row, future_row],
                },
                {
                    "id": "suspended-agency",
                    "name": "Suspended Agency",
                    "adapter_url": "http://127.0.0.1:9",
                    "status": "suspended",
                    "keys": [suspended_row],
                },
            ],
            "operators": [
                {
                    "id": "suspended-desk",
                    "name": "Suspended Desk",
                    "role": "admin",
                    "status": "suspended",
                    "keys": [desk_row],
                },
            ],
        },
        now,
    )
    keys = {key.key_id: key for key in world.keys.values()}
    keys.update({key.key_id: key for key in (revoked, expired, future, suspended, desk)})
    return Hostile(world, keys)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hostile(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hostile]:
    state = tmp_path_factory.mktemp("hostile") / "state"
    async with demo_world(state, **UNLIMITED) as world:
        yield await hostile_world(world)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hostile_postgres(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: postgres.Server
) -> AsyncIterator[Hostile]:
    state = tmp_path_factory.mktemp("hostile-postgres") / "state"
    url = await postgres_server.new_database()
    async with demo_world(state, url, **UNLIMITED) as world:
        yield await hostile_world(world)
