"""Change notifications: who hears, durable at-least-once delivery with retries, dead letters and replay,
restart durability, and two hub processes on one PostgreSQL sending each delivery once."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.client import HubProblem
from adapters.examples.demo_agencies import ANNA
from adapters.server import Notification
from broker.base.change_events import from_event
from broker.cli.demo import DemoWorld, demo_world, free_port
from broker.config import Config
from broker.hub import open_hub
from broker.notifications.fanout import backoff, exhausted, recipients
from tests import postgres
from tests.agencies import serve

CHANGE = {"subject": ANNA, "category": "civil-status", "event": "updated", "ref": "pop-2026-118"}
FAST = {"notification_backoff_s": 0.05, "notification_backoff_cap_s": 0.1, "notification_poll_s": 0.05}


def test_recipients() -> None:
    zones = {
        "family-benefits": "white",
        "employment-office": "white",
        "municipality-leuven": "black",
        "tax-authority": "grey",
        "population-register": "white",
    }
    related = list(zones)
    assert recipients(related, "population-register", zones, set()) == ["employment-office", "family-benefits"]
    assert recipients(related, "population-register", zones, {"family-benefits"}) == ["employment-office"]
    assert recipients([], "population-register", zones, set()) == []


def test_backoff_grows_within_its_cap_and_jitters() -> None:
    rng = random.Random(7)
    delays = [backoff(attempt, 1.0, 60.0, rng) for attempt in range(1, 12)]
    assert all(0.5 * min(60, 2 ** (n - 1)) <= d <= min(60, 2 ** (n - 1)) for n, d in enumerate(delays, start=1))
    assert exhausted(5, 0, 5, 100) and exhausted(1, 100, 5, 100) and not exhausted(4, 99, 5, 100)


async def _received(world: DemoWorld, agencies: list[str]) -> dict[str, list[Notification]]:
    inbox: dict[str, list[Notification]] = {agency: [] for agency in agencies}
    for agency in agencies:

        async def handler(notice: Notification, agency: str = agency) -> None:
            inbox[agency].append(notice)

        world.adapters[agency].notifications(handler)
    return inbox


async def _until(condition: Any, rounds: int = 200) -> None:
    """Wait, boundedly, for the delivery workers to get somewhere."""
    for _ in range(rounds):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox did not get there")


async def test_fan_out_reaches_related_agencies_whose_rules_allow(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    inbox = await _received(world, list(world.adapters))
    status, answer = await world.client("population-register", session).call("POST", "/v1/notifications", CHANGE)
    assert (status, answer["recipients"]) == (202, 3)

    async def all_delivered() -> bool:  # received, and the hub has recorded each delivery
        records = await world.hub.audit.records(kind="notification")
        delivered = sum(record.outcome == "delivered" for record in records)
        return sum(len(notices) for notices in inbox.values()) == 3 and delivered == 3

    await _until(all_delivered)
    told = {agency for agency, notices in inbox.items() if notices}
    # Municipality has a relationship but no rule to hear about civil status; health insurance has none.
    assert told == {"family-benefits", "employment-office", "tax-authority"}
    assert {notice.notification for notices in inbox.values() for notice in notices} == {answer["notification"]}
    records = await world.hub.audit.records(kind="notification")
    assert Counter(record.outcome for record in records) == Counter({"pending": 1, "delivered": 3})


async def test_only_the_holder_may_notify(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    with pytest.raises(HubProblem) as refused:
        await sqlite_world.client("tax-authority", session).call("POST", "/v1/notifications", CHANGE)
    assert (refused.value.status, refused.value.name) == (403, "not-holder")
    with pytest.raises(HubProblem) as invalid:
        await sqlite_world.client("population-register", session).call(
            "POST", "/v1/notifications", {**CHANGE, "data": {"address": "x"}}
        )
    assert invalid.value.status == 422


async def test_opting_out(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    await sqlite_world.client("family-benefits", session).call("PUT", "/v1/notifications/opt-outs/civil-status")
    _, answer = await sqlite_world.client("population-register", session).call("POST", "/v1/notifications", CHANGE)
    assert answer["recipients"] == 2
    await sqlite_world.client("family-benefits", session).call("DELETE", "/v1/notifications/opt-outs/civil-status")
    _, answer = await sqlite_world.client("population-register", session).call("POST", "/v1/notifications", CHANGE)
    assert answer["recipients"] == 3


class FlakyAdapter:
    """A recipient's adapter that fails its first `failures` deliveries (a real HTTP server on loopback)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        notice = from_event(request.headers["Content-Type"], await request.read())
        if self.failures > 0:
            self.failures -= 1
            return web.json_response({"error": "busy"}, status=503)
        self.received.append(notice.notification)
        return web.json_response({"received": True})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/notifications", self.handle)
        return app


