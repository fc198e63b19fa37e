"""Change notifications: holders publish (agency), agencies opt out of categories (agency), administrators
see and replay the dead-letter list (admin)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.base import errors
from broker.http.replies import json_body, reply
from directory.names import NAME

MAX_ID = 2**31 - 1  # delivery ids are 32-bit integers in the store


async def publish(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    notification, count = await hub.notifications.publish(request[PRINCIPAL].id, json_body(request), request[AUDIT])
    return reply({"notification": notification, "recipients": count}, 202)


async def dead_letters(request: web.Request) -> web.Response:
    found = await request.app[HUB].notifications.outbox.dead_letters()
    return reply({"dead_letters": [delivery.as_json() for delivery in found]})


async def replay(request: web.Request) -> web.Response:
    document = json_body(request)
    if set(document) - {"deliveries"}:
        raise errors.Invalid('replay takes {"deliveries": [ids]}, or {} for every dead letter')
    ids = document.get("deliveries")
    if ids is not None and (not isinstance(ids, list) or not all(type(i) is int and 0 < i <= MAX_ID for i in ids)):
        raise errors.Invalid("deliveries must be a list of delivery ids")
    hub = request.app[HUB]
    count = await hub.notifications.outbox.replay(ids, datetime.now(UTC))
    hub.notifications.wake.set()
    return reply({"replayed": count})


def _category(request: web.Request) -> str:
    category = request.match_info["category"]
    if not NAME.fullmatch(category):
        raise errors.Invalid("category must be a name of [a-z0-9-]")
    request[AUDIT].category = category
    return category


async def opt_out(request: web.Request) -> web.Response:
    hub, category = request.app[HUB], _category(request)
    if not await hub.directory.category_exists(category):
        raise errors.UnknownCategory(f"category {category!r} is not registered")
    await hub.notifications.outbox.opt_out(request[PRINCIPAL].id, category, datetime.now(UTC))
    return reply({"agency": request[PRINCIPAL].id, "category": category, "notified": False})


async def opt_in(request: web.Request) -> web.Response:
    hub, category = request.app[HUB], _category(request)
    await hub.notifications.outbox.opt_in(request[PRINCIPAL].id, category)
    return reply({"agency": request[PRINCIPAL].id, "category": category, "notified": True})


ROUTES = [
    web.post("/v1/notifications", publish),
    web.get("/v1/notifications/dead-letters", dead_letters),
    web.post("/v1/notifications/dead-letters/replay", replay),
    web.put("/v1/notifications/opt-outs/{category}", opt_out),
    web.delete("/v1/notifications/opt-outs/{category}", opt_in),
]
