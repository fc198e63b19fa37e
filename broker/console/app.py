"""The console as an aiohttp sub-application mounted at /console: its pages, its own middleware (sessions,
CSRF, roles, audit: broker/console/gate.py) instead of the API's signatures, server-rendered Jinja2 templates
with autoescaping, and its one stylesheet, all served by the hub itself (it runs on closed networks).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

from broker.console import admin, overview, privacy, signin
from broker.console.gate import STYLESHEET, gate
from broker.console.pages import PREFIX, TEMPLATES, agency_label

HERE = Path(__file__).parent
STYLESHEET_TYPE = "text/css"


def console_app() -> web.Application:
    """The console's sub-application; its templates and stylesheet are read now, before it serves."""
    console = web.Application(middlewares=[gate])
    environment = aiohttp_jinja2.setup(
        console,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        app_key=TEMPLATES,
        default_helpers=False,
        autoescape=True,
        auto_reload=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = when
    environment.filters["picker"] = picker
    environment.filters["agency"] = agency
    for name in environment.list_templates():
        environment.get_template(name)  # compiled once here: serving a page never reads a file
    css = (HERE / "static" / "console.css").read_bytes()
    etag = '"' + hashlib.sha256(css).hexdigest()[:16] + '"'

    async def stylesheet(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=css, content_type=STYLESHEET_TYPE, headers={"ETag": etag, "Cache-Control": "no-cache"})

    console.router.add_get(STYLESHEET.removeprefix(PREFIX), stylesheet, name="stylesheet")
    for module in (signin, overview, privacy, admin):
        console.add_routes(module.ROUTES)
    return console


def when(value: object) -> str:
    """A time (or an RFC 3339 string) as the console shows it: UTC, to the second; a dash for none."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def picker(value: object) -> str:
    """A time as a `datetime-local` field holds it: UTC without an offset, to the second (`2026-11-23T10:00:00`);
    empty for none, or for text that is no RFC 3339 time (the page says what was wrong with it)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return ""
    if not isinstance(value, datetime):
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # as the server reads a browser's date-time
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@jinja2.pass_context
def agency(context: jinja2.runtime.Context, value: Any) -> Markup:
    """An agency id as the page shows it (broker/console/pages.py `agency_label`), from the request's names."""
    return agency_label(context.get("agency_names", {}), value)


def serves(path: str) -> bool:
    """Whether a request path is the console's (the API's middleware lets these through untouched)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def mount(app: web.Application) -> None:
    """Serve the console under /console of the hub's application (`/console` itself leads to its start)."""
    app.router.add_get(PREFIX, overview.to_home)
    app.add_subapp(PREFIX, console_app())
