"""The audit log through the running demo world, on SQLite and PostgreSQL: group commit under concurrent
exchanges, fail-closed batches, verification naming tampered records in the store, search with filters and
cursors, the citizen's access log with embargoed purposes, and the anomaly report."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import delete, func, insert, select, text, update

from adapters.client import HubProblem
from adapters.examples.demo_agencies import ANNA, JAN, PIETER, SOFIE
from adapters.server import RecordRequest
from broker.audit import chain
from broker.audit.log import SEQUENCER_LOCK, AuditRecord, record_json
from broker.cli.demo import SCENARIO, DemoWorld
from tests.agencies import add_holder
from tests.exchange.test_exchanges import FAIL_AUDIT

CIVIL = {"category": "civil-status", "purpose": "benefit-eligibility"}
RECORDS = AuditRecord.__table__


async def broker_scenario(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    for case in SCENARIO:
        with suppress(HubProblem):
            await world.client(case.requester, session).exchange(**case.request)


def seqs(records: Iterable[dict[str, Any]]) -> list[int]:
    """The records' seqs: their chain fields change while the sequencer links them in the background."""
    return [record["seq"] for record in records]


async def verify(world: DemoWorld, session: aiohttp.ClientSession) -> dict[str, Any]:
    _, verdict = await world.client("privacy-office", session).call("GET", "/v1/audit/verify")
    return verdict


async def test_concurrent_exchanges_each_have_their_record_and_the_chain_verifies(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    asks = [("family-benefits", subject, "benefit-eligibility") for subject in (ANNA, JAN, SOFIE) * 10]
    asks += [("employment-office", subject, "job-placement") for subject in (ANNA, JAN) * 8]
    results = await asyncio.gather(
        *(
            world.client(requester, session).exchange(subject, "civil-status", purpose)
            for requester, subject, purpose in asks
        ),
        return_exceptions=True,
    )
    delivered = [result.exchange for result in results if not isinstance(result, BaseException)]
    assert len(delivered) == len(asks), [result for result in results if isinstance(result, BaseException)]
    verdict = await verify(world, session)
    assert verdict["ok"] is True, verdict
    for exchange in delivered:
        [record] = await world.hub.audit.records(exchange=exchange)
        assert (record.status, record.outcome) == (200, "delivered")
        assert record.position is not None and record.position <= verdict["records"]  # verified
    linked = [record for record in await world.hub.audit.records() if record.position is not None]
    assert sorted(record.position for record in linked) == list(range(1, len(linked) + 1))


async def test_a_failed_batch_fails_every_request_in_it_and_forwards_nothing(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    asked: list[str] = []

    async def pension(request: RecordRequest) -> dict[str, Any]:
        asked.append(request.exchange)
        return {"monthly_pension": 1480}

    async with AsyncExitStack() as stack:
        await add_holder(world, stack, "pension-fund", pension)
        client = world.client("family-benefits", session)
        async with world.hub.engine.begin() as connection:
            for statement in FAIL_AUDIT[world.hub.engine.dialect.name]:
                await connection.execute(text(statement))
        results = await asyncio.gather(
            *(client.exchange(PIETER, "pension", "benefit-eligibility") for _ in range(8)), return_exceptions=True
        )
    assert [(result.status, result.name) for result in results if isinstance(result, HubProblem)] == [
        (503, "unavailable")
    ] * 8
    assert asked == []


@pytest.mark.parametrize("tampering", ["changed", "deleted", "inserted", "reordered"])
async def test_verify_names_the_record_tampered_with_in_the_store(
    world: DemoWorld, session: aiohttp.ClientSession, tampering: str
) -> None:
    # The first records linked get the first checkpoint: sealed now, over one record, it covers none tampered with.
    await verify(world, session)
    await world.hub.sequencer.step(seal=True)
    await broker_scenario(world, session)
    before = await verify(world, session)
    assert before["ok"] is True and before["records"] >= 6
    async with world.hub.engine.begin() as connection:
        if world.hub.engine.dialect.name == "postgresql":  # the sequencer links nothing while the rows move
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCER_LOCK})
        rows = {
            row.position: row._mapping
            for row in (await connection.execute(select(RECORDS).where(RECORDS.c.position.between(2, 4)))).all()
        }
        expected_seq = await TAMPER[tampering](connection, rows)
    after = await verify(world, session)
    assert after["ok"] is False
    assert (after["break"]["position"], after["break"]["reason"]) == (3, tampering), after
    assert after["break"]["seq"] == expected_seq
    assert (after["records"], after["head"]) == (2, rows[2]["hash"])


