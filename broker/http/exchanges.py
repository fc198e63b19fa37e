"""POST /v1/exchanges: hand the authenticated request to the exchange pipeline."""

from __future__ import annotations

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.http.replies import json_body, reply


async def exchange(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    status, document = await hub.pipeline.run(request[PRINCIPAL].id, json_body(request), entry)
    return reply(document, status)


ROUTES = [web.post("/v1/exchanges", exchange)]
