"""A stand-in for an agency's existing REST service (the employment office's case system), with its own
JSON shape: what the HTTP store maps from. It knows nothing of signatures or of the hub.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

RECORDS = web.AppKey("records", Mapping[str, dict[str, Any]])


async def job_seeker(request: web.Request) -> web.Response:
    record = request.app[RECORDS].get(request.match_info["niss"])
    if record is None:
        return web.json_response({"error": "NOT_FOUND"}, status=404)
    return web.json_response(
        {
            "person": {"niss": request.match_info["niss"]},
            "situation": {"code": record["status"], "since": record["since"]},
            "contract": None if record["contract"] is None else {"type": record["contract"]},
        }
    )


def legacy_app(records: Mapping[str, dict[str, Any]]) -> web.Application:
    """`GET /api/v2/job-seekers/{niss}` over `records` (niss → status, since, contract)."""
    app = web.Application()
    app[RECORDS] = records
    app.router.add_get("/api/v2/job-seekers/{niss}", job_seeker)
    return app


@asynccontextmanager
async def serving(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `app` on a loopback port (any free one by default); yield its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()
