"""The reference directory over the signed API, against the demo world: an agency declaring its own relationships
and holdings (never another's), idempotently, and ending them; every bad declaration refused with nothing stored;
each call audited; a declared relationship letting the exchange through and making the agency a notification
recipient from the next request on, an ended one stopping both; the holders look-up hiding black-zone categories;
and the relationships a privacy officer reads as the directory stood at any moment."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from adapters.client import HubProblem
from adapters.examples.demo_agencies import ANNA, SOFIE
from adapters.server import Notification
from broker.base.signing import sign_request
from broker.cli.demo import DemoWorld

CIVIL = {"subject": SOFIE, "category": "civil-status", "purpose": "job-placement"}
CHANGE = {"subject": SOFIE, "category": "civil-status", "event": "updated", "ref": "move-2026-2203"}
RELATIONSHIPS, HOLDINGS = "/v1/directory/relationships", "/v1/directory/holdings"


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def moments() -> tuple[datetime, str]:
    """Now, to the second, as the directory writes it."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now, rfc3339(now)


async def refused(call: Any) -> HubProblem:
    with pytest.raises(HubProblem) as problem:
        await call
    return problem.value


async def rows(world: DemoWorld, table: str) -> int:
    async with world.hub.engine.connect() as connection:
        return int(await connection.scalar(text(f"SELECT count(*) FROM {table}")))  # noqa: S608 -- our tables


async def directory_records(world: DemoWorld, requester: str) -> list[tuple[str | None, str | None, int]]:
    records = await world.hub.audit.records(kind="directory", requester=requester)
    return [(record.subject, record.category, record.status) for record in records]


