"""Batches end to end through the agency SDK (`HubClient.batch`): each line decided exactly as the same request
alone, with its own audit record; bad lines answered, never a failed batch; progress, results read once, cancel,
quotas; a holder that fails fails its lines only."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.client import HubProblem
from adapters.examples.demo_agencies import ANNA, JAN, SOFIE
from broker.audit.log import digest
from broker.base.signing import sign_request
from broker.cli.demo import FIRE, SCENARIO, DemoWorld, demo_world

BENEFITS = "family-benefits"
WHITE = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}


def write(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def until(world: DemoWorld, session: aiohttp.ClientSession, batch: str, *statuses: str) -> dict[str, Any]:
    """Wait, boundedly, for the batch to reach one of `statuses`; its progress."""
    for _ in range(600):
        _, state = await world.client(BENEFITS, session).call("GET", f"/v1/batches/{batch}")
        if state["status"] in statuses:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch} never reached {statuses}")


async def test_each_line_is_decided_as_the_same_request_alone(
    world: DemoWorld, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Every family-benefits case of the demo scenario as a line of one batch gets the answer the scenario gets
    alone (an emergency access excepted: a batch carries none), with its own record in the audit log."""
    cases = [case for case in SCENARIO if case.requester == BENEFITS and "emergency" not in case.request]
    lines: list[dict[str, Any] | str] = [{"ref": f"case-{n}", **case.request} for n, case in enumerate(cases)]
    lines += [
        "{not json",
        "[1, 2]",
        json.dumps(WHITE),  # no ref
        {"ref": "unknown", **WHITE, "category": "shoe-size"},
        {"ref": "glass", **WHITE, "emergency": FIRE},
        "",  # a blank line asks nothing
        {"ref": 7, **WHITE, "params": {"year": 2025}},
    ]
    seen: list[dict[str, Any]] = []
    last = await world.client(BENEFITS, session).batch(
        write(tmp_path / "batch.ndjson", lines), tmp_path / "results.ndjson", seen.append, poll_s=0.05
    )
    answers = read(tmp_path / "results.ndjson")
    assert last["status"] == "done" and last["lines"] == last["done"] == len(lines) - 1 == len(answers)
    assert sum(last["by_outcome"].values()) == last["done"] and seen[-1] == last
    assert [answer["line"] for answer in answers] == [n for n in range(1, len(lines) + 1) if n != len(lines) - 1]
    for case, answer in zip(cases, answers, strict=False):
        assert answer["ref"] == f"case-{cases.index(case)}", case.name
        assert answer["status"] == case.expect["status"], case.name
        problem = case.expect["problem"]
        assert answer.get("problem", {}).get("type", "").rsplit("/", 1)[-1] == (problem or ""), case.name
        if answer["status"] != 202 and problem is None:
            assert answer["zone"] == case.expect["zone"] and isinstance(answer["data"], dict), case.name
    bad = {answer["line"]: answer for answer in answers[len(cases) :]}
    first = len(cases) + 1
    assert [bad[n]["problem"]["type"].rsplit("/", 1)[-1] for n in range(first, first + 5)] == [
        "malformed",
        "invalid",
        "invalid",
        "unknown-category",
        "invalid",
    ]
    assert bad[first]["ref"] is None and bad[first + 3]["ref"] == "unknown" and bad[len(lines)]["ref"] == 7
    assert bad[len(lines)]["status"] == 200
    grey = next(answer for answer, case in zip(answers, cases, strict=False) if case.expect["status"] == 202)
    review = await world.hub.reviews.get(grey["review"])
    assert review is not None and review.exchange == grey["exchange"] and review.status == "pending"
    records = {record.exchange: record for record in await world.hub.audit.records(kind="exchange")}
    raw = (tmp_path / "batch.ndjson").read_bytes().splitlines(keepends=True)
    for answer in answers:
        record = records[answer["exchange"]]
        assert (record.requester, record.status) == (BENEFITS, answer["status"])
        assert record.request_digest == digest(raw[answer["line"] - 1])
    assert len({answer["exchange"] for answer in answers}) == len(answers)
    assert not list((world.state_dir / "batches").iterdir())  # the file is gone once the batch is done


