"""The registry (admin): agencies (register, with a first key if one is given; change the name or adapter URL;
suspend and resume), data categories (list, register, seal or unseal, and the history of that), purposes and
capacities (list and register). Every change gives a reason,
kept in its audit record (kind `registry`, the agency in `holder`, the category or purpose in theirs) once it is
made; a refused change records the problem instead. Every hub process sees a change from its next request on.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.base import errors
from broker.http.replies import json_body, reply
from directory.names import NAME
from directory.registry import (
    agency_json,
    parse_agency,
    parse_agency_change,
    parse_purpose,
    parse_sealing,
    parse_term,
    purpose_json,
    take_reason,
)
from directory.store import AgencyEntry


async def agencies(request: web.Request) -> web.Response:
    found = await request.app[HUB].registry.agencies()
    return reply({"agencies": [agency_json(agency) for agency in found]})


async def register_agency(request: web.Request) -> web.Response:
    hub, entry, now = request.app[HUB], request[AUDIT], datetime.now(UTC)
    document, reason = take_reason(json_body(request))
    registration = parse_agency(document, now)
    entry.holder = registration.id
    agency, key = await hub.registry.register_agency(registration)
    entry.reason = reason
    return reply({**agency_json(agency), "key": None if key is None else key.as_json(now)}, 201)


async def _agency(request: web.Request) -> AgencyEntry:
    agency_id = request.match_info["id"]
    agency = await request.app[HUB].registry.agency(agency_id) if NAME.fullmatch(agency_id) else None
    if agency is None:
        raise errors.NotFound(f"no agency {agency_id[:64]!r}")
    request[AUDIT].holder = agency.id
    return agency


async def agency(request: web.Request) -> web.Response:
    return reply(agency_json(await _agency(request)))


async def update_agency(request: web.Request) -> web.Response:
    hub, entry, known = request.app[HUB], request[AUDIT], await _agency(request)
    document, reason = take_reason(json_body(request))
    updated = await hub.registry.update_agency(known.id, parse_agency_change(document))
    if updated is None:
        raise errors.NotFound(f"no agency {known.id!r}")
    entry.reason = reason
    return reply(agency_json(updated))


async def categories(request: web.Request) -> web.Response:
    found = await request.app[HUB].registry.categories()
    return reply({"categories": [category.as_json() for category in found]})


async def add_category(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    document, reason = take_reason(json_body(request))
    category = parse_term(document, "category")
    entry.category = category.name
    added = await hub.registry.add_category(category)
    entry.reason = reason
    return reply(added.as_json(), 201)


async def _category(request: web.Request) -> str:
    name = request.match_info["name"]
    category = await request.app[HUB].registry.category(name) if NAME.fullmatch(name) else None
    if category is None:
        raise errors.NotFound(f"no category {name[:64]!r}")
    request[AUDIT].category = category.name
    return category.name


async def change_category(request: web.Request) -> web.Response:
    """Seal a category (or make it plain again): a new version of it, from the next exchange on every process."""
    hub, entry, name = request.app[HUB], request[AUDIT], await _category(request)
    document, reason = take_reason(json_body(request))
    sealed = parse_sealing(document)
    change = await hub.registry.seal_category(name, sealed, request[PRINCIPAL].id, reason, datetime.now(UTC))
    if change is None:
        raise errors.NotFound(f"no category {name!r}")
    entry.reason = reason
    category = await hub.registry.category(name)
    assert category is not None  # noqa: S101 -- categories are never removed; for the type checker
    return reply({**category.as_json(), "version": change.version})


async def category_history(request: web.Request) -> web.Response:
    hub, name = request.app[HUB], await _category(request)
    changes = await hub.registry.category_history(name)
    return reply({"category": name, "changes": [change.as_json() for change in changes]})


async def purposes(request: web.Request) -> web.Response:
    found = await request.app[HUB].registry.purposes()
    return reply({"purposes": [purpose_json(purpose) for purpose in found]})


async def add_purpose(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    document, reason = take_reason(json_body(request))
    purpose = parse_purpose(document)
    entry.purpose = purpose.name
    added = await hub.registry.add_purpose(purpose)
    entry.reason = reason
    return reply(purpose_json(added), 201)


async def capacities(request: web.Request) -> web.Response:
    found = await request.app[HUB].registry.capacities()
    return reply({"capacities": [capacity.as_json() for capacity in found]})


async def add_capacity(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    document, reason = take_reason(json_body(request))
    added = await hub.registry.add_capacity(parse_term(document, "capacity"))
    entry.reason = reason
    return reply(added.as_json(), 201)


ROUTES = [
    web.get("/v1/agencies", agencies),
    web.post("/v1/agencies", register_agency),
    web.get("/v1/agencies/{id}", agency),
    web.patch("/v1/agencies/{id}", update_agency),
    web.get("/v1/categories", categories),
    web.post("/v1/categories", add_category),
    web.patch("/v1/categories/{name}", change_category),
    web.get("/v1/categories/{name}/history", category_history),
    web.get("/v1/purposes", purposes),
    web.post("/v1/purposes", add_purpose),
    web.get("/v1/capacities", capacities),
    web.post("/v1/capacities", add_capacity),
]
