"""The exchange pipeline, in PROTOCOL.md's order.

authenticate (broker/app.py, before any handler) → validate → relationship → holder → zone → consent →
forward → verify the holder's answer → commit the audit record → reply. The last two steps are the audit
middleware's in broker/app.py, the same for every endpoint: the answer leaves only after its record is
committed. Each step below is a function that raises the problem that stops the exchange.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from broker import errors
from broker.audit import AuditEntry, AuditLog
from broker.forwarding import HolderClient
from consent.matching import Consent, covering_consent
from consent.service import ConsentService
from directory.names import NAME, SUBJECT
from directory.store import AgencyEntry, DirectoryStore
from policies.reviews import Review, ReviewStore
from policies.rules import Decision, minimise
from policies.service import PolicyService

EXCHANGE_FIELDS = {"subject", "category", "purpose", "params", "review", "justification"}
MAX_JUSTIFICATION = 2000


@dataclass(frozen=True)
class ExchangeRequest:
    subject: str
    category: str
    purpose: str
    params: dict[str, Any] = field(default_factory=dict)
    review: str | None = None
    justification: str | None = None


def parse_json_object(body: bytes, content_type: str) -> dict[str, Any]:
    """The request body as a JSON object, or the problem saying why it is not one."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise errors.UnsupportedMediaType(f"Content-Type must be application/json, not {content_type or 'absent'!r}")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise errors.Malformed("the body is not valid UTF-8 JSON") from error
    if not isinstance(document, dict):
        raise errors.Invalid("the body must be a JSON object")
    return document


def validate(document: dict[str, Any]) -> ExchangeRequest:
    unknown = sorted(set(document) - EXCHANGE_FIELDS)
    if unknown:
        raise errors.Invalid(f"unknown fields: {', '.join(unknown)}")
    subject, category, purpose = (document.get(name) for name in ("subject", "category", "purpose"))
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise errors.Invalid("subject must be 1 to 64 characters of [0-9A-Za-z.-]")
    for name, value in (("category", category), ("purpose", purpose)):
        if not isinstance(value, str) or not NAME.fullmatch(value):
            raise errors.Invalid(f"{name} must be a name of [a-z0-9-], at most 63 characters")
    params = document.get("params", {})
    if not isinstance(params, dict):
        raise errors.Invalid("params must be an object")
    review = document.get("review")
    if review is not None and (not isinstance(review, str) or len(review) > 40):
        raise errors.Invalid("review must be a review id")
    justification = document.get("justification")
    if justification is not None and (not isinstance(justification, str) or len(justification) > MAX_JUSTIFICATION):
        raise errors.Invalid(f"justification must be text of at most {MAX_JUSTIFICATION} characters")
    assert isinstance(category, str) and isinstance(purpose, str)
    return ExchangeRequest(subject, category, purpose, params, review, justification)


def zone_gate(decision: Decision) -> None:
    """Black stops here; grey and white go on."""
    if decision.zone == "black":
        rule = "no rule matches" if decision.rule is None else f"rule {decision.rule.id}"
        raise errors.BlackZone(f"the sharing policy forbids this exchange ({rule}, version {decision.version})")


def consent_gate(consents: list[Consent], requester: str, request: ExchangeRequest, at: datetime) -> Consent:
    consent = covering_consent(consents, requester, request.category, request.purpose, at)
    if consent is None:
        raise errors.NoConsent(
            f"no active consent lets {requester!r} receive {request.category!r} for {request.purpose!r}"
        )
    return consent


