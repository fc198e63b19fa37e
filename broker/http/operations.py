"""Operations endpoints, open to anyone and unaudited: liveness, readiness, the OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web
from sqlalchemy import text

from broker import errors
from broker.appkeys import HUB
from broker.http.replies import reply

OPENAPI = json.loads(Path(__file__).parent.parent.joinpath("openapi.json").read_text())  # read once, at import


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


ROUTES = [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/openapi.json", openapi)]
