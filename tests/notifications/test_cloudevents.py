"""Change notifications arrive as CloudEvents 1.0 in structured JSON mode, hub-signed: an agency's own
CloudEvents tooling reads them, and PROTOCOL.md's fields are the event's data."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from adapters.examples.demo_agencies import ANNA
from adapters.server import Notification
from broker.base.change_events import EVENT_TYPE
from broker.base.signing import Request, read_signature_input, verify_request
from broker.cli.demo import demo_world, free_port
from tests.agencies import serve

CHANGE = {"subject": ANNA, "category": "civil-status", "event": "updated", "ref": "pop-2026-118"}


async def test_a_delivered_notification_is_a_signed_structured_cloudevent(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.json_response({"received": True})

    app = web.Application()
    app.router.add_post("/v1/notifications", receive)
    async with demo_world(tmp_path / "state", notification_poll_s=0.05) as world, AsyncExitStack() as stack:
        port = free_port()
        await serve(stack, app, port)
        url = f"http://127.0.0.1:{port}"
        await world.hub.directory.load(
            {"agencies": [{"id": "employment-office", "name": "Employment office", "adapter_url": url}]},
            datetime.now(UTC),
        )
        heard: list[Notification] = []

        async def hear(notice: Notification) -> None:
            heard.append(notice)

        world.adapters["family-benefits"].notifications(hear)  # the SDK's own reading, beside the raw one
        _, answer = await world.client("population-register", session).call("POST", "/v1/notifications", CHANGE)
        for _ in range(400):
            if received and heard:
                break
            await asyncio.sleep(0.05)
        [(headers, body)] = received

    assert headers["Content-Type"] == "application/cloudevents+json"
    verify_request(
        Request("POST", url + "/v1/notifications", headers),
        body,
        read_signature_input(headers),
        world.hub.key.public_key,
    )
    event = from_http_event(HTTPMessage(headers, body))
    assert event.get_specversion() == "1.0" and event.get_type() == EVENT_TYPE
    assert event.get_id() == answer["notification"] and event.get_subject() == ANNA
    assert event.get_source() == f"{world.hub.config.url}/v1/agencies/population-register"
    time = event.get_time()
    assert event.get_datacontenttype() == "application/json" and time is not None and time.tzinfo is not None
    data = {"notification": answer["notification"], "holder": "population-register", **CHANGE}
    assert event.get_data() == json.loads(body)["data"] == data
    assert heard == [Notification(**data)]
