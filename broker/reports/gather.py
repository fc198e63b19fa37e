"""Gathering a subject access report from the hub's services: the directory's references to the person, the audit
log's exchange attempts about them, their consents and refusals, the reviews about them and the change notifications
about them, with the directory's agency names, purposes and reviewers' roles. Each through the owning service's
public methods; what falls in the period is decided by broker/reports/report.py's pure functions.
"""

from __future__ import annotations

from datetime import datetime

from broker.audit.queries import MAX_LIMIT, AuditQuery
from broker.base import errors
from broker.hub import Hub
from broker.reports.report import Access, Reference, ReviewFact, SubjectReport, Told, consent_end, overlaps
from policies.reviews import Review

MAX_ACCESSES = 100_000  # attempts one report lists at most; a longer history is reported a period at a time


async def gather(hub: Hub, subject: str, since: datetime, until: datetime, by: str, now: datetime) -> SubjectReport:
    """The report on `subject` for [since, until), generated at `now` by `by`."""
    consents, refusals = await hub.consents.history(subject)
    reviews = [
        review
        for review in await hub.reviews.about(subject)
        if overlaps(review.created_at, review.decided_at, since, until)
    ]
    deliveries = await hub.notifications.outbox.about(subject, since, until)
    end = min(until, now)
    referenced = [*await hub.directory.holdings_of(subject, end), *await hub.directory.relationships_of(subject, end)]
    return SubjectReport(
        subject,
        since,
        until,
        now,
        by,
        hub.config.url,
        accesses=tuple(await _accesses(hub, subject, since, until)),
        consents=tuple(c for c in consents if overlaps(c.created_at, consent_end(c), since, until)),
        refusals=tuple(
            r for r in refusals if overlaps(r.created_at, None if r.lift is None else r.lift.at, since, until)
        ),
        reviews=tuple([await _review(hub, review) for review in reviews]),
        told=tuple(
            Told(
                delivery.notification.created_at,
                delivery.notification.sender,
                delivery.notification.category,
                delivery.notification.event,
                delivery.recipient,
                delivery.status,
                delivery.delivered_at,
            )
            for delivery in deliveries
        ),
        agencies={agency.id: agency.name for agency in await hub.directory.agencies()},
        purposes={purpose.name: purpose for purpose in await hub.directory.purposes()},
        references=tuple(Reference.of(stated.declaration) for stated in referenced),
    )


async def _accesses(hub: Hub, subject: str, since: datetime, until: datetime) -> list[Access]:
    query = AuditQuery({"subject": subject, "kind": "exchange"}, since, until, limit=MAX_LIMIT)
    accesses: list[Access] = []
    while True:
        records, after = await hub.audit.search(query)
        accesses += map(Access.of, records)
        if len(accesses) > MAX_ACCESSES:
            raise errors.Invalid(f"more than {MAX_ACCESSES} attempts in the period: report a shorter one at a time")
        if after is None:
            return accesses
        query = AuditQuery(query.filters, since, until, after, MAX_LIMIT)


async def _review(hub: Hub, review: Review) -> ReviewFact:
    """A review as the report tells it: its decider's role (operators are cached by the directory), never who
    they are nor their reason."""
    role = None
    if review.decided_by is not None:
        operator = await hub.directory.operator(review.decided_by)
        role = "operator" if operator is None else operator.role
    return ReviewFact(
        review.created_at,
        review.kind,
        review.requester,
        review.category,
        review.purpose,
        review.rule_id,
        review.policy_version,
        review.justification,
        review.status,
        review.decided_at,
        role,
    )
