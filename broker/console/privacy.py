"""Privacy officers' pages: audit search with paging and CSV export, a person's page (every attempt to reach
their data, their consents and refusals, reviews about them), the grey-zone and emergency review queues with
their decisions, the anomaly report, and the audit chain's verification against its last signed checkpoint.
Each calls the services the v1 API calls.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.audit import verify_spans
from broker.audit.access_log import disclosed
from broker.audit.anomalies import ANOMALY_PERIOD, MAX_LOOKUPS, Thresholds, detect
from broker.audit.export import csv_cell
from broker.audit.log import COLUMNS, AuditEntry
from broker.audit.queries import FILTERS, MAX_LIMIT, AuditQuery, Cursor, parse_query, rfc3339
from broker.base import errors
from broker.console.pages import form, moment, page, query_filled, redirect, text
from broker.hub import Hub
from broker.reports.gather import gather
from broker.reports.render import FORMATS, render
from broker.reports.report import period
from consent.service import consent_json, refusal_json
from directory.names import SUBJECT
from policies.reviews import Review

PAGE = 50  # records a console page lists
MAX_EXPORT = 10_000  # records one CSV export holds at most; a larger search is narrowed first
SEARCH_FIELDS = (*FILTERS, "since", "until", "order", "limit")
OUTCOMES = ("delivered", "recorded", "pending", "refused", "failed", "forwarding", "abandoned")
ZONES = ("white", "grey", "black")
KINDS = (
    "exchange",
    "directory",
    "consent",
    "subject",
    "policy",
    "review",
    "registry",
    "key",
    "audit",
    "notification",
    "alert",
    "console",
    "http",
)


def search_parameters(query: dict[str, str]) -> dict[str, str]:
    """The audit search a console form asks for, as GET /v1/audit's query parameters: empty fields dropped,
    browser date-times read as UTC, newest first unless asked otherwise."""
    filled = {name: value for name, value in query_filled(query).items() if name in (*SEARCH_FIELDS, "cursor")}
    for name in ("since", "until"):
        if name in filled:
            filled[name] = moment(filled[name])
    filled.setdefault("order", "desc")
    return filled


async def audit_search(request: web.Request) -> web.Response:
    hub, entry = request.config_dict[HUB], request[AUDIT]
    parameters = search_parameters(dict(request.query))
    context: dict[str, Any] = {"form": parameters, "outcomes": OUTCOMES, "zones": ZONES, "kinds": KINDS, "error": None}
    try:
        query = parse_query({"limit": str(PAGE), **parameters})
    except errors.Invalid as error:
        return page(request, "audit.html", {**context, "error": error.detail, "records": None}, 422)
    entry.subject = query.filters.get("subject")
    records, after = await hub.audit.search(query)
    filters = {name: value for name, value in parameters.items() if name != "cursor"}
    return page(
        request,
        "audit.html",
        {
            **context,
            "records": records,
            "next": None if after is None else urlencode({**filters, "cursor": after.encode()}),
            "first": urlencode(filters) if "cursor" in parameters else None,
            "export": urlencode({name: value for name, value in filters.items() if name != "limit"}),
        },
    )


async def audit_export(request: web.Request) -> web.Response:
    """Every record the search finds, as CSV with the columns of `crossroads audit export`."""
    hub, entry = request.config_dict[HUB], request[AUDIT]
    parameters = {name: value for name, value in search_parameters(dict(request.query)).items() if name != "limit"}
    query = parse_query({**parameters, "limit": str(MAX_LIMIT)})
    entry.subject = query.filters.get("subject")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    written, after = 0, query.after
    while True:
        records, after = await hub.audit.search(
            AuditQuery(query.filters, query.since, query.until, after, query.limit, query.newest_first)
        )
        written += len(records)
        if written > MAX_EXPORT:
            raise errors.Invalid(f"the search finds more than {MAX_EXPORT} records: narrow it before exporting")
        writer.writerows([csv_cell(record[name]) for name in COLUMNS] for record in records)
        if after is None:
            break
    name = f"audit-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv"
    return web.Response(
        body=out.getvalue().encode(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def subject_report(request: web.Request) -> web.Response:
    """The person's subject access report for the period the form asks for (`format`, `since`, `until`), as a
    download; the same report as `crossroads audit report`."""
    hub, entry, subject = request.config_dict[HUB], request[AUDIT], request.match_info["subject"]
    if not SUBJECT.fullmatch(subject):
        raise errors.Invalid("a national number is 1 to 64 characters of [0-9A-Za-z.-]")
    entry.subject = subject
    asked = query_filled(dict(request.query))
    chosen = asked.get("format", "html")
    if chosen not in FORMATS or "since" not in asked:
        raise errors.Invalid(f"a report needs a format ({', '.join(FORMATS)}) and the start of its period")
    now = datetime.now(UTC)
    since, until = period(moment(asked["since"]), moment(asked["until"]) if "until" in asked else None, now)
    report = await gather(hub, subject, since, until, request[PRINCIPAL].id, now)
    drawn = await asyncio.to_thread(render, report, chosen)
    name = f"subject-access-report-{now:%Y%m%dT%H%M%SZ}.{chosen}"  # no national number where downloads are listed
    return web.Response(
        body=drawn,
        content_type=FORMATS[chosen].media_type,
        charset=FORMATS[chosen].charset,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def people(request: web.Request) -> web.Response:
    subject = request.query.get("subject", "").strip()
    if not subject:
        return page(request, "people.html", {"subject": "", "error": None})
    if not SUBJECT.fullmatch(subject):
        error = "A national number is 1 to 64 characters of digits, letters, dots and dashes."
        return page(request, "people.html", {"subject": subject, "error": error}, 422)
    return redirect(f"/console/people/{quote(subject)}")


async def person(request: web.Request) -> web.Response:
    hub, entry, subject = request.config_dict[HUB], request[AUDIT], request.match_info["subject"]
    if not SUBJECT.fullmatch(subject):
        raise errors.Invalid("a national number is 1 to 64 characters of [0-9A-Za-z.-]")
    entry.subject = subject
    cursor = request.query.get("cursor")
    query = AuditQuery(
        {"subject": subject, "kind": "exchange"},
        after=None if cursor is None else Cursor.decode(cursor),
        limit=PAGE,
        newest_first=True,
    )
    records, after = await hub.audit.search(query)
    purposes = {purpose.name: purpose for purpose in await hub.directory.purposes()}
    now = datetime.now(UTC)
    for record in records:
        at = datetime.fromisoformat(record["at"])
        record["citizen_sees"] = record["outcome"] == "delivered" and disclosed(
            purposes.get(record["purpose"]), at, now
        )
    consents, refusals = await hub.consents.history(subject)
    reviews = list(reversed(await hub.reviews.about(subject)))  # newest first, pending and decided
    deciders = {review.decided_by for review in reviews if review.decided_by}
    return page(
        request,
        "person.html",
        {
            "subject": subject,
            "records": records,
            "next": None if after is None else urlencode({"cursor": after.encode()}),
            "consents": [consent_json(consent, now) for consent in consents],
            "refusals": [refusal_json(refusal, now) for refusal in refusals],
            "reviews": reviews,
            "decided_as": {operator_id: await _role_of(hub, operator_id) for operator_id in deciders},
        },
    )


async def _role_of(hub: Hub, operator_id: str) -> str:
    """The role a review's decider has (the page shows it instead of who they are)."""
    operator = await hub.directory.operator(operator_id)
    return "an operator no longer registered" if operator is None else operator.role.replace("_", " ")


