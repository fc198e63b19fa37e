"""Agencies' signing keys (admin): list them, register one (a rotation when it names an overlap), revoke one.
Every change is audited, with the agency in the record's `holder`; a revocation counts on every hub process
from its next request on (directory/store.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.base import errors
from broker.http.replies import json_body, reply
from directory.keys import KEY_ID, parse_registration, parse_revocation
from directory.names import NAME
from directory.store import AgencyEntry


async def _agency(request: web.Request) -> AgencyEntry:
    agency_id = request.match_info["id"]
    agency = await request.app[HUB].directory.agency(agency_id) if NAME.fullmatch(agency_id) else None
    if agency is None:
        raise errors.NotFound(f"no agency {agency_id!r}")
    request[AUDIT].holder = agency.id
    return agency


async def keys(request: web.Request) -> web.Response:
    agency, now = await _agency(request), datetime.now(UTC)
    found = await request.app[HUB].directory.keys_of(agency.id)
    return reply({"agency": agency.id, "keys": [key.as_json(now) for key in found]})


async def register_key(request: web.Request) -> web.Response:
    agency, now = await _agency(request), datetime.now(UTC)
    registration = parse_registration(json_body(request), now)
    key = await request.app[HUB].directory.add_key("agency", agency.id, registration, now)
    return reply(key.as_json(now), 201)


async def revoke_key(request: web.Request) -> web.Response:
    agency, now = await _agency(request), datetime.now(UTC)
    key_id = request.match_info["key_id"]
    reason = parse_revocation(json_body(request))
    key = (
        await request.app[HUB].directory.revoke_key(agency.id, key_id, request[PRINCIPAL].id, reason, now)
        if KEY_ID.fullmatch(key_id)
        else None
    )
    if key is None:
        raise errors.NotFound(f"agency {agency.id!r} has no key {key_id!r}")
    return reply(key.as_json(now))


ROUTES = [
    web.get("/v1/agencies/{id}/keys", keys),
    web.post("/v1/agencies/{id}/keys", register_key),
    web.post("/v1/agencies/{id}/keys/{key_id}/revoke", revoke_key),
]
