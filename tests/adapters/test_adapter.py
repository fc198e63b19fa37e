"""The adapter SDK trusts the hub's key alone, refuses replays, answers signed and bound, checks params
per category, never leaks a failing handler's error, and handles each notification once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jsonschema
import pytest

from adapters.examples.demo_agencies import ANNA
from adapters.examples.legacy_rest import serving
from adapters.recent import RecentIds
from adapters.server import Adapter, Notification, RecordRequest, StoreUnavailable, UnknownSubject
from adapters.validation import InvalidParams
from broker.base.change_events import EVENT_TYPE, ChangeNotification, to_event
from broker.base.signing import Request, Response, SigningKey, generate_key, sign_request, verify_response
from broker.cli.demo import DemoWorld, free_port

RECORD: dict[str, object] = {
    "exchange": "x-1",
    "requester": "family-benefits",
    "subject": ANNA,
    "category": "civil-status",
    "purpose": "benefit-eligibility",
    "params": {},
}


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    key: SigningKey,
    document: dict[str, object] | bytes,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, object], dict[str, str], bytes]:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    headers = headers or sign_request("POST", url, body, key)
    async with session.post(url, data=body, headers=headers) as answer:
        raw = await answer.read()
        return answer.status, json.loads(raw), dict(answer.headers), raw


async def test_adapter_answers_the_hub_signed_and_bound(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    url = sqlite_world.adapter_urls["population-register"] + "/v1/records"
    body = json.dumps(RECORD).encode()
    headers = sign_request("POST", url, body, sqlite_world.hub.key)
    status, document, answer_headers, raw = await _post(session, url, sqlite_world.hub.key, RECORD, headers)
    assert status == 200 and document["data"]["name"] == "Anna Peeters"  # type: ignore[index]
    bound = Request("POST", url, {"Content-Digest": headers["Content-Digest"]})
    register = sqlite_world.keys["population-register"]
    covered = verify_response(Response(status, answer_headers, bound), raw, register.key_id, register.public_key)
    assert '"@target-uri";req' in covered
    replayed = await _post(session, url, sqlite_world.hub.key, RECORD, headers)
    assert (replayed[0], replayed[1]["type"]) == (409, "https://crossroads.example/problems/replay")


async def test_adapter_trusts_only_the_hub(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    url = sqlite_world.adapter_urls["population-register"] + "/v1/records"
    for key in (sqlite_world.keys["family-benefits"], SigningKey("crossroads-hub", generate_key())):
        status, document, _, _ = await _post(session, url, key, RECORD)
        assert status == 401, document


async def test_unknown_subject_at_the_adapter(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    url = sqlite_world.adapter_urls["population-register"] + "/v1/records"
    status, document, _, _ = await _post(session, url, sqlite_world.hub.key, {**RECORD, "subject": "00000000000"})
    assert (status, document["type"]) == (404, "https://crossroads.example/problems/unknown-subject")


class Running:
    """An Adapter of our own on a loopback port, trusting `hub`, called with hub-signed requests."""

    def __init__(self, adapter: Adapter, hub: SigningKey, url: str, session: aiohttp.ClientSession) -> None:
        self.adapter, self.hub, self.url, self.session = adapter, hub, url, session

    async def post(
        self, path: str, document: dict[str, object] | bytes, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any]]:
        url = self.url + path
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        sent = sign_request("POST", url, body, self.hub, content_type)
        status, answer, headers, raw = await _post(self.session, url, self.hub, document, sent)
        bound = Request("POST", url, {"Content-Digest": sent["Content-Digest"]})
        verify_response(Response(status, headers, bound), raw, "pf-1", self.adapter.public_key)
        return status, answer

    async def chunk(self, lines: list[dict[str, object]]) -> list[dict[str, Any]]:
        """A chunk of a batch's lines, as the hub sends one: the adapter's verified answer lines."""
        url = self.url + "/v1/records/batch"
        body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        sent = sign_request("POST", url, body, self.hub, "application/x-ndjson")
        async with self.session.post(url, data=body, headers=sent) as answer:
            raw, status, headers = await answer.read(), answer.status, dict(answer.headers)
        bound = Request("POST", url, {"Content-Digest": sent["Content-Digest"]})
        verify_response(Response(status, headers, bound), raw, "pf-1", self.adapter.public_key)
        assert (status, headers["Content-Type"]) == (200, "application/x-ndjson")
        return [json.loads(line) for line in raw.splitlines()]


@pytest.fixture
async def pension_fund(session: aiohttp.ClientSession) -> AsyncIterator[Running]:
    hub = SigningKey("crossroads-hub", generate_key())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    adapter = Adapter("pension-fund", SigningKey("pf-1", generate_key()), hub.key_id, hub.public_key, url, 3)
    async with serving(adapter.app(), port=port):
        yield Running(adapter, hub, url, session)


async def test_params_are_checked_per_category(pension_fund: Running) -> None:
    def whole_years(params: dict[str, Any]) -> None:
        if not isinstance(params.get("years"), int):
            raise InvalidParams("years must be a whole number")

    schema = {"type": "object", "properties": {"year": {"type": "integer"}}, "additionalProperties": False}

    @pension_fund.adapter.category("pension", params=schema)
    @pension_fund.adapter.category("career", params=whole_years)
    async def answer(request: RecordRequest) -> dict[str, Any]:
        return {"asked": request.category}

    record = {**RECORD, "category": "pension"}
    assert await pension_fund.post("/v1/records", {**record, "params": {"year": 2025}}) == (
        200,
        {"data": {"asked": "pension"}},
    )
    status, problem = await pension_fund.post("/v1/records", {**record, "params": {"year": "secret-value"}})
    assert (status, problem["type"]) == (422, "https://crossroads.example/problems/invalid")
    assert "secret-value" not in problem["detail"] and "params/year" in problem["detail"]
    status, problem = await pension_fund.post("/v1/records", {**record, "params": {"month": 1}})
    assert status == 422
    status, problem = await pension_fund.post("/v1/records", {**record, "category": "career"})
    assert (status, problem["detail"]) == (422, "years must be a whole number")
    with pytest.raises(jsonschema.SchemaError):
        pension_fund.adapter.category("broken", params={"type": "no-such-type"})


async def test_failing_handlers_answer_signed_problems_without_their_error(pension_fund: Running) -> None:
    @pension_fund.adapter.category("pension")
    async def broken(request: RecordRequest) -> dict[str, Any]:
        raise RuntimeError("connection string postgres://secret")

    @pension_fund.adapter.category("career")
    async def down(request: RecordRequest) -> dict[str, Any]:
        raise StoreUnavailable

    status, problem = await pension_fund.post("/v1/records", {**RECORD, "category": "pension"})
    assert (status, problem["type"]) == (500, "https://crossroads.example/problems/internal")
    assert "secret" not in json.dumps(problem)
    status, problem = await pension_fund.post("/v1/records", {**RECORD, "category": "career"})
    assert (status, problem["type"]) == (503, "https://crossroads.example/problems/unavailable")


async def test_a_chunk_answers_each_line_from_many_at_once_or_one_by_one_and_failures_stay_on_their_lines(
    pension_fund: Running,
) -> None:
    asked: list[list[str]] = []

    async def one(request: RecordRequest) -> dict[str, Any]:
        if request.subject == "broken":
            raise RuntimeError("connection string postgres://secret")
        return {"subject": request.subject}

    async def many(requests: Sequence[RecordRequest]) -> list[dict[str, Any] | Exception]:
        asked.append([request.subject for request in requests])
        if any(request.subject == "down" for request in requests):
            raise StoreUnavailable
        return [{"many": request.subject} if request.subject != "nobody" else UnknownSubject() for request in requests]

    schema = {"type": "object", "properties": {"year": {"type": "integer"}}}
    pension_fund.adapter.category("pension", params=schema, many=many)(one)
    pension_fund.adapter.category("career")(one)
    line = {**RECORD, "category": "pension"}
    answers = await pension_fund.chunk(
        [
            {**line, "exchange": "a", "subject": "s1"},
            {**line, "exchange": "b", "subject": "nobody"},
            {**line, "exchange": "c", "subject": "s2", "params": {"year": "x"}},  # refused before `many` is asked
            {**line, "exchange": "d", "category": "career", "subject": "s3"},
            {**line, "exchange": "e", "category": "career", "subject": "broken"},
        ]
    )
    assert asked == [["s1", "nobody"]]
    assert [(answer["exchange"], answer["status"]) for answer in answers] == [
        ("a", 200),
        ("b", 404),
        ("c", 422),
        ("d", 200),
        ("e", 500),
    ]
    assert answers[0]["data"] == {"many": "s1"} and answers[3]["data"] == {"subject": "s3"}
    assert "secret" not in json.dumps(answers)
    failed = await pension_fund.chunk([{**line, "subject": "down"}, {**line, "subject": "s1"}])
    assert [answer["problem"]["type"].rsplit("/", 1)[1] for answer in failed] == ["unavailable"] * 2
    # A chunk's room is not a single request's: those stay at 64 KiB.
    for path in ("/v1/records", "/v1/notifications"):
        status, problem = await pension_fund.post(path, {**line, "padding": "x" * 70_000})
        assert (status, problem["type"]) == (413, "https://crossroads.example/problems/too-large")


async def test_notifications_are_handled_once_and_remembered_within_a_bound(pension_fund: Running) -> None:
    handled: list[str] = []
    failures = [RuntimeError("first delivery fails")]

    @pension_fund.adapter.notifications
    async def changed(notification: Notification) -> None:
        if failures:
            raise failures.pop()
        handled.append(notification.notification)

    async def notify(number: int) -> tuple[int, dict[str, Any]]:
        notice = ChangeNotification(f"n-{number}", "population-register", ANNA, "income", "updated")
        event = to_event(notice, datetime.now(UTC), "https://hub.test")
        return await pension_fund.post("/v1/notifications", event.body, event.headers["content-type"])

    status, _ = await notify(1)
    assert status == 503 and handled == []  # not acknowledged: the hub delivers it again
    for number in (1, 1, 2, 3, 4, 1):
        status, answer = await notify(number)
        assert status == 200 and answer == {"notification": f"n-{number}", "received": True}
    # n-1 handled once while remembered; forgotten after 3 newer ids (the bound), so handled again.
    assert handled == ["n-1", "n-2", "n-3", "n-4", "n-1"]


async def test_a_notification_that_is_not_a_complete_change_event_is_refused(pension_fund: Running) -> None:
    plain = {"notification": "n-9", "subject": ANNA, "category": "income", "event": "updated"}
    status, problem = await pension_fund.post("/v1/notifications", plain)  # PROTOCOL's fields, not in an event
    assert (status, problem["type"]) == (422, "https://crossroads.example/problems/invalid")
    incomplete = {
        "specversion": "1.0",
        "type": EVENT_TYPE,
        "source": "/x",
        "id": "n-9",
        "data": {"notification": "n-9"},
    }
    status, problem = await pension_fund.post("/v1/notifications", incomplete, "application/cloudevents+json")
    assert (status, problem["type"]) == (422, "https://crossroads.example/problems/invalid")


def test_recent_ids_keep_the_newest_within_their_limit() -> None:
    recent = RecentIds(limit=2)
    for item in ("a", "b", "a", "c"):
        recent.add(item)
    assert "a" in recent and "c" in recent and "b" not in recent and len(recent) == 2
    with pytest.raises(ValueError):
        RecentIds(limit=0)
