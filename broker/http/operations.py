"""Operations endpoints, open to anyone and unaudited: liveness, readiness, the OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from broker.appkeys import HUB
from broker.base import errors
from broker.base.store import StoreUnavailable
from broker.http.replies import reply

OPENAPI = json.loads(Path(__file__).with_name("openapi.json").read_text())  # read once, at import


async def healthz(request: web.Request) -> web.Response:
    return reply({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """Ready while the audit writer runs and the store takes a write that needs fresh room, keeping the room to
    complete exchanges (broker/audit/reserve.py): what every exchange needs. Probed at most once a second, so
    polling this cannot make the store write more than that."""
    hub = request.app[HUB]
    try:
        await hub.audit.ready()
    except StoreUnavailable as error:
        raise errors.Unavailable(f"not ready: {error}") from error
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