async def _queue(request: web.Request, kind: str) -> web.Response:
    pending = [
        review for review in await request.config_dict[HUB].reviews.with_status("pending") if review.kind == kind
    ]
    return page(request, "reviews.html", {"kind": kind, "reviews": pending})


async def grey_reviews(request: web.Request) -> web.Response:
    return await _queue(request, "grey")


async def emergencies(request: web.Request) -> web.Response:
    return await _queue(request, "emergency")


async def decide(request: web.Request) -> web.Response:
    hub, entry, fields = request.config_dict[HUB], request[AUDIT], await form(request)
    review_id = entry.review_id = request.match_info["id"]
    decision = fields.get("decision")
    if decision not in ("approve", "reject"):
        raise errors.Invalid("a decision is approve or reject")
    reason = text(fields, "reason", "the reason for the decision")
    review = await hub.reviews.decide(
        review_id, decision == "approve", reason, request[PRINCIPAL].id, datetime.now(UTC)
    )
    _describe(entry, review)
    queue = "reviews" if review.kind == "grey" else "emergencies"
    return redirect(f"/console/{queue}?notice=review-{review.status}")


def _describe(entry: AuditEntry, review: Review) -> None:
    entry.subject, entry.category, entry.purpose, entry.rule_id = (
        review.subject,
        review.category,
        review.purpose,
        review.rule_id,
    )


async def anomalies(request: web.Request) -> web.Response:
    filled = query_filled(dict(request.query))
    until = rfc3339(moment(filled["until"]), "until") if "until" in filled else None
    until = until or datetime.now(UTC)
    since = rfc3339(moment(filled["since"]), "since") if "since" in filled else None
    since = since or until - ANOMALY_PERIOD
    if until <= since:
        raise errors.Invalid("until must be later than since")
    lookups = await request.config_dict[HUB].audit.lookups(since, until, MAX_LOOKUPS)
    if lookups is None:
        raise errors.Invalid(f"more than {MAX_LOOKUPS} exchange attempts in this period: narrow since and until")
    findings = await asyncio.to_thread(detect, lookups, since, until, Thresholds())
    return page(
        request,
        "anomalies.html",
        {"since": since, "until": until, "lookups": len(lookups), "findings": [f.as_json() for f in findings]},
    )


async def chain(request: web.Request) -> web.Response:
    """The chain's head and last signed checkpoint; with `?verify=1`, the whole chain recomputed."""
    hub = request.config_dict[HUB]
    verdict = None
    if request.query.get("verify") == "1":
        await hub.sequencer.step()
        verdict = (await verify_spans.verify(hub.audit, [hub.key.public_key])).as_json()
    checkpoint = await hub.audit.last_checkpoint()
    return page(
        request,
        "chain.html",
        {
            "head": await hub.audit.head(),
            "unlinked": await hub.audit.unlinked(),
            "checkpoint": None if checkpoint is None else checkpoint.as_json(),
            "checkpoint_valid": checkpoint is not None and checkpoint.signature_valid(),
            "checkpoint_ours": checkpoint is not None and checkpoint.signed_by([hub.key.public_key]),
            "hub_key_id": hub.key.key_id,
            "verdict": verdict,
        },
    )


ROUTES = [
    web.get("/audit", audit_search, name="audit_search"),
    web.get("/audit.csv", audit_export, name="audit_export"),
    web.get("/people", people, name="people"),
    web.get("/people/{subject}", person, name="person"),
    web.get("/people/{subject}/report", subject_report, name="subject_report"),
    web.get("/reviews", grey_reviews, name="reviews"),
    web.get("/emergencies", emergencies, name="emergencies"),
    web.post("/reviews/{id}/decision", decide, name="review_decision"),
    web.get("/anomalies", anomalies, name="anomalies"),
    web.get("/chain", chain, name="chain"),
]