async def _change(connection: Any, rows: dict[int, Any]) -> int:
    await connection.execute(update(RECORDS).where(RECORDS.c.position == 3).values(purpose="fraud-investigation"))
    return int(rows[3]["seq"])


async def _delete(connection: Any, rows: dict[int, Any]) -> int:
    await connection.execute(delete(RECORDS).where(RECORDS.c.position == 3))
    return int(rows[4]["seq"])


async def _insert(connection: Any, rows: dict[int, Any]) -> int:
    position = RECORDS.c.position
    await connection.execute(update(RECORDS).where(position >= 3).values(position=-(position + 1)))
    await connection.execute(update(RECORDS).where(position < 0).values(position=-position))
    forged_seq = int(await connection.scalar(select(func.max(RECORDS.c.seq)))) + 1000
    forged = {**record_json(rows[3]), "seq": forged_seq, "subject": "00000000097", "position": 3}
    forged["prev_hash"], forged["hash"] = rows[2]["hash"], chain.link_hash(rows[2]["hash"], forged)
    await connection.execute(insert(RECORDS).values({**forged, "at": rows[3]["at"]}))
    return forged_seq


async def _reorder(connection: Any, rows: dict[int, Any]) -> int:
    position = RECORDS.c.position
    await connection.execute(update(RECORDS).where(position == 3).values(position=-1))
    await connection.execute(update(RECORDS).where(position == 4).values(position=3))
    await connection.execute(update(RECORDS).where(position == -1).values(position=4))
    return int(rows[4]["seq"])


TAMPER = {"changed": _change, "deleted": _delete, "inserted": _insert, "reordered": _reorder}


