"""The exchange pipeline, in PROTOCOL.md's order.

authenticate (broker/app.py, before any handler) → validate → relationship → holder → zone → consent (or
an emergency access, where the rule allows one) → forward → verify the holder's answer → commit the audit
record → reply. The last two steps are the audit middleware's in broker/app.py, the same for every
endpoint: the answer leaves only after its record is committed. Each step below is a function that raises
the problem that stops the exchange.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from time import perf_counter
from typing import Any

from broker import errors, wire
from broker.audit import AuditEntry, AuditLog
from broker.forwarding import HolderClient
from consent.matching import Consent, Refusal, blocking_refusal, covering_consent
from consent.service import ConsentService
from directory.names import NAME, SUBJECT
from directory.store import AgencyEntry, DirectoryStore
from policies.reviews import Review, ReviewStore
from policies.rules import Decision, minimise
from policies.service import PolicyService

EXCHANGE_FIELDS = {"subject", "category", "purpose", "params", "review", "justification", "emergency"}
MAX_JUSTIFICATION = 2000
MAX_EMERGENCY_REASON = 1000


@dataclass(frozen=True)
class ExchangeRequest:
    subject: str
    category: str
    purpose: str
    params: dict[str, Any] = field(default_factory=dict)
    review: str | None = None
    justification: str | None = None
    emergency: str | None = None  # the reason given for a break-the-glass access; None: an ordinary exchange


def parse_json_object(body: bytes, content_type: str) -> dict[str, Any]:
    """The request body as a JSON object, or the problem saying why it is not one."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise errors.UnsupportedMediaType(f"Content-Type must be application/json, not {content_type or 'absent'!r}")
    document = wire.loads(body)
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
    emergency = document.get("emergency")
    if emergency is not None:
        emergency = emergency_reason(emergency)
    assert isinstance(category, str) and isinstance(purpose, str)
    return ExchangeRequest(subject, category, purpose, params, review, justification, emergency)


def emergency_reason(value: object) -> str:
    """The reason of an `"emergency": {"reason": "..."}` member."""
    reason = value.get("reason") if isinstance(value, dict) and set(value) == {"reason"} else None
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_EMERGENCY_REASON:
        raise errors.Invalid(
            f'emergency must be {{"reason": "..."}}, a reason of 1 to {MAX_EMERGENCY_REASON} characters'
        )
    return reason


def zone_gate(decision: Decision) -> None:
    """Black stops here; grey and white go on."""
    if decision.zone == "black":
        rule = "no rule matches" if decision.rule is None else f"rule {decision.rule.id}"
        raise errors.BlackZone(f"the sharing policy forbids this exchange ({rule}, version {decision.version})")


def emergency_gate(decision: Decision, request: ExchangeRequest) -> None:
    """An emergency access is allowed only where the deciding rule says so."""
    if request.emergency is not None and (decision.rule is None or not decision.rule.emergency):
        rule = "no rule" if decision.rule is None else f"rule {decision.rule.id}"
        raise errors.EmergencyNotAllowed(f"{rule} (version {decision.version}) does not allow emergency access")


def consent_gate(
    consents: list[Consent], refusals: list[Refusal], requester: str, request: ExchangeRequest, at: datetime
) -> Consent | Refusal:
    """The consent the exchange goes on under, or the refusal that stops it (which beats any consent)."""
    refusal = blocking_refusal(refusals, requester, request.category, at)
    if refusal is not None:
        return refusal
    consent = covering_consent(consents, requester, request.category, request.purpose, at)
    if consent is None:
        raise errors.NoConsent(
            f"no active consent lets {requester!r} receive {request.category!r} for {request.purpose!r}"
        )
    return consent


@dataclass(frozen=True)
class BrokenGlass:
    """An emergency access let through: the refusal it overrides, if any, and the uses left today."""

    overridden: Refusal | None
    remaining: int