class ExchangePipeline:
    def __init__(
        self,
        directory: DirectoryStore,
        policies: PolicyService,
        consents: ConsentService,
        reviews: ReviewStore,
        holders: HolderClient,
        audit: AuditLog,
    ) -> None:
        self._directory = directory
        self._policies = policies
        self._consents = consents
        self._reviews = reviews
        self._holders = holders
        self._audit = audit

    async def run(self, requester: str, document: dict[str, Any], entry: AuditEntry) -> tuple[int, dict[str, Any]]:
        at = datetime.now(UTC)
        entry.exchange = str(uuid.uuid4())
        request = validate(document)
        entry.subject, entry.category, entry.purpose = request.subject, request.category, request.purpose
        await self.check_purpose(request)
        await self.check_relationship(requester, request, at)
        holder = await self.find_holder(request, at)
        entry.holder = holder.id
        decision = await self._policies.decide(requester, request.category, request.purpose)
        entry.zone, entry.policy_version = decision.zone, decision.version
        entry.rule_id = None if decision.rule is None else decision.rule.id
        entry.fields = None if decision.fields is None else list(decision.fields)
        zone_gate(decision)
        if decision.zone == "grey":
            entry.review_id = request.review
            review = await self.grey_review(requester, request, decision, entry.exchange, at)
            entry.review_id = review.id
            if review.status == "pending":
                return 202, {"exchange": entry.exchange, "zone": "grey", "review": review.id, "status": "pending"}
        if decision.consent:
            consent = consent_gate(await self._consents.history(request.subject), requester, request, at)
            entry.consent_id = consent.id
        data = await self.forward(requester, request, holder, entry)
        return 200, {
            "exchange": entry.exchange,
            "zone": decision.zone,
            "holder": holder.id,
            "data": minimise(data, decision.fields),
        }

    async def check_purpose(self, request: ExchangeRequest) -> None:
        if not await self._directory.purpose_exists(request.purpose):
            raise errors.UnknownPurpose(f"purpose {request.purpose!r} is not registered")

    async def check_relationship(self, requester: str, request: ExchangeRequest, at: datetime) -> None:
        if await self._directory.relationship(requester, request.subject, at) is None:
            raise errors.NoRelationship(f"{requester!r} has no current relationship with this subject")

    async def find_holder(self, request: ExchangeRequest, at: datetime) -> AgencyEntry:
        if not await self._directory.category_exists(request.category):
            raise errors.UnknownCategory(f"category {request.category!r} is not registered")
        holders = await self._directory.holders(request.subject, request.category, at)
        if not holders:
            raise errors.NoHolder(f"no active agency holds {request.category!r} for this subject")
        return holders[0]

    async def grey_review(
        self, requester: str, request: ExchangeRequest, decision: Decision, exchange: str, at: datetime
    ) -> Review:
        """A new pending review, the still-pending one named, or the approved one spent on this exchange."""
        if request.review is None:
            return await self.open_review(requester, request, decision, exchange, at)
        review = await self._reviews.get(request.review)
        if review is None or not review.covers(requester, request.subject, request.category, request.purpose):
            raise errors.UnknownReview(f"no review {request.review!r} for this requester, subject and question")
        if review.status == "rejected":
            raise errors.ReviewRejected(f"review rejected: {review.decision_reason}")
        if review.status == "pending":
            return review
        if not await self._reviews.use(review.id, exchange, at):
            raise errors.ReviewExpired("an approved review allows one exchange within its validity")
        return review

    async def open_review(
        self, requester: str, request: ExchangeRequest, decision: Decision, exchange: str, at: datetime
    ) -> Review:
        assert decision.rule is not None
        review = Review(
            str(uuid.uuid4()),
            exchange,
            requester,
            request.subject,
            request.category,
            request.purpose,
            decision.rule.id,
            decision.version,
            request.justification,
            "pending",
            at,
        )
        await self._reviews.open(review)
        return review

    async def forward(
        self, requester: str, request: ExchangeRequest, holder: AgencyEntry, entry: AuditEntry
    ) -> dict[str, Any]:
        await self._audit.reserve(entry)
        return await self._holders.records(
            holder,
            {
                "exchange": entry.exchange,
                "requester": requester,
                "subject": request.subject,
                "category": request.category,
                "purpose": request.purpose,
                "params": request.params,
            },
        )
