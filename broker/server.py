"""The hub's web application: the signed API and the operators' console on one aiohttp server, each behind its
own middleware, and how that server reads requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from broker import http
from broker.appkeys import HUB
from broker.config import Config
from broker.console import app as console
from broker.http.middleware import respond
from broker.hub import Hub, open_hub

MAX_REQUEST_LINE = 8190  # bytes; aiohttp refuses a longer request line itself, before the app sees it
MAX_HEADER_LINES = 100


@web.middleware
async def front_door(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The console's pages are browser sessions behind the console's own middleware; every other path is the
    signed API's."""
    if console.serves(request.path):
        return await handler(request)
    return await respond(request, handler)


def server_settings(config: Config) -> dict[str, Any]:
    """How the aiohttp server in front of the app reads requests (for `web.run_app` or `web.AppRunner`).

    Its parser refuses, with its own plain-text 400 and before the app sees anything (so without an audit
    record), a request line over MAX_REQUEST_LINE bytes, a header line over twice the app's header limit or
    more than MAX_HEADER_LINES header lines; a header section between the app's limit and those the app
    answers itself (431 `headers-too-large`). A requester that disconnects cancels its handler.
    """
    return {
        "handler_cancellation": True,
        "max_line_size": MAX_REQUEST_LINE,
        "max_field_size": 2 * config.max_header_bytes,
        "max_headers": MAX_HEADER_LINES,
    }


def build_app(config: Config, hub: Hub | None = None) -> web.Application:
    """The hub application; with `hub` given the caller owns its lifetime (tests), else the app opens one."""
    app = web.Application(middlewares=[front_door], client_max_size=config.max_body_bytes)
    http.add_routes(app)
    console.mount(app)
    if hub is not None:
        app[HUB] = hub
    else:

        async def lifetime(app: web.Application) -> AsyncIterator[None]:
            async with open_hub(config) as opened:
                app[HUB] = opened
                yield

        app.cleanup_ctx.append(lifetime)
    return app
