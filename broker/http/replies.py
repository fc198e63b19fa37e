"""Answers and request bodies for the thin handlers; problems, audit and signing are the middleware's."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from broker.appkeys import BODY
from broker.base import errors, wire


def reply(document: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(document, status=status, dumps=lambda value: json.dumps(value, separators=(",", ":")))


RECORD_ID = re.compile(r"[0-9A-Za-z-]{1,40}")  # what the hub allocates (UUIDs) and its tables hold


def record_id(request: web.Request, unknown: type[errors.Problem]) -> str:
    """The path's `{id}` when it can name a record the hub allocated; else `unknown` (no such record), before
    the value reaches the audit record or the store."""
    value = request.match_info["id"]
    if not RECORD_ID.fullmatch(value):
        raise unknown(f"no record has the id {value[:64]!r}")
    return value


def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (the middleware has already read and authenticated it)."""
    return parse_json_object(request[BODY], request.headers.get("Content-Type", ""))


def parse_json_object(body: bytes, content_type: str) -> dict[str, Any]:
    """The request body as a JSON object, or the problem saying why it is not one."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise errors.UnsupportedMediaType(f"Content-Type must be application/json, not {content_type or 'absent'!r}")
    document = wire.loads(body)
    if not isinstance(document, dict):
        raise errors.Invalid("the body must be a JSON object")
    return document
