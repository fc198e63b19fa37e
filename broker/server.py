"""The hub's web application: the signed API and the operators' console on one aiohttp server, each behind its
own middleware, how that server reads requests and answers those its HTTP parser refuses, and how it runs."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from broker import http
from broker.appkeys import HUB
from broker.config import Config
from broker.console import app as console
from broker.http.middleware import refuse_unparseable, respond
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
    """How the aiohttp server in front of the app reads requests (for `HubRunner`).

    Its parser refuses, before the app's middleware sees anything, a request line over MAX_REQUEST_LINE bytes, a
    header line over twice the app's header limit, more than MAX_HEADER_LINES header lines and malformed HTTP
    (HubRunner answers those 400 `unparseable-request`); a header section between the app's limit and those
    the app answers itself (431 `headers-too-large`). A requester that disconnects cancels its handler.
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


class _Connection(RequestHandler):
    """aiohttp's handler of one connection, answering what its HTTP parser refuses as the hub answers any
    refusal (`refuse_unparseable`) rather than with aiohttp's plain-text echo of the bytes and a logged
    traceback. aiohttp 3 passes those requests to no middleware; aiohttp 4 will (`request.pre_handler_error`)."""

    __slots__ = ("_app",)

    def __init__(self, manager: web.Server, *, app: web.Application, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._app = app

    def _make_error_handler(self, err_info: _ErrInfo) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
        async def refuse(request: web.BaseRequest) -> web.StreamResponse:
            return await refuse_unparseable(self._app[HUB], request.remote, err_info.exc)

        return refuse


class _Server(web.Server):
    """The low-level server an AppRunner made, making `_Connection`s."""

    def __init__(self, app: web.Application, made: web.Server) -> None:
        super().__init__(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            **made._kwargs,
        )
        self._app = app

    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, app=self._app, **self._kwargs)


class HubRunner(web.AppRunner):
    """`web.AppRunner` for the hub's application: its connections answer what the HTTP parser refuses as
    problems (`_Connection`)."""

    async def _make_server(self) -> web.Server:
        return _Server(self.app, await super()._make_server())


async def serve(config: Config, listening: Callable[[list[str]], None] = lambda urls: None) -> None:
    """Serve the hub until SIGTERM or SIGINT; then stop listening, let the requests it accepted finish (within
    `shutdown_timeout_s`) and close the hub. `listening` is told the URLs it listens on once it does."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    runner = HubRunner(
        build_app(config), access_log=None, shutdown_timeout=config.shutdown_timeout_s, **server_settings(config)
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
        listening([_url(address[0], address[1]) for address in runner.addresses])
        await stopping.wait()
    finally:
        await runner.cleanup()


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
