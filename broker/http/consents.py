"""Giving, withdrawing and reading consents (citizen_portal and admin)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from broker import errors
from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.http.replies import json_body, reply
from consent.service import ConsentInvalid, consent_json
from consent.store import AlreadyWithdrawn
from directory.names import SUBJECT


async def give_consent(request: web.Request) -> web.Response:
    hub, entry, now = request.app[HUB], request[AUDIT], datetime.now(UTC)
    document = json_body(request)
    entry.subject = document.get("subject") if isinstance(document.get("subject"), str) else None
    try:
        consent = await hub.consents.give(document, request[PRINCIPAL].id, now)
    except ConsentInvalid as error:
        raise errors.Invalid(str(error)) from error
    entry.consent_id = consent.id
    return reply({"consent": consent.id, **consent_json(consent, now)}, 201)


async def withdraw_consent(request: web.Request) -> web.Response:
    hub, entry, now = request.app[HUB], request[AUDIT], datetime.now(UTC)
    consent_id = entry.consent_id = request.match_info["id"]
    try:
        consent = await hub.consents.withdraw(consent_id, request[PRINCIPAL].id, now)
    except AlreadyWithdrawn as error:
        raise errors.Conflict("this consent was already withdrawn") from error
    if consent is None:
        raise errors.UnknownConsent(f"no consent {consent_id!r}")
    entry.subject = consent.subject
    return reply(consent_json(consent, now))


async def subject_consents(request: web.Request) -> web.Response:
    hub, now = request.app[HUB], datetime.now(UTC)
    subject = request.match_info["subject"]
    if not SUBJECT.fullmatch(subject):
        raise errors.Invalid("subject must be 1 to 64 characters of [0-9A-Za-z.-]")
    request[AUDIT].subject = subject
    history = await hub.consents.history(subject)
    return reply({"subject": subject, "consents": [consent_json(consent, now) for consent in history]})


ROUTES = [
    web.post("/v1/consents", give_consent),
    web.post("/v1/consents/{id}/withdraw", withdraw_consent),
    web.get("/v1/subjects/{subject}/consents", subject_consents),
]
