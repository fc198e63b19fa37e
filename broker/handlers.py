"""Thin HTTP handlers: parse, call the service, answer. Authentication, problems, audit and signing are
the middleware's (broker/app.py); authorisation of operators' roles happens there too, through Casbin.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import text

from broker import errors
from broker.appkeys import AUDIT, BODY, HUB, PRINCIPAL
from broker.pipeline import parse_json_object
from consent.service import ConsentInvalid, consent_json
from consent.store import AlreadyWithdrawn
from directory.names import SUBJECT
from policies.reviews import ReviewNotPending

OPENAPI = json.loads(Path(__file__).with_name("openapi.json").read_text())  # read once, at import
AUDIT_FILTERS = ("subject", "requester", "holder", "category", "purpose", "outcome", "zone")


def reply(document: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(document, status=status, dumps=lambda value: json.dumps(value, separators=(",", ":")))


def _document(request: web.Request) -> dict[str, Any]:
    return parse_json_object(request[BODY], request.headers.get("Content-Type", ""))


async def exchange(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    status, document = await hub.pipeline.run(request[PRINCIPAL].id, _document(request), entry)
    return reply(document, status)


async def give_consent(request: web.Request) -> web.Response:
    hub, entry, now = request.app[HUB], request[AUDIT], datetime.now(UTC)
    document = _document(request)
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


async def reviews(request: web.Request) -> web.Response:
    status = request.query.get("status", "pending")
    if status not in ("pending", "approved", "rejected", "used"):
        raise errors.Invalid("status is one of pending, approved, rejected, used")
    found = await request.app[HUB].reviews.with_status(status)
    return reply({"reviews": [review.as_json() for review in found]})


async def decide_review(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    review_id = entry.review_id = request.match_info["id"]
    document = _document(request)
    decision, reason = document.get("decision"), document.get("reason")
    if set(document) != {"decision", "reason"} or decision not in ("approve", "reject"):
        raise errors.Invalid('a decision is {"decision": "approve" | "reject", "reason": "..."}')
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise errors.Invalid("a decision needs its reason, at most 2000 characters")
    try:
        review = await hub.reviews.decide(
            review_id, decision == "approve", reason, request[PRINCIPAL].id, datetime.now(UTC)
        )
    except ReviewNotPending as error:
        found = await hub.reviews.get(review_id)
        if found is None:
            raise errors.UnknownReview(f"no review {review_id!r}") from error
        raise errors.Conflict(f"review {review_id!r} is {found.status}, not pending") from error
    entry.subject = review.subject
    entry.category, entry.purpose, entry.rule_id = review.category, review.purpose, review.rule_id
    return reply(review.as_json())


async def policies(request: web.Request) -> web.Response:
    rule_set = await request.app[HUB].policies.rules()
    return reply({"version": rule_set.version, "rules": [rule.as_json() for rule in rule_set.rules]})


async def evaluate(request: web.Request) -> web.Response:
    document = _document(request)
    names = ("requester", "category", "purpose")
    if set(document) != set(names) or not all(isinstance(document[name], str) for name in names):
        raise errors.Invalid("evaluate takes exactly requester, category and purpose, as strings")
    decision = await request.app[HUB].policies.decide(*(document[name] for name in names))
    return reply(
        {
            "zone": decision.zone,
            "consent": decision.consent,
            "fields": None if decision.fields is None else list(decision.fields),
            "rules": [] if decision.rule is None else [decision.rule.id],
            "version": decision.version,
        }
    )


async def audit(request: web.Request) -> web.Response:
    unknown = sorted(set(request.query) - set(AUDIT_FILTERS))
    if unknown:
        raise errors.Invalid(f"unknown filters: {', '.join(unknown)}")
    records = await request.app[HUB].audit.records(**{name: request.query.get(name) for name in AUDIT_FILTERS})
    return reply(
        {
            "records": [
                {name: _json_value(getattr(record, name)) for name in record.__table__.columns.keys()}  # noqa: SIM118 (a ColumnCollection, not a dict)
                for record in records
            ]
        }
    )


def _json_value(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


async def healthz(request: web.Request) -> web.Response:
    return reply({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    try:
        async with hub.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        await hub.audit.count()
    except Exception as error:
        raise errors.Unavailable(f"store not ready: {type(error).__name__}") from error
    return reply({"status": "ready", "policy_version": hub.policies.version})


async def openapi(request: web.Request) -> web.Response:
    return reply({**OPENAPI, "servers": [{"url": request.app[HUB].config.url}]})


def add_routes(app: web.Application) -> None:
    app.add_routes(
        [
            web.post("/v1/exchanges", exchange),
            web.post("/v1/consents", give_consent),
            web.post("/v1/consents/{id}/withdraw", withdraw_consent),
            web.get("/v1/subjects/{subject}/consents", subject_consents),
            web.get("/v1/reviews", reviews),
            web.post("/v1/reviews/{id}/decision", decide_review),
            web.get("/v1/policies", policies),
            web.post("/v1/policies/evaluate", evaluate),
            web.get("/v1/audit", audit),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/openapi.json", openapi),
        ]
    )