async def _point(world: DemoWorld, agency: str, url: str) -> None:
    await world.hub.directory.load(
        {"agencies": [{"id": agency, "name": agency, "adapter_url": url}]}, datetime.now(UTC)
    )


async def test_retry_then_delivered(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    flaky = FlakyAdapter(failures=2)
    async with demo_world(tmp_path / "state", **FAST) as world, AsyncExitStack() as stack:
        port = free_port()
        await serve(stack, flaky.app(), port)
        await _point(world, "employment-office", f"http://127.0.0.1:{port}")
        _, answer = await world.client("population-register", session).call("POST", "/v1/notifications", CHANGE)

        async def outcomes() -> list[str]:
            records = await world.hub.audit.records(kind="notification", requester="employment-office")
            return [record.outcome for record in records]

        async def delivered() -> bool:  # the delivery's audit record is committed just after the adapter answers
            return "delivered" in await outcomes()

        await _until(delivered)
        assert flaky.received == [answer["notification"]]
        assert await outcomes() == ["retrying", "retrying", "delivered"]


async def test_dead_letter_and_replay(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    flaky = FlakyAdapter(failures=2)
    async with demo_world(tmp_path / "state", notification_max_attempts=2, **FAST) as world, AsyncExitStack() as stack:
        port = free_port()
        await serve(stack, flaky.app(), port)
        await _point(world, "employment-office", f"http://127.0.0.1:{port}")
        await world.client("population-register", session).call("POST", "/v1/notifications", CHANGE)
        admin = world.client("admin-desk", session)

        async def dead() -> bool:
            return bool((await admin.call("GET", "/v1/notifications/dead-letters"))[1]["dead_letters"])

        await _until(dead)
        _, listed = await admin.call("GET", "/v1/notifications/dead-letters")
        [letter] = listed["dead_letters"]
        assert (letter["recipient"], letter["attempts"]) == ("employment-office", 2)
        _, replayed = await admin.call(
            "POST", "/v1/notifications/dead-letters/replay", {"deliveries": [letter["delivery"]]}
        )
        assert replayed == {"replayed": 1}

        async def arrived() -> bool:
            return flaky.received == [letter["notification"]]

        await _until(arrived)
        assert (await admin.call("GET", "/v1/notifications/dead-letters"))[1]["dead_letters"] == []


async def test_pending_deliveries_survive_a_restart(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    # A delivery in flight when the hub stops keeps its lease: a short one lets the restarted hub retry soon.
    settings = {**FAST, "notification_backoff_s": 0.2, "notification_backoff_cap_s": 0.2, "notification_lease_s": 0.5}
    async with demo_world(tmp_path / "state", **settings) as world:
        await _point(world, "employment-office", f"http://127.0.0.1:{free_port()}")  # nobody listens there
        _, answer = await world.client("population-register", session).call("POST", "/v1/notifications", CHANGE)

        async def tried() -> bool:
            return any(r.outcome == "retrying" for r in await world.hub.audit.records(kind="notification"))

        await _until(tried)
    async with demo_world(tmp_path / "state", **settings) as restarted:  # the hub comes back; adapters too

        async def arrived() -> bool:  # read from the log: the notice may arrive before any handler is set
            records = await restarted.hub.audit.records(kind="notification", requester="employment-office")
            return any(r.outcome == "delivered" and r.exchange == answer["notification"] for r in records)

        await _until(arrived)


@pytest.mark.postgres
async def test_two_processes_deliver_each_notification_once(
    postgres_server: postgres.Server, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    url = await postgres_server.new_database()
    async with demo_world(tmp_path / "state", url, **FAST) as world:
        config = Config(state_dir=world.state_dir, database_url=url, hub_key_path=world.hub.config.key_path, **FAST)  # type: ignore[arg-type]
        async with open_hub(config):  # a second hub process's services, with its own delivery worker
            register = world.client("population-register", session)
            published = [(await register.call("POST", "/v1/notifications", CHANGE))[1] for _ in range(15)]

            async def all_delivered() -> bool:
                records = await world.hub.audit.records(kind="notification", outcome="delivered")
                return len(records) >= 45

            await _until(all_delivered, rounds=600)
            await asyncio.sleep(0.3)  # any second sending of a delivery would show up by now
            delivered = Counter(
                (r.exchange, r.requester)
                for r in await world.hub.audit.records(kind="notification", outcome="delivered")
            )
    assert len(delivered) == 15 * 3 and set(delivered.values()) == {1}
    assert {notification for notification, _ in delivered} == {p["notification"] for p in published}
