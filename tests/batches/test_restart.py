"""A hub process killed in the middle of a batch (SIGKILL: nothing said, nothing flushed) takes it up again when it
starts, on each store: every line is answered once, none is decided or forwarded twice (each line has exactly one
audit record, which a forward needs first), none is lost."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from adapters.client import HubClient
from adapters.examples.demo_agencies import ANNA, JAN, SOFIE
from broker.cli.demo import HUB_KEY_ID, DemoWorld, demo_world, free_port
from tests.processes import crossroads

LINES = 3_000
ASKED = [
    {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"},  # white: delivered
    {"subject": SOFIE, "category": "income", "purpose": "benefit-eligibility"},  # delivered under consent
    {"subject": ANNA, "category": "health-record", "purpose": "benefit-eligibility"},  # black: refused
    {"subject": JAN, "category": "employment-status", "purpose": "benefit-eligibility"},  # grey: a review
]


async def test_a_killed_hub_takes_its_batch_up_again(
    database_url: str, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with demo_world(tmp_path / "state", database_url) as world:
        port = free_port()
        address = f"http://127.0.0.1:{port}"
        args = (
            "serve",
            "--database-url",
            world.hub.config.database,
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path / "second"),
            "--hub-key",
            str(world.hub.config.key_path),
        )
        settings = {"CROSSROADS_BATCH_WINDOW": "100", "CROSSROADS_BATCH_LEASE_S": "1"}
        client = HubClient(address, world.keys["family-benefits"], HUB_KEY_ID, world.hub.key.public_key, session)
        batch = tmp_path / "batch.ndjson"
        batch.write_text("".join(json.dumps({"ref": n, **ASKED[n % 4]}) + "\n" for n in range(LINES)))
        log = tmp_path / "second.log"
        async with crossroads(*args, answers=address + "/healthz", log=log, env=settings) as process:
            accepted = await client.submit_batch(batch)
            await _until_some_done(client, accepted["batch"])
            process.kill()
            await process.wait()
        _, stopped = await world.client("family-benefits", session).call("GET", f"/v1/batches/{accepted['batch']}")
        assert stopped["status"] == "running" and 0 < stopped["done"] < LINES
        async with crossroads(*args, answers=address + "/healthz", log=log, env=settings):
            last = await client.follow_batch(accepted["batch"], tmp_path / "results.ndjson", poll_s=0.05)
        answers = [json.loads(line) for line in (tmp_path / "results.ndjson").read_text().splitlines()]
        records = await world.hub.audit.records(kind="exchange")
        reviews = await world.hub.reviews.with_status("pending")
    assert last["status"] == "done" and last["done"] == LINES
    assert [answer["line"] for answer in answers] == list(range(1, LINES + 1))
    assert [answer["ref"] for answer in answers] == list(range(LINES))
    assert len(records) == LINES and Counter(record.exchange for record in records).most_common(1)[0][1] == 1
    outcomes = {record.exchange: record.outcome for record in records}
    for answer in answers:
        outcome = outcomes[answer["exchange"]]
        if answer.get("problem", {}).get("type", "").endswith("/interrupted"):
            assert outcome in ("failed", "delivered")  # maybe asked, its answer not kept: not asked again
        else:
            assert outcome == {200: "delivered", 202: "pending", 403: "refused"}[answer["status"]]
    assert len(reviews) == len({answer["review"] for answer in answers if answer["status"] == 202}) == LINES // 4


async def _until_some_done(client: HubClient, batch: str) -> None:
    for _ in range(600):
        _, state = await client.call("GET", f"/v1/batches/{batch}")
        if state["done"] > 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"batch {batch} did not start")


async def test_lines_that_may_have_been_asked_are_not_asked_again(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    """A process stopped while the first two lines of a window were with their holder (the window's marker says
    so, and they have no record): taken up again, those two are answered `interrupted` with a record each, and
    only the others are asked."""
    world, runner = sqlite_world, sqlite_world.hub.batches
    spool = runner.spool_dir / "stopped.ndjson"
    spool.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps({"ref": n, **ASKED[0]}) + "\n" for n in range(4)).encode()
    spool.write_bytes(body)
    key_id = world.keys["family-benefits"].key_id
    job = await runner.batches.create("family-benefits", key_id, "sha-256:-", len(body), spool, 4, datetime.now(UTC))
    await runner.batches.asking(job, 2)
    runner.start(job)
    client = world.client("family-benefits", session)
    for _ in range(400):
        _, state = await client.call("GET", f"/v1/batches/{job.id}")
        if state["status"] == "done":
            break
        await asyncio.sleep(0.05)
    answers = [json.loads(line) for line in await client.batch_results(job.id)]
    assert [answer["status"] for answer in answers] == [503, 503, 200, 200]
    assert answers[0]["problem"]["type"].endswith("/interrupted")
    records = {record.exchange: record for record in await world.hub.audit.records(kind="exchange")}
    assert [(records[a["exchange"]].outcome, records[a["exchange"]].reason) for a in answers[:2]] == [
        ("failed", "interrupted")
    ] * 2
    assert state["by_outcome"] == {"delivered": 2, "failed": 2}
