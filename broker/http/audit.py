"""Reading the audit log: privacy officers search it, verify its chain and look for anomalies; citizens
(through the citizen portal) read who accessed their data, when and why.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web

from broker.appkeys import AUDIT, HUB
from broker.audit import verify_spans
from broker.audit.access_log import access_entry, disclosed
from broker.audit.anomalies import ANOMALY_PERIOD, MAX_LOOKUPS, Thresholds, detect
from broker.audit.chain import timestamp
from broker.audit.queries import AuditQuery, Cursor, page_size, parse_query, rfc3339
from broker.base import errors
from broker.http.replies import reply
from directory.names import SUBJECT


async def audit(request: web.Request) -> web.Response:
    query = parse_query(request.query)
    subject = query.filters.get("subject")
    request[AUDIT].subject = subject if subject is not None and SUBJECT.fullmatch(subject) else None
    records, after = await request.app[HUB].audit.search(query)
    return reply({"records": records, "next": None if after is None else after.encode()})


async def verify(request: web.Request) -> web.Response:
    if request.query:
        raise errors.Invalid("verify takes no query parameters")
    hub = request.app[HUB]
    await hub.sequencer.step()
    verdict = await verify_spans.verify(hub.audit, [hub.key.public_key])
    return reply(verdict.as_json())


async def anomalies(request: web.Request) -> web.Response:
    unknown = sorted(set(request.query) - {"since", "until"})
    if unknown:
        raise errors.Invalid(f"unknown query parameters: {', '.join(unknown)}")
    until = rfc3339(request.query.get("until"), "until") or datetime.now(UTC)
    since = rfc3339(request.query.get("since"), "since") or until - ANOMALY_PERIOD
    if until <= since:
        raise errors.Invalid("until must be later than since")
    lookups = await request.app[HUB].audit.lookups(since, until, MAX_LOOKUPS)
    if lookups is None:
        raise errors.Invalid(f"more than {MAX_LOOKUPS} exchange attempts in this period: narrow since and until")
    findings = await asyncio.to_thread(detect, lookups, since, until, Thresholds())
    return reply(
        {
            "since": timestamp(since),
            "until": timestamp(until),
            "lookups": len(lookups),
            "findings": [finding.as_json() for finding in findings],
        }
    )


async def access_log(request: web.Request) -> web.Response:
    hub, subject = request.app[HUB], request.match_info["subject"]
    if not SUBJECT.fullmatch(subject):
        raise errors.Invalid("subject must be 1 to 64 characters of [0-9A-Za-z.-]")
    unknown = sorted(set(request.query) - {"cursor", "limit"})
    if unknown:
        raise errors.Invalid(f"unknown query parameters: {', '.join(unknown)}")
    request[AUDIT].subject = subject
    cursor = request.query.get("cursor")
    query = AuditQuery(
        {"subject": subject, "kind": "exchange", "outcome": "delivered"},
        after=None if cursor is None else Cursor.decode(cursor),
        limit=page_size(request.query.get("limit")),
        newest_first=True,
    )
    records, after = await hub.audit.search(query)
    purposes = {purpose.name: purpose for purpose in await hub.directory.purposes()}
    agencies = {agency.id: agency.name for agency in await hub.directory.agencies()}
    now = datetime.now(UTC)
    accesses = [
        access_entry(record, agencies, purposes.get(record["purpose"]))
        for record in records
        if disclosed(purposes.get(record["purpose"]), datetime.fromisoformat(record["at"]), now)
    ]
    return reply({"subject": subject, "accesses": accesses, "next": None if after is None else after.encode()})


ROUTES = [
    web.get("/v1/audit", audit),
    web.get("/v1/audit/verify", verify),
    web.get("/v1/audit/anomalies", anomalies),
    web.get("/v1/subjects/{subject}/access-log", access_log),
]
