"""The audit reserve against a store that fills up, for real: SQLite held to its size by `PRAGMA max_page_count`
fails writes with SQLITE_FULL as a full disk does. The exchanges already forwarded are completed, the requester
gets the holder's answer, and no other exchange is forwarded until the store has room again. And how the reserve
gives room back on each store (a full PostgreSQL disk is not made here)."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from adapters.client import NO_RETRY, HubClient, HubProblem
from adapters.examples.demo_agencies import PIETER
from adapters.server import RecordRequest
from broker.audit.log import AuditEntry, AuditLog
from broker.audit.reserve import BALLAST, ROW_BYTES, Reserve
from broker.base.store import Lane, StoreUnavailable, create_engine
from broker.base.store.bare import Bare
from broker.cli.demo import HUB_KEY_ID, DemoWorld
from broker.schema.migrations import upgrade
from tests.agencies import add_holder
from tests.faults import FULL, store_fault
from tests.http.test_readiness import readiness

PENSION = {"subject": PIETER, "category": "pension", "purpose": "benefit-eligibility"}
IN_FLIGHT = 200  # exchanges forwarded beside the one asked over HTTP: their completions need pages of their own


def forwarded() -> AuditEntry:
    return AuditEntry(
        at=datetime.now(UTC), kind="exchange", exchange=str(uuid.uuid4()), requester="family-benefits", subject=PIETER
    )


async def fill(audit: AuditLog) -> None:
    """Write records until the store refuses one: the store is full, its free pages taken too."""
    for _ in range(1000):
        written = [AuditEntry(at=datetime.now(UTC), kind="http", status=401, outcome="refused") for _ in range(50)]
        outcomes = await asyncio.gather(*(audit.commit(entry) for entry in written), return_exceptions=True)
        if any(isinstance(outcome, StoreUnavailable) for outcome in outcomes):
            return
    raise AssertionError("the store never filled up")


async def test_a_store_filling_up_completes_what_was_forwarded_and_forwards_nothing_more(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    world, audit = sqlite_world, sqlite_world.hub.audit
    in_flight = [forwarded() for _ in range(IN_FLIGHT)]
    for entry in in_flight:
        await audit.reserve(entry)
    calls = 0

    async def answer(record: RecordRequest) -> dict[str, Any]:
        """The holder's answer; the first time, given once the store has filled up while it was being asked and
        the other exchanges in flight were completed."""
        nonlocal calls
        calls += 1
        if calls == 1:
            await fill(audit)
            for entry in in_flight:
                entry.outcome, entry.status, entry.latency_ms = "delivered", 200, 41.5
                entry.response_digest = "sha-256:" + "7" * 64
            await asyncio.gather(*(audit.commit(entry) for entry in in_flight))
        return {"monthly_amount": 1234}

    client = HubClient(
        world.hub_url, world.keys["family-benefits"], HUB_KEY_ID, world.hub.key.public_key, session, NO_RETRY
    )
    async with AsyncExitStack() as stack:
        await add_holder(world, stack, "pension-office", answer)
        with store_fault(FULL):
            delivered = await client.exchange(**PENSION)
            assert (delivered.status, delivered.data) == (200, {"monthly_amount": 1234})
            with pytest.raises(HubProblem) as refused:
                await client.exchange(**PENSION)
            assert (refused.value.status, refused.value.name, calls) == (503, "unavailable", 1)
            with pytest.raises(StoreUnavailable):
                await audit.reserve(forwarded())
            await readiness(world, session, 503)
        await readiness(world, session, 200)
        assert (await client.exchange(**PENSION)).data == {"monthly_amount": 1234}
    assert calls == 2
    [first, _] = await audit.records(kind="exchange", holder="pension-office", outcome="delivered")
    assert first.exchange == delivered.exchange
    completed = {record.exchange: record.outcome for record in await audit.records(requester="family-benefits")}
    assert {completed[entry.exchange] for entry in in_flight} == {"delivered"}
    await world.hub.sequencer.step()
    verdict = await audit.verify([world.hub.key.public_key])
    assert verdict.ok and await audit.unlinked() == 0


async def test_the_reserve_gives_its_room_back_within_the_completions_transaction_or_before_it(
    database_url: str,
) -> None:
    """SQLite frees ballast pages in the completions' own transaction, where no other write can take them;
    PostgreSQL frees space only by truncating, whose files go back to the filesystem before the completions."""
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        reserve = Reserve(Lane(engine), 4 * ROW_BYTES)
        assert await reserve.refill() and reserve.held == 4

        async def completions(bare: Bare) -> int:
            [(held,)] = await bare.each(select(func.count()).select_from(BALLAST), [{}])
            return int(held)

        left = await reserve.spend(completions)
        assert left == reserve.held == (0 if engine.dialect.name == "postgresql" else 3)
    finally:
        await engine.dispose()