async def test_search_filters_and_cursor_pagination(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    await broker_scenario(world, session)
    officer = world.client("privacy-office", session)
    _, everything = await officer.call("GET", "/v1/audit?kind=exchange&limit=1000")
    exchanges = everything["records"]
    assert everything["next"] is None and len(exchanges) >= len(SCENARIO)
    assert [(record["at"], record["seq"]) for record in exchanges] == sorted(
        (record["at"], record["seq"]) for record in exchanges
    )
    for name in ("subject", "requester", "holder", "category", "purpose", "zone", "outcome"):
        value = Counter(record[name] for record in exchanges if record[name]).most_common(1)[0][0]
        _, found = await officer.call("GET", f"/v1/audit?kind=exchange&{name}={value}")
        assert seqs(found["records"]) == seqs(record for record in exchanges if record[name] == value), name
    paged, cursor = [], None
    while True:
        _, page = await officer.call("GET", "/v1/audit?kind=exchange&limit=3" + (f"&cursor={cursor}" if cursor else ""))
        assert len(page["records"]) <= 3
        paged += page["records"]
        cursor = page["next"]
        if cursor is None:
            break
    assert seqs(paged) == seqs(exchanges)
    _, newest = await officer.call("GET", "/v1/audit?kind=exchange&order=desc&limit=4")
    _, older = await officer.call("GET", f"/v1/audit?kind=exchange&order=desc&limit=1000&cursor={newest['next']}")
    assert seqs(newest["records"] + older["records"]) == seqs(exchanges)[::-1]
    middle = exchanges[len(exchanges) // 2]["at"]
    _, since = await officer.call("GET", f"/v1/audit?kind=exchange&since={middle}")
    _, until = await officer.call("GET", f"/v1/audit?kind=exchange&until={middle}")
    assert seqs(until["records"] + since["records"]) == seqs(exchanges)
    assert all(record["at"] >= middle for record in since["records"])
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    _, none = await officer.call("GET", f"/v1/audit?since={later.replace('+00:00', 'Z')}")
    assert none == {"records": [], "next": None}


@pytest.mark.parametrize(
    "query",
    [
        "shoe=42",
        "limit=0",
        "limit=1001",
        "limit=ten",
        "cursor=not-a-cursor",
        "since=yesterday",
        "since=2026-11-23T10:00:00",
        "since=2026-11-23T10:00:00Z&until=2026-11-23T09:00:00Z",
        "order=sideways",
    ],
)
async def test_search_refuses_bad_queries(sqlite_world: DemoWorld, session: aiohttp.ClientSession, query: str) -> None:
    with pytest.raises(HubProblem) as refused:
        await sqlite_world.client("privacy-office", session).call("GET", f"/v1/audit?{query}")
    assert (refused.value.status, refused.value.name) == (422, "invalid")


@pytest.mark.parametrize(
    ("principal", "path"),
    [
        ("family-benefits", "/v1/audit/verify"),
        ("citizen-portal", "/v1/audit"),
        ("admin-desk", "/v1/audit/anomalies"),
        ("privacy-office", f"/v1/subjects/{ANNA}/access-log"),
        ("family-benefits", f"/v1/subjects/{ANNA}/access-log"),
    ],
)
async def test_only_their_roles_read_the_log(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession, principal: str, path: str
) -> None:
    with pytest.raises(HubProblem) as refused:
        await sqlite_world.client(principal, session).call("GET", path)
    assert refused.value.name == "forbidden"


async def test_access_log_shows_deliveries_and_withholds_confidential_purposes_until_their_embargo(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    agency, portal = world.client("family-benefits", session), world.client("citizen-portal", session)
    white = await agency.exchange(SOFIE, "income", "benefit-eligibility")
    fraud = await agency.exchange(SOFIE, "income", "fraud-investigation")
    with pytest.raises(HubProblem):
        await agency.exchange(SOFIE, "health-record", "benefit-eligibility")  # refused: not an access
    await agency.exchange(ANNA, **CIVIL)  # someone else's
    _, log = await portal.call("GET", f"/v1/subjects/{SOFIE}/access-log")
    assert [access["exchange"] for access in log["accesses"]] == [white.exchange]
    [access] = log["accesses"]
    assert access["requester"] == {"id": "family-benefits", "name": "Family Benefits Agency"}
    assert access["holder"]["id"] == "tax-authority" and access["category"] == "income"
    assert access["purpose"]["name"] == "benefit-eligibility" and access["purpose"]["description"]
    assert "fraud" not in str(log)
    await world.hub.directory.load(
        {"purposes": [{"name": "fraud-investigation", "confidential": True, "embargo_days": 0}]}, datetime.now(UTC)
    )
    _, after = await portal.call("GET", f"/v1/subjects/{SOFIE}/access-log")
    assert [access["exchange"] for access in after["accesses"]] == [fraud.exchange, white.exchange]
    assert after["accesses"][0]["purpose"]["name"] == "fraud-investigation"


async def test_access_log_pages_newest_first(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    agency, portal = sqlite_world.client("family-benefits", session), sqlite_world.client("citizen-portal", session)
    exchanges = [(await agency.exchange(ANNA, **CIVIL)).exchange for _ in range(5)]
    _, first = await portal.call("GET", f"/v1/subjects/{ANNA}/access-log?limit=3")
    _, rest = await portal.call("GET", f"/v1/subjects/{ANNA}/access-log?limit=3&cursor={first['next']}")
    assert [access["exchange"] for access in first["accesses"] + rest["accesses"]] == exchanges[::-1]
    assert rest["next"] is None
    with pytest.raises(HubProblem, match="invalid"):
        await portal.call("GET", "/v1/subjects/85_07/access-log")  # a canonical path, not a subject


async def test_anomaly_report_names_the_records_behind_each_finding(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    agency = world.client("family-benefits", session)
    repeated = [(await agency.exchange(JAN, **CIVIL)).exchange for _ in range(5)]
    for _ in range(10):
        with pytest.raises(HubProblem):
            await agency.exchange(ANNA, "health-record", "benefit-eligibility")
    _, report = await world.client("privacy-office", session).call("GET", "/v1/audit/anomalies")
    findings = {(finding["kind"], finding["subject"]): finding for finding in report["findings"]}
    seqs = {record.exchange: record.seq for record in await world.hub.audit.records(kind="exchange")}
    assert findings["repeated-lookup", JAN]["records"] == [seqs[exchange] for exchange in repeated]
    assert findings["repeated-lookup", ANNA]["count"] == 10
    assert findings["refusal-burst", None]["count"] == 10
    assert report["lookups"] == len(seqs)
    with pytest.raises(HubProblem, match="invalid"):
        await world.client("privacy-office", session).call(
            "GET", "/v1/audit/anomalies?since=2026-11-23T10:00:00Z&until=2026-11-22T10:00:00Z"
        )
