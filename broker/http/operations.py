"""Operations endpoints, open to anyone and unaudited: liveness, readiness, the OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web
from sqlalchemy import text

from broker.appkeys import HUB
from broker.base import errors
from broker.http.replies import reply

OPENAPI = json.loads(Path(__file__).with_name("openapi.json").read_text())  # read once, at import


async def healthz(request: web.Request) -> web.Response:
    return reply({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    try:
        async with hub.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        await hub.audit.count()
    except Exception as error:
        raise errors.Unavailable(f"store not ready: {type(error).__name__}") from error
    return reply({"status": "ready", "policy_version": hub.policies.version})


async def openapi(request: web.Request) -> web.Response:
    return reply({**OPENAPI, "servers": [{"url": request.app[HUB].config.url}]})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[HUB].metrics.exposition(),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Format": "prometheus 0.0.4"},
    )


ROUTES = [
    web.get("/healthz", healthz),
    web.get("/readyz", readyz),
    web.get("/openapi.json", openapi),
    web.get("/metrics", metrics),
]