async def test_a_declared_relationship_is_idempotent_and_lets_the_exchange_through(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    agency = world.client("employment-office", session)
    assert (await refused(agency.exchange(**CIVIL))).name == "no-relationship"
    before = await rows(world, "relationships")
    _, since = moments()
    declaration = {"subject": SOFIE, "capacity": "job-seeker", "from": since}
    status, stored = await agency.call("PUT", RELATIONSHIPS, declaration)
    assert status == 201
    assert stored == {
        "kind": "relationship",
        "agency": "employment-office",
        "subject": SOFIE,
        "capacity": "job-seeker",
        "from": since,
        "until": None,
        "declared_at": stored["declared_at"],
    }
    assert await agency.call("PUT", RELATIONSHIPS, declaration) == (200, stored)  # as stored the first time
    assert await rows(world, "relationships") == before + 1
    delivered = await agency.exchange(**CIVIL)  # the very next request
    assert (delivered.status, delivered.holder, delivered.data) == (
        200,
        "population-register",
        {"name": "Sofie Maes", "address": "Veldstraat 3, 9000 Gent"},
    )
    assert await directory_records(world, "employment-office") == [(SOFIE, None, 201), (SOFIE, None, 200)]


async def test_ending_a_relationship_stops_exchanges_and_notifications(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    world, agency = sqlite_world, sqlite_world.client("employment-office", session)
    register = world.client("population-register", session)
    inbox: list[Notification] = []

    async def receive(notice: Notification) -> None:
        inbox.append(notice)

    world.adapters["employment-office"].notifications(receive)
    _, told = await register.call("POST", "/v1/notifications", CHANGE)
    assert told["recipients"] == 2  # family benefits and the tax authority know Sofie

    now, today = moments()
    since = rfc3339(now - timedelta(hours=1))  # Sofie signed up an hour ago
    await agency.call("PUT", RELATIONSHIPS, {"subject": SOFIE, "capacity": "job-seeker", "from": since})
    _, told = await register.call("POST", "/v1/notifications", CHANGE)
    assert told["recipients"] == 3
    await until(lambda: [notice.notification for notice in inbox] == [told["notification"]])
    assert (await agency.exchange(**CIVIL)).status == 200

    ended = {"subject": SOFIE, "capacity": "job-seeker", "from": since, "until": today}  # and left today
    status, stored = await agency.call("PUT", RELATIONSHIPS, ended)
    assert (status, stored["from"], stored["until"]) == (200, since, today)
    assert await agency.call("PUT", RELATIONSHIPS, ended) == (200, stored)
    assert (await refused(agency.exchange(**CIVIL))).name == "no-relationship"
    _, told = await register.call("POST", "/v1/notifications", CHANGE)
    assert told["recipients"] == 2


async def until(condition: Any, rounds: int = 200) -> None:
    """Wait, boundedly, for the delivery workers to get somewhere."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox did not get there")


async def test_an_agency_declares_its_own_holdings_and_never_another_agencys(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    world, agency = sqlite_world, sqlite_world.client("family-benefits", session)
    _, since = moments()
    status, stored = await agency.call("PUT", HOLDINGS, {"subject": SOFIE, "category": "pension", "from": since})
    assert (status, stored["kind"], stored["agency"], stored["category"]) == (
        201,
        "holding",
        "family-benefits",
        "pension",
    )
    [record] = await world.hub.audit.records(kind="directory", requester="family-benefits")
    assert (record.subject, record.category, record.holder, record.status) == (SOFIE, "pension", "family-benefits", 201)
    problem = await refused(
        agency.call(
            "PUT", HOLDINGS, {"subject": SOFIE, "category": "pension", "from": since, "agency": "tax-authority"}
        )
    )
    assert (problem.status, problem.name) == (422, "invalid") and "its own references" in problem.detail
    assert [holder.id for holder in await world.hub.directory.holders(SOFIE, "pension", datetime.now(UTC))] == [
        "family-benefits"
    ]
    officer = world.client("privacy-office", session)
    assert (await refused(officer.call("PUT", HOLDINGS, {"subject": SOFIE}))).name == "forbidden"


BAD = [
    ("relationship", [{"capacity": "job-seeker"}], "the body must be a JSON object"),
    ("relationship", {"capacity": "job-seeker", "from": "2026-12-01T00:00:00Z"}, "subject must be"),
    ("relationship", {"subject": "85 07", "capacity": "job-seeker", "from": "2026-12-01T00:00:00Z"}, "subject must be"),
    ("relationship", {"subject": SOFIE, "capacity": "job-seeker"}, "from is required"),
    ("relationship", {"subject": SOFIE, "capacity": "job-seeker", "from": "soon"}, "from must be an RFC 3339"),
    ("relationship", {"subject": SOFIE, "capacity": "job-seeker", "from": "2026-12-01T00:00:00"}, "time zone"),
    (
        "relationship",
        {"subject": SOFIE, "capacity": "astronaut", "from": "2026-12-01T00:00:00Z"},
        "capacity 'astronaut'",
    ),
    ("holding", {"subject": SOFIE, "category": "horoscope", "from": "2026-12-01T00:00:00Z"}, "category 'horoscope'"),
    (
        "holding",
        {"subject": SOFIE, "category": "pension", "from": "2026-12-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
        "until must be later than from",
    ),
    (
        "relationship",
        {"subject": SOFIE, "capacity": "job-seeker", "from": "2026-12-01T00:00:00Z", "agency": "family-benefits"},
        "its own references",
    ),
    (
        "holding",
        {"subject": SOFIE, "category": "pension", "from": "2026-12-01T00:00:00Z", "ref": "x"},
        "unknown fields",
    ),
]


async def test_every_bad_declaration_is_refused_saying_why_and_stores_nothing(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    agency = world.client("employment-office", session)
    before = (await rows(world, "relationships"), await rows(world, "holdings"))
    for kind, document, detail in BAD:
        problem = await refused(agency.call("PUT", RELATIONSHIPS if kind == "relationship" else HOLDINGS, document))
        assert (problem.status, problem.name) == (422, "invalid"), document
        assert detail in problem.detail, (document, problem.detail)
    url = world.hub_url + RELATIONSHIPS
    headers = sign_request("PUT", url, b'{"subject": ', world.keys["employment-office"])
    async with session.put(url, data=b'{"subject": ', headers=headers) as answer:
        assert (answer.status, json.loads(await answer.read())["type"].rsplit("/")[-1]) == (400, "malformed")
    assert (await rows(world, "relationships"), await rows(world, "holdings")) == before
    statuses = [status for _, _, status in await directory_records(world, "employment-office")]
    assert statuses == [422] * len(BAD) + [400]  # each call left its record


async def test_the_holders_look_up_hides_black_zone_categories_and_needs_a_relationship(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    world = sqlite_world
    _, found = await world.client("family-benefits", session).call("GET", f"/v1/subjects/{ANNA}/holders")
    # Health records are black for every purpose (rule r-4), child benefit has no rule at all: both left out.
    assert [(holder["category"], holder["agency"]) for holder in found["holders"]] == [
        ("civil-status", "population-register"),
        ("employment-status", "employment-office"),  # grey for benefit eligibility: shown
        ("income", "tax-authority"),
    ]
    assert all(holder["until"] is None for holder in found["holders"])
    _, found = await world.client("municipality-leuven", session).call("GET", f"/v1/subjects/{ANNA}/holders")
    assert [holder["category"] for holder in found["holders"]] == ["civil-status"]
    problem = await refused(world.client("health-insurance", session).call("GET", f"/v1/subjects/{ANNA}/holders"))
    assert (problem.status, problem.name) == (403, "no-relationship")
    records = await world.hub.audit.records(kind="directory", subject=ANNA)
    assert [(record.requester, record.status) for record in records] == [
        ("family-benefits", 200),
        ("municipality-leuven", 200),
        ("health-insurance", 403),
    ]


async def test_reads_answer_as_the_directory_stood_at_a_past_time(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    agency, officer = world.client("employment-office", session), world.client("privacy-office", session)
    start, since = moments()
    await agency.call("PUT", RELATIONSHIPS, {"subject": SOFIE, "capacity": "job-seeker", "from": since})
    _, open_ended = await officer.call("GET", f"/v1/subjects/{SOFIE}/relationships")
    [employment] = [item for item in open_ended["relationships"] if item["agency"] == "employment-office"]
    assert (employment["from"], employment["until"], employment["declared_by"]) == (since, None, "employment-office")

    end = rfc3339(start + timedelta(days=30))
    await agency.call("PUT", RELATIONSHIPS, {"subject": SOFIE, "capacity": "job-seeker", "from": since, "until": end})
    later = rfc3339(start + timedelta(days=31))
    _, now_known = await officer.call("GET", f"/v1/subjects/{SOFIE}/relationships?at={later}")
    assert "employment-office" not in [item["agency"] for item in now_known["relationships"]]
    # As the directory stood when the officer first looked, the relationship had no end.
    first_look = open_ended["at"]
    _, then_known = await officer.call("GET", f"/v1/subjects/{SOFIE}/relationships?at={later}&as_of={first_look}")
    assert [item for item in then_known["relationships"] if item["agency"] == "employment-office"] == [employment]
    assert (then_known["at"], then_known["as_of"]) == (later, first_look)
    # Before the declaration, nobody had told the directory of it; an unencoded `+` of an offset reads as such.
    before = (start - timedelta(hours=1)).astimezone(UTC).isoformat()
    _, earlier = await officer.call("GET", f"/v1/subjects/{SOFIE}/relationships?at={before}")
    assert "employment-office" not in [item["agency"] for item in earlier["relationships"]]
    assert earlier["at"] == rfc3339(start - timedelta(hours=1))
    # The holders look-up of that time: the employment office was not related to Sofie then.
    problem = await refused(
        agency.call("GET", f"/v1/subjects/{SOFIE}/holders?at={rfc3339(start - timedelta(hours=1))}")
    )
    assert problem.name == "no-relationship"
    _, holders = await agency.call("GET", f"/v1/subjects/{SOFIE}/holders?at={rfc3339(start + timedelta(days=1))}")
    assert [holder["category"] for holder in holders["holders"]] == ["civil-status"]


async def test_bad_reads_are_refused(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    officer = sqlite_world.client("privacy-office", session)
    for path, detail in [
        (f"/v1/subjects/{'9' * 65}/relationships", "subject must be"),
        (f"/v1/subjects/{SOFIE}/relationships?at=yesterday", "at must be an RFC 3339"),
        (f"/v1/subjects/{SOFIE}/relationships?as_of=2026-11-01T00:00:00", "as_of needs a time zone"),
        (f"/v1/subjects/{SOFIE}/relationships?when=now", "unknown query parameters: when"),
    ]:
        problem = await refused(officer.call("GET", path))
        assert (problem.status, problem.name) == (422, "invalid") and detail in problem.detail, path
    agency = sqlite_world.client("family-benefits", session)
    assert (await refused(agency.call("GET", f"/v1/subjects/{SOFIE}/relationships"))).name == "forbidden"