def seconds_to_next_day(at: datetime) -> int:
    """Until the next UTC midnight, when each agency's count of emergency accesses starts again."""
    midnight = datetime.combine(at.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
    return max(1, math.ceil((midnight - at).total_seconds()))


class ExchangePipeline:
    def __init__(
        self,
        directory: DirectoryStore,
        policies: PolicyService,
        consents: ConsentService,
        reviews: ReviewStore,
        holders: HolderClient,
        audit: AuditLog,
        emergency_per_day: int,
    ) -> None:
        self._directory = directory
        self._policies = policies
        self._consents = consents
        self._reviews = reviews
        self._holders = holders
        self._audit = audit
        self._emergency_per_day = emergency_per_day

    async def run(self, requester: str, document: dict[str, Any], entry: AuditEntry) -> tuple[int, dict[str, Any]]:
        at = datetime.now(UTC)
        entry.exchange = str(uuid.uuid4())
        request = validate(document)
        entry.subject, entry.category, entry.purpose = request.subject, request.category, request.purpose
        entry.emergency = request.emergency is not None
        await self.check_purpose(request)
        await self._directory.prefetch(requester, request.subject, request.category)  # the next two steps' rows
        await self.check_relationship(requester, request, at)
        holder = await self.find_holder(request, at)
        entry.holder = holder.id
        decision = await self._policies.decide(requester, request.category, request.purpose)
        entry.zone, entry.policy_version = decision.zone, decision.version
        entry.rule_id = None if decision.rule is None else decision.rule.id
        entry.fields = None if decision.fields is None else list(decision.fields)
        zone_gate(decision)
        emergency_gate(decision, request)
        if decision.zone == "grey":
            entry.review_id = request.review
            review = await self.grey_review(requester, request, decision, entry.exchange, at)
            entry.review_id = review.id
            if review.status == "pending":
                return 202, {"exchange": entry.exchange, "zone": "grey", "review": review.id, "status": "pending"}
        glass = await self.check_consent(requester, request, decision, entry, at)
        data = await self.forward(requester, request, holder, entry)
        answer = {
            "exchange": entry.exchange,
            "zone": decision.zone,
            "holder": holder.id,
            "data": minimise(data, decision.fields),
        }
        if glass is not None:
            answer["emergency"] = await self.emergency_review(requester, request, decision, entry, glass, at)
        return 200, answer

    async def check_consent(
        self, requester: str, request: ExchangeRequest, decision: Decision, entry: AuditEntry, at: datetime
    ) -> BrokenGlass | None:
        """Where the rule requires consent: a refusal stops the exchange, else the most specific covering
        consent lets it go on. A rule needing no consent (a legal mandate) is not subject to refusals.

        An emergency access goes on without consent, counted against the requester's daily allowance, even
        over a refusal: the refusal it overrides is named in the audit record and in the review to come.
        The store is read afresh for every exchange, so a withdrawal made on any hub process counts at once.
        """
        if request.emergency is None and not decision.consent:
            return None
        consents, refusals = (
            await self._consents.for_exchange(request.subject, requester) if decision.consent else ([], [])
        )
        if request.emergency is not None:
            assert entry.exchange is not None
            refusal = blocking_refusal(refusals, requester, request.category, at)
            entry.consent_id = None if refusal is None else refusal.id
            used = await self._consents.use_emergency(requester, entry.exchange, at, self._emergency_per_day)
            if used is None:
                raise errors.EmergencyLimit(
                    f"{requester!r} has used its {self._emergency_per_day} emergency accesses for today (UTC)",
                    headers={"Retry-After": str(seconds_to_next_day(at))},
                )
            return BrokenGlass(refusal, self._emergency_per_day - used)
        verdict = consent_gate(consents, refusals, requester, request, at)
        entry.consent_id = verdict.id
        if isinstance(verdict, Refusal):
            scope = "everything" if verdict.categories is None else f"{request.category!r}"
            raise errors.ConsentRefused(f"the subject refused sharing {scope} with {requester!r}")
        return None

    async def emergency_review(
        self,
        requester: str,
        request: ExchangeRequest,
        decision: Decision,
        entry: AuditEntry,
        glass: BrokenGlass,
        at: datetime,
    ) -> dict[str, Any]:
        """Open the after-the-fact review a privacy officer makes of a delivered emergency access; what the
        answer says about it."""
        assert decision.rule is not None and request.emergency is not None and entry.exchange is not None
        overridden = glass.overridden
        note = "" if overridden is None else f" [the subject had refused this sharing: refusal {overridden.id}]"
        review = Review(
            str(uuid.uuid4()),
            entry.exchange,
            requester,
            request.subject,
            request.category,
            request.purpose,
            decision.rule.id,
            decision.version,
            f"emergency: {request.emergency}{note}",
            "pending",
            at,
            kind="emergency",
        )
        await self._reviews.open(review)
        entry.review_id = review.id
        return {"review": review.id, "remaining_today": glass.remaining}

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
        if (
            review is None
            or review.kind != "grey"  # an emergency review judges an access after the fact; it never allows one
            or not review.covers(requester, request.subject, request.category, request.purpose)
        ):
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
        started = perf_counter()
        try:
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
        finally:
            entry.holder_ms = (perf_counter() - started) * 1000
