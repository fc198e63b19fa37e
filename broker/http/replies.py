"""Answers and request bodies for the thin handlers; problems, audit and signing are the middleware's."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from broker.appkeys import BODY
from broker.pipeline import parse_json_object


def reply(document: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(document, status=status, dumps=lambda value: json.dumps(value, separators=(",", ":")))


def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (the middleware has already read and authenticated it)."""
    return parse_json_object(request[BODY], request.headers.get("Content-Type", ""))
