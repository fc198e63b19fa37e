"""The reference directory as the agencies keep it: an agency declares its own relationships and holdings (agency),
looks up who holds what for a person it has as a client (agency), and a privacy officer reads who was related to a
person on a given day (privacy_officer). Every read answers as of a moment (`?at=`), history included.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.base import errors
from broker.http.replies import json_body, reply
from broker.hub import Hub
from directory.names import NAME, SUBJECT
from directory.references import NAMED_BY, Declaration, Kind, Stated, parse_declaration, parse_moment, rfc3339


def _stored(stated: Stated) -> dict[str, object]:
    return {**stated.declaration.as_json(), "declared_at": rfc3339(stated.declared_at)}


def _period(declaration: Declaration) -> dict[str, str | None]:
    until = declaration.valid_until
    return {"from": rfc3339(declaration.valid_from), "until": None if until is None else rfc3339(until)}


async def _declare(request: web.Request, kind: Kind) -> web.Response:
    hub, entry, principal = request.app[HUB], request[AUDIT], request[PRINCIPAL]
    document = json_body(request)
    subject, name = document.get("subject"), document.get(NAMED_BY[kind])
    entry.subject = subject if isinstance(subject, str) and SUBJECT.fullmatch(subject) else None
    if kind == "holding":
        entry.holder = principal.id
        entry.category = name if isinstance(name, str) and NAME.fullmatch(name) else None
    if "agency" in document:
        raise errors.Invalid(
            "an agency declares its own references only: the signing agency is the owner, a body names no agency"
        )
    declaration = parse_declaration(document, principal.id, kind)
    stated, created = await hub.directory.declare(declaration, principal.id, datetime.now(UTC))
    return reply(_stored(stated), 201 if created else 200)


async def declare_relationship(request: web.Request) -> web.Response:
    return await _declare(request, "relationship")


async def declare_holding(request: web.Request) -> web.Response:
    return await _declare(request, "holding")


def _subject(request: web.Request) -> str:
    subject = request.match_info["subject"]
    if not SUBJECT.fullmatch(subject):
        raise errors.Invalid("subject must be 1 to 64 characters of [0-9A-Za-z.-]")
    request[AUDIT].subject = subject
    return subject


def _moments(request: web.Request) -> tuple[datetime, datetime | None]:
    """`?at=` (default now) and `?as_of=` (default `at` when given: the directory as it stood then; else now,
    None). A `+` of an offset left unencoded reads as a space in a query; it is taken back as the `+` it was."""
    unknown = sorted(set(request.query) - {"at", "as_of"})
    if unknown:
        raise errors.Invalid(f"unknown query parameters: {', '.join(unknown)}")
    at = parse_moment(_offset(request.query.get("at")), "at")
    as_of = parse_moment(_offset(request.query.get("as_of")), "as_of")
    return at or datetime.now(UTC), as_of or at


def _offset(value: str | None) -> str | None:
    return None if value is None else value.replace(" ", "+")


async def holders(request: web.Request) -> web.Response:
    """Who holds what for the subject: the holdings in force at `at` of the categories some registered purpose
    lets the requester ask for (any zone but black), for a requester related to the subject at `at`."""
    hub, requester = request.app[HUB], request[PRINCIPAL].id
    subject = _subject(request)
    at, as_of = _moments(request)
    related = await hub.directory.relationships_of(subject, at, as_of)
    if not any(stated.declaration.owner == requester for stated in related):
        raise errors.NoRelationship(f"{requester!r} has no relationship with this subject at {rfc3339(at)}")
    holdings = await hub.directory.holdings_of(subject, at, as_of)
    shown = await _not_blacked_out(hub, requester, {stated.declaration.name for stated in holdings})
    return reply(
        {
            "subject": subject,
            "at": rfc3339(at),
            "as_of": rfc3339(as_of or at),
            "holders": [
                {
                    "category": stated.declaration.name,
                    "agency": stated.declaration.owner,
                    **_period(stated.declaration),
                }
                for stated in holdings
                if stated.declaration.name in shown
            ],
        }
    )


async def _not_blacked_out(hub: Hub, requester: str, categories: set[str]) -> set[str]:
    """Those of `categories` the requester's sharing rules do not black out: white or grey for at least one
    registered purpose (what `POST /v1/policies/evaluate` would answer)."""
    purposes = [purpose.name for purpose in await hub.directory.purposes()]
    shown = set()
    for category in categories:
        for purpose in purposes:
            if (await hub.policies.decide(requester, category, purpose)).zone != "black":
                shown.add(category)
                break
    return shown


async def relationships(request: web.Request) -> web.Response:
    """Who was related to the subject at `at`, as the directory stood at `as_of`, with who declared it and when."""
    hub = request.app[HUB]
    subject = _subject(request)
    at, as_of = _moments(request)
    found = await hub.directory.relationships_of(subject, at, as_of)
    return reply(
        {
            "subject": subject,
            "at": rfc3339(at),
            "as_of": rfc3339(as_of or at),
            "relationships": [
                {
                    "agency": stated.declaration.owner,
                    "capacity": stated.declaration.name,
                    **_period(stated.declaration),
                    "declared_at": rfc3339(stated.declared_at),
                    "declared_by": stated.declared_by,
                }
                for stated in found
            ],
        }
    )


ROUTES = [
    web.put("/v1/directory/relationships", declare_relationship),
    web.put("/v1/directory/holdings", declare_holding),
    web.get("/v1/subjects/{subject}/holders", holders),
    web.get("/v1/subjects/{subject}/relationships", relationships),
]
