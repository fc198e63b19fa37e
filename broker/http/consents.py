"""Giving and withdrawing consents, recording and lifting refusals, and reading a subject's consent history
(citizen_portal and admin).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.base import errors
from broker.http.replies import json_body, record_id, reply
from consent.matching import Ending
from consent.service import consent_json, default_channel, parse_channel, refusal_json
from directory.names import SUBJECT


def _subject_of(document: dict[str, object]) -> str | None:
    subject = document.get("subject")
    return subject if isinstance(subject, str) and SUBJECT.fullmatch(subject) else None


def _ending(request: web.Request, at: datetime) -> Ending:
    """Who ends a consent or refusal, now, through the channel named by `?channel=` or the caller's default."""
    unknown = sorted(set(request.query) - {"channel"})
    if unknown:
        raise errors.Invalid(f"unknown query parameters: {', '.join(unknown)}")
    principal = request[PRINCIPAL]
    return Ending(at, principal.id, parse_channel(request.query.get("channel"), default_channel(principal.role)))


async def give_consent(request: web.Request) -> web.Response:
    hub, entry, principal, now = request.app[HUB], request[AUDIT], request[PRINCIPAL], datetime.now(UTC)
    document = json_body(request)
    entry.subject = _subject_of(document)
    consent = await hub.consents.give(document, principal.id, now, default_channel(principal.role))
    entry.consent_id = consent.id
    return reply(consent_json(consent, now), 201)


async def withdraw_consent(request: web.Request) -> web.Response:
    hub, entry, now = request.app[HUB], request[AUDIT], datetime.now(UTC)
    consent_id = entry.consent_id = record_id(request, errors.UnknownConsent)
    consent = await hub.consents.withdraw(consent_id, _ending(request, now))
    if consent is None:
        raise errors.UnknownConsent(f"no consent {consent_id!r}")
    entry.subject = consent.subject
    return reply(consent_json(consent, now))


async def refuse(request: web.Request) -> web.Response:
    hub, entry, principal, now = request.app[HUB], request[AUDIT], request[PRINCIPAL], datetime.now(UTC)
    document = json_body(request)
    entry.subject = _subject_of(document)
    refusal = await hub.consents.refuse(document, principal.id, now, default_channel(principal.role))
    entry.consent_id = refusal.id
    return reply(refusal_json(refusal, now), 201)


async def lift_refusal(request: web.Request) -> web.Response:
    hub, entry, now = request.app[HUB], request[AUDIT], datetime.now(UTC)
    refusal_id = entry.consent_id = record_id(request, errors.UnknownRefusal)
    refusal = await hub.consents.lift(refusal_id, _ending(request, now))
    if refusal is None:
        raise errors.UnknownRefusal(f"no refusal {refusal_id!r}")
    entry.subject = refusal.subject
    return reply(refusal_json(refusal, now))


async def subject_consents(request: web.Request) -> web.Response:
    hub, now = request.app[HUB], datetime.now(UTC)
    subject = request.match_info["subject"]
    if not SUBJECT.fullmatch(subject):
        raise errors.Invalid("subject must be 1 to 64 characters of [0-9A-Za-z.-]")
    request[AUDIT].subject = subject
    consents, refusals = await hub.consents.history(subject)
    return reply(
        {
            "subject": subject,
            "consents": [consent_json(consent, now) for consent in consents],
            "refusals": [refusal_json(refusal, now) for refusal in refusals],
        }
    )


ROUTES = [
    web.post("/v1/consents", give_consent),
    web.post("/v1/consents/{id}/withdraw", withdraw_consent),
    web.post("/v1/refusals", refuse),
    web.post("/v1/refusals/{id}/lift", lift_refusal),
    web.get("/v1/subjects/{subject}/consents", subject_consents),
]
