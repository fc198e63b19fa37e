"""POST /v1/exchanges: hand the authenticated request to the exchange pipeline and answer its outcome with the
status PROTOCOL.md gives it."""

from __future__ import annotations

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.exchange.pipeline import Delivered, PendingReview
from broker.http.replies import json_body, reply


async def exchange(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    match await hub.pipeline.run(request[PRINCIPAL], json_body(request), entry):
        case Delivered(answer):
            return reply(answer, 200)
        case PendingReview(answer):
            return reply(answer, 202)


ROUTES = [web.post("/v1/exchanges", exchange)]
