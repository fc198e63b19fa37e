"""Limits: a principal's rate and its requests in flight (429 with Retry-After, audited), a hung holder that
ties up only its own bounded connections, a requester that disconnects cancelling its exchange, the call to
the holder included, with the attempt recorded as abandoned; and holders answering what the hub will not
pass on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.client import NO_RETRY, HubClient, HubProblem
from adapters.examples.demo_agencies import ANNA, PIETER
from adapters.server import RecordRequest
from broker.base.signing import SigningKey, generate_key
from broker.cli.demo import HUB_KEY_ID, DemoWorld, demo_world
from broker.exchange.limits import ConcurrencyCap
from tests.agencies import add_holder, register
from tests.hostile.forge import Signing, sign

WHITE = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}
PLACEMENT = {**WHITE, "purpose": "job-placement"}
PENSION = {"subject": PIETER, "category": "pension", "purpose": "benefit-eligibility"}


def once(world: DemoWorld, principal: str, session: aiohttp.ClientSession) -> HubClient:
    """A client that does not repeat a rate-limited request after its Retry-After, as the SDK would."""
    return HubClient(world.hub_url, world.keys[principal], HUB_KEY_ID, world.hub.key.public_key, session, NO_RETRY)


class HungHolder:
    """A holder's adapter that accepts connections and never answers; it counts the connections open at once
    and notices when the hub closes one."""

    def __init__(self) -> None:
        self.open = 0
        self.most = 0
        self.accepted = asyncio.Event()
        self.closed = asyncio.Event()

    async def holding(self, count: int) -> None:
        """Until `count` connections are open at once."""
        while self.open < count:  # noqa: ASYNC110 -- the count the server's handlers keep, read as they change it
            await asyncio.sleep(0.01)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.most = max(self.most, self.open)
        self.accepted.set()
        try:
            await reader.read()  # until the hub closes its end
        finally:
            self.open -= 1
            self.closed.set()
            writer.close()


@asynccontextmanager
async def hung_holder(world: DemoWorld) -> AsyncIterator[HungHolder]:
    """`pension-office`, holder of Pieter's pension, whose adapter hangs."""
    holder = HungHolder()
    server = await asyncio.start_server(holder.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await register(world, "pension-office", f"http://127.0.0.1:{port}", SigningKey("pension-2026", generate_key()))
    try:
        yield holder
    finally:
        server.close()


def test_the_concurrency_cap_counts_each_principal_apart() -> None:
    cap = ConcurrencyCap(2)
    assert cap.enter("a") and cap.enter("a") and not cap.enter("a")
    assert cap.enter("b")
    cap.leave("a")
    assert cap.enter("a") and cap.in_flight("a") == 2


async def test_the_rate_limit_answers_429_with_retry_after_and_is_audited(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with demo_world(tmp_path / "state", rate_per_s=0.5, rate_burst=2) as world:
        agency = once(world, "family-benefits", session)
        await agency.exchange(**WHITE)
        await agency.exchange(**WHITE)
        with pytest.raises(HubProblem) as limited:
            await agency.exchange(**WHITE)
        assert limited.value.status == 429 and limited.value.name == "rate-limited"
        assert limited.value.retry_after is not None and limited.value.retry_after >= 1
        other = world.client("employment-office", session)  # another principal has its own bucket
        assert (await other.exchange(**PLACEMENT)).status == 200
        [record] = await world.hub.audit.records(reason="rate-limited")
        assert (record.requester, record.status) == ("family-benefits", 429)


async def test_requests_over_a_principals_in_flight_cap_are_refused_not_queued(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    settings = {"in_flight_per_principal": 2, "holder_timeout_s": 30.0}
    async with demo_world(tmp_path / "state", **settings) as world, hung_holder(world) as holder:
        family = once(world, "family-benefits", session)
        pending = [asyncio.create_task(family.exchange(**PENSION)) for _ in range(2)]
        await asyncio.wait_for(holder.holding(2), 10)
        with pytest.raises(HubProblem) as refused:
            await family.exchange(**WHITE)
        assert refused.value.name == "rate-limited" and refused.value.retry_after == 1
        other = world.client("employment-office", session)  # another principal is not held up
        assert (await other.exchange(**PLACEMENT)).status == 200
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def test_a_hung_holder_does_not_hold_up_exchanges_to_another_holder(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    settings = {"holder_connections_each": 2, "holder_timeout_s": 1.0}
    async with demo_world(tmp_path / "state", **settings) as world, hung_holder(world) as holder:
        family = world.client("family-benefits", session)
        hung = [asyncio.create_task(family.exchange(**PENSION)) for _ in range(5)]
        await asyncio.wait_for(holder.holding(2), 10)
        assert (await family.exchange(**WHITE)).status == 200  # while five wait on the hung holder
        outcomes = await asyncio.gather(*hung, return_exceptions=True)
        assert [getattr(outcome, "name", outcome) for outcome in outcomes] == ["holder-timeout"] * 5
        assert holder.most == 2  # never more connections to one holder than its share of the pool


async def test_a_requester_that_disconnects_cancels_its_exchange_and_its_call_to_the_holder(
    tmp_path: Path,
) -> None:
    async with demo_world(tmp_path / "state", holder_timeout_s=30.0) as world, hung_holder(world) as holder:
        key = world.keys["family-benefits"]
        body = json.dumps(PENSION).encode()
        headers = sign("POST", world.hub_url + "/v1/exchanges", body, key.key_id, key.private_key, Signing())
        _, writer = await asyncio.open_connection("127.0.0.1", world.hub.config.port)
        head = ["POST /v1/exchanges HTTP/1.1", "Host: hub", f"Content-Length: {len(body)}"]
        writer.write(("\r\n".join(head + [f"{n}: {v}" for n, v in headers]) + "\r\n\r\n").encode() + body)
        await writer.drain()
        await asyncio.wait_for(holder.accepted.wait(), 10)
        writer.close()  # the requester gives up
        await writer.wait_closed()
        # Well before the 30 s holder timeout, the hub hangs up on the holder.
        await asyncio.wait_for(holder.closed.wait(), 10)
        record = await _abandoned(world)
        assert (record["status"], record["reason"], record["requester"]) == (499, "requester-gone", "family-benefits")
        assert record["holder"] == "pension-office"


async def _abandoned(world: DemoWorld) -> dict[str, Any]:
    for _ in range(100):  # the record is committed as the cancelled request unwinds
        records = await world.hub.audit.records(outcome="abandoned")
        if records:
            return {name: getattr(records[0], name) for name in ("status", "reason", "requester", "holder")}
        await asyncio.sleep(0.05)
    raise AssertionError("no abandoned exchange was recorded")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**60], ids=["NaN", "Infinity", "2**60"])
async def test_a_holder_answer_that_is_not_i_json_is_a_bad_gateway(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession, value: float
) -> None:
    """A holder's signed answer the hub could not pass on so that every requester's parser reads it alike."""

    async def answer(record: RecordRequest) -> dict[str, Any]:
        return {"monthly_amount": value}

    async with AsyncExitStack() as stack:
        await add_holder(sqlite_world, stack, "pension-office", answer)
        with pytest.raises(HubProblem) as refused:
            await once(sqlite_world, "family-benefits", session).exchange(**PENSION)
    assert (refused.value.status, refused.value.name) == (502, "bad-holder-answer")
