"""The caches of directory reads: bounded, read once for concurrent misses, never keeping a read that a write
overtook, and across hub processes on one PostgreSQL a suspension, a key revocation or a holder's suspension
made through one hub is obeyed by the other once it has followed the directory version (on the test's own
clock: with the default `cache_follow_s` of 0, at its very next request), and at once by the hub that made it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from broker.audit.log import AuditEntry
from broker.base import errors
from broker.base.caches import CacheSettings, ReadThrough
from broker.base.keyfiles import write_private_key
from broker.base.signing import SigningKey, generate_key, public_key_pem, sign_request
from broker.base.store import create_engine
from broker.cli.world import load_world
from broker.config import Config
from broker.hub import Hub, open_hub
from broker.schema.migrations import upgrade
from tests import postgres

SUBJECT = "85073003328"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_misses_read_once_and_entries_expire() -> None:
    clock, reads = Clock(), []

    async def load() -> str:
        reads.append(clock.now)
        await asyncio.sleep(0)
        return f"read at {clock.now}"

    cache: ReadThrough[str, str] = ReadThrough(CacheSettings(ttl_s=1.0, max_entries=10, clock=clock))
    assert await asyncio.gather(*(cache.get("k", load) for _ in range(5))) == ["read at 0.0"] * 5
    assert len(reads) == 1
    clock.now = 0.5
    assert await cache.get("k", load) == "read at 0.0"
    clock.now = 1.0
    assert await cache.get("k", load) == "read at 1.0"
    assert len(reads) == 2


async def test_the_cache_is_bounded() -> None:
    async def load(key: int) -> int:
        return key

    cache: ReadThrough[int, int] = ReadThrough(CacheSettings(ttl_s=60.0, max_entries=100))
    for key in range(1000):
        assert await cache.get(key, lambda key=key: load(key)) == key  # type: ignore[misc]
    assert len(cache) == 100


async def test_a_read_overtaken_by_a_write_is_not_kept() -> None:
    store = {"status": "active"}
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_read() -> str:
        value = store["status"]
        started.set()
        await release.wait()
        return value

    async def read() -> str:
        return store["status"]

    cache: ReadThrough[str, str] = ReadThrough(CacheSettings())
    before = asyncio.ensure_future(cache.get("agency", slow_read))
    await started.wait()
    store["status"] = "suspended"
    cache.clear()  # what a write through the directory store does
    assert await cache.get("agency", read) == "suspended"  # a caller after the write does not share the old read
    release.set()
    assert await before == "active"  # begun before the write: answers what it read...
    assert await cache.get("agency", read) == "suspended"  # ...but is not kept


async def test_a_failed_read_is_not_kept() -> None:
    async def failing() -> str:
        raise ConnectionError("store down")

    async def read() -> str:
        return "fine"

    cache: ReadThrough[str, str] = ReadThrough(CacheSettings())
    with pytest.raises(ConnectionError):
        await cache.get("k", failing)
    assert await cache.get("k", read) == "fine"


# --- two hubs on one PostgreSQL ----------------------------------------------------------------------------


def _world(agency: SigningKey) -> dict[str, Any]:
    return {
        "categories": [{"name": "civil-status"}],
        "purposes": [{"name": "benefit-eligibility"}],
        "agencies": [
            {
                "id": "family-benefits",
                "name": "Family Benefits",
                "adapter_url": "http://127.0.0.1:9",
                "keys": [{"key_id": agency.key_id, "public_key_pem": public_key_pem(agency.public_key)}],
            },
            {"id": "population-register", "name": "Population Register", "adapter_url": "http://127.0.0.1:9"},
        ],
        "holdings": [{"holder": "population-register", "category": "civil-status", "subjects": [SUBJECT]}],
        "relationships": [{"agency": "family-benefits", "capacity": "beneficiary", "subjects": [SUBJECT]}],
    }


async def _authenticated(hub: Hub, key: SigningKey) -> str:
    """`ok` if the hub authenticates a fresh request signed with `key`, else the problem's name."""
    body = json.dumps({"subject": SUBJECT, "category": "civil-status", "purpose": "benefit-eligibility"}).encode()
    headers = CIMultiDict(sign_request("POST", hub.config.url + "/v1/exchanges", body, key))
    entry = AuditEntry(at=datetime.now(UTC), kind="exchange")
    try:
        await hub.authenticator.authenticate("POST", "/v1/exchanges", headers, body, entry)
    except errors.Problem as problem:
        return problem.name
    return "ok"


async def _holders(hub: Hub) -> list[str]:
    return [holder.id for holder in await hub.directory.holders(SUBJECT, "civil-status", datetime.now(UTC))]


@pytest.mark.postgres
async def test_a_change_through_one_hub_is_obeyed_by_another_within_the_bound(
    postgres_server: postgres.Server, tmp_path: Path
) -> None:
    url = await postgres_server.new_database()
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    await asyncio.to_thread(write_private_key, tmp_path / "hub.pem")
    agency, clock = SigningKey("family-benefits-1", generate_key()), Clock()
    config = Config(state_dir=tmp_path, database_url=url)
    # Issue 10: every hub process obeys such a change within 2 seconds. Writes move the directory version, which
    # each process reads at most every `cache_follow_s`; what is read apart from it expires after `cache_ttl_s`.
    assert config.cache_follow_s <= 2.0 and config.cache_ttl_s <= 2.0
    async with open_hub(config, clock) as first, open_hub(config, clock) as second:
        await load_world(first, _world(agency), actor="test", reason="seed")
        # The second hub reads the key, the agency and the holders: its caches now hold them.
        assert await _authenticated(second, agency) == "ok"
        assert await _holders(second) == ["population-register"]

        await first.directory.set_agency_status("family-benefits", "suspended")
        assert await _authenticated(first, agency) == "suspended"  # the hub that wrote it: at once
        clock.now += config.cache_follow_s
        assert await _authenticated(second, agency) == "suspended"

        await first.directory.set_agency_status("family-benefits", "active")
        clock.now += config.cache_follow_s
        assert await _authenticated(second, agency) == "ok"
        revoked = {"key_id": agency.key_id, "public_key_pem": public_key_pem(agency.public_key), "status": "revoked"}
        await first.directory.load(
            {"agencies": [{**_world(agency)["agencies"][0], "keys": [revoked]}]}, datetime.now(UTC)
        )
        assert await _authenticated(first, agency) == "unknown-key"
        clock.now += config.cache_follow_s
        assert await _authenticated(second, agency) == "unknown-key"

        await first.directory.set_agency_status("population-register", "suspended")
        assert await _holders(first) == []
        clock.now += config.cache_follow_s
        assert await _holders(second) == []