async def test_answers_are_read_once(world: DemoWorld, session: aiohttp.ClientSession, tmp_path: Path) -> None:
    """Asking past a line says its answer was kept: the hub forgets it, data and all."""
    client = world.client(BENEFITS, session)
    lines: list[dict[str, Any] | str] = [{"ref": n, **WHITE} for n in range(5)]
    last = await client.batch(write(tmp_path / "b.ndjson", lines), tmp_path / "kept.ndjson", poll_s=0.05)
    assert last["done"] == 5 and read(tmp_path / "kept.ndjson")[0]["data"]
    assert await client.batch_results(last["batch"], 0) == []


async def test_answers_stay_until_read_past(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    world = sqlite_world
    client = world.client(BENEFITS, session)
    accepted = await client.submit_batch(write(tmp_path / "b.ndjson", [{"ref": n, **WHITE} for n in range(4)]))
    await until(world, session, accepted["batch"], "done")
    first = await client.batch_results(accepted["batch"], 0)
    assert [json.loads(line)["line"] for line in first] == [1, 2, 3, 4]
    assert await client.batch_results(accepted["batch"], 0) == first  # nothing read past yet
    assert [json.loads(line)["line"] for line in await client.batch_results(accepted["batch"], 2)] == [3, 4]
    assert [json.loads(line)["line"] for line in await client.batch_results(accepted["batch"], 0)] == [3, 4]


async def test_a_batch_is_its_agencys_alone(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    world = sqlite_world
    accepted = await world.client(BENEFITS, session).submit_batch(write(tmp_path / "b.ndjson", [{"ref": 1, **WHITE}]))
    batch = accepted["batch"]
    for path in (f"/v1/batches/{batch}", f"/v1/batches/{batch}/results"):
        with pytest.raises(HubProblem) as other:
            await world.client("tax-authority", session).call("GET", path)
        assert other.value.status == 404
    _, seen = await world.client("privacy-office", session).call("GET", f"/v1/batches/{batch}")
    assert seen["requester"] == BENEFITS
    with pytest.raises(HubProblem) as officer:
        await world.client("privacy-office", session).batch_results(batch)
    assert officer.value.status == 403
    with pytest.raises(HubProblem) as operator:
        await world.client("privacy-office", session).submit_batch(tmp_path / "b.ndjson")
    assert operator.value.status == 403


async def test_refused_batches_leave_nothing_behind(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """Over the daily quota, over the line limit, empty, of the wrong type or badly signed: a problem, an audit
    record, and no batch, no file."""
    async with demo_world(tmp_path / "state", batch_lines_per_day=5, max_batch_lines=3) as world:
        client = world.client(BENEFITS, session)
        three = write(tmp_path / "three.ndjson", [{"ref": n, **WHITE} for n in range(3)])
        four = write(tmp_path / "four.ndjson", [{"ref": n, **WHITE} for n in range(4)])
        empty = write(tmp_path / "empty.ndjson", ["", ""])
        accepted = await client.submit_batch(three)
        refusals = []
        for path in (four, three, empty):
            with pytest.raises(HubProblem) as refused:
                await client.submit_batch(path)
            refusals.append(refused.value.name)
        assert refusals == ["too-large", "rate-limited", "invalid"]
        url = world.hub_url + "/v1/batches"
        body = three.read_bytes()
        wrong_type = sign_request("POST", url, body, world.keys[BENEFITS], "application/json")
        async with session.post(url, data=body, headers=wrong_type) as answer:
            assert answer.status == 415
        forged = sign_request("POST", url, body, world.keys[BENEFITS], "application/x-ndjson")
        async with session.post(url, data=body + b"\n", headers=forged) as answer:
            assert answer.status == 401
        await until(world, session, accepted["batch"], "done")
        assert not list((world.state_dir / "batches").iterdir())
        records = await world.hub.audit.records(kind="batch")
        assert [record.status for record in records if record.status >= 400] == [413, 429, 422, 415, 401]


async def test_a_failing_holder_fails_its_lines_not_the_batch(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """The population register's adapter is gone: its lines fail after the chunk was tried three times, the tax
    authority's lines are delivered."""
    async with demo_world(tmp_path / "state", batch_backoff_s=0.01) as world:
        _, agency = await world.client("admin-desk", session).call("GET", "/v1/agencies/population-register")
        await world.client("admin-desk", session).call(
            "PATCH",
            "/v1/agencies/population-register",
            {"adapter_url": "http://127.0.0.1:9", "reason": "the register's adapter moved"},
        )
        lines: list[dict[str, Any] | str] = [
            {"ref": "civil", **WHITE},
            {"ref": "income", "subject": SOFIE, "category": "income", "purpose": "benefit-eligibility"},
        ]
        last = await world.client(BENEFITS, session).batch(
            write(tmp_path / "b.ndjson", lines), tmp_path / "r.ndjson", poll_s=0.05
        )
        civil, income = read(tmp_path / "r.ndjson")
        assert last["status"] == "done" and last["by_outcome"] == {"delivered": 1, "failed": 1}
        assert civil["status"] == 502 and civil["problem"]["type"].endswith("/holder-unreachable")
        assert income["status"] == 200 and income["data"]
        assert agency["adapter_url"] != "http://127.0.0.1:9"


async def test_cancel_stops_a_batch(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    async with demo_world(tmp_path / "state", batch_window=100) as world:
        client = world.client(BENEFITS, session)
        lines: list[dict[str, Any] | str] = [{"ref": n, **WHITE} for n in range(20_000)]
        accepted = await client.submit_batch(write(tmp_path / "b.ndjson", lines))
        _, cancelled = await client.call("POST", f"/v1/batches/{accepted['batch']}/cancel")
        assert cancelled["status"] == "cancelled"
        await until(world, session, accepted["batch"], "cancelled")
        await until_still(world, session, accepted["batch"])
        _, state = await client.call("GET", f"/v1/batches/{accepted['batch']}")
        assert state["status"] == "cancelled" and state["done"] < state["lines"]
        answers = await client.batch_results(accepted["batch"], 0)
        assert len(answers) == state["done"]
        exchanges = await world.hub.audit.records(kind="exchange")
        assert len(exchanges) == state["done"]
        with pytest.raises(HubProblem) as again:
            await client.call("POST", f"/v1/batches/{accepted['batch']}/cancel")
        assert again.value.status == 409


async def until_still(world: DemoWorld, session: aiohttp.ClientSession, batch: str) -> None:
    """Wait until the runner has let the cancelled batch go (its last window committed)."""
    for _ in range(600):
        if batch not in world.hub.batches._running:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch} still running")


async def test_two_batches_do_not_starve_single_exchanges(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """While batches run, a single exchange is answered as ever: batches have a budget of their own."""
    world = sqlite_world
    client = world.client(BENEFITS, session)
    lines: list[dict[str, Any] | str] = [{"ref": n, **WHITE} for n in range(3_000)]
    batches = [await client.submit_batch(write(tmp_path / f"{n}.ndjson", lines)) for n in range(3)]
    single = await client.exchange(JAN, "civil-status", "benefit-eligibility")
    assert single.status == 200
    for accepted in batches:
        await until(world, session, accepted["batch"], "done")


async def test_a_sealed_category_is_sealed_line_by_line(
    world: DemoWorld, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A batch's line of a sealed category is answered as the same request alone: the holder's envelope, kept by the
    hub until read as ciphertext only, opened by the requester's client."""
    change = {"sealed": True, "reason": "answers read by their requester alone"}
    await world.client("admin-desk", session).call("PATCH", "/v1/categories/income", change)
    client = world.client(BENEFITS, session)
    income = {"subject": SOFIE, "category": "income", "purpose": "benefit-eligibility"}
    accepted = await client.submit_batch(
        write(tmp_path / "b.ndjson", [{"ref": "income", **income}, {"ref": 2, **WHITE}])
    )
    await until(world, session, accepted["batch"], "done")
    sealed, plain = [json.loads(line) for line in await client.batch_results(accepted["batch"], 0)]
    assert "data" not in sealed and set(sealed["holder_key"]) == {"key_id", "public_key_pem"}
    assert client.open(sealed) == {"taxable_income": 35400, "year": 2025}
    assert plain["data"]["name"] == "Anna Peeters" and "sealed" not in plain
    [record] = await world.hub.audit.records(exchange=sealed["exchange"])
    assert record.outcome == "delivered" and record.sealed_digest is not None
    if world.hub.config.database.startswith("sqlite"):  # what the store keeps until the answers are read
        store = b"".join(path.read_bytes() for path in world.state_dir.parent.glob("**/*.db*"))
        assert sealed["sealed"]["payload"].encode() in store and b'"taxable_income":35400' not in store
