"""The exchange pipeline: the I/O around the pure gates of broker/exchange/gates.py, in PROTOCOL.md's order.

1. authenticate (broker/http/middleware.py, before any handler); the request's nonce is claimed with the first
   write the exchange makes (the record reserved before forwarding, or the refusal's record), or before a review
   or an emergency access is written, so that a replay changes nothing;
2. validate the request, its purpose registered, and decide its rule (from memory);
3. read in one round trip what the next steps check (ExchangePipeline.read), and check the requester's
   relationship with the subject;
4. find the holder in the directory;
5. apply the sharing policy: black stops; where the category is sealed, the requester's sealing key is found (none
   stops); grey waits for a privacy officer's review (PendingReview);
6. check consent where the rule requires it, or let an emergency access through where the rule allows one;
7. forward to the holder's adapter, which verifies the holder's signed answer (broker/exchange/forwarding.py): the
   data, minimised to the rule's fields, or for a sealed category the holder's envelope, passed on as signed;
8. commit the audit record and reply: the audit middleware's, the same for every endpoint, so the answer
   (Delivered) leaves only after its record is committed.

A step that stops the exchange raises its problem (broker.base.errors): refusals are the protocol's vocabulary.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, NamedTuple

from sqlalchemy import Connection

from broker.audit.log import AuditEntry, AuditLog
from broker.base import errors
from broker.base.signing import public_key_pem
from broker.base.store import Lane
from broker.base.store.plans import NOTHING
from broker.exchange.authentication import Principal
from broker.exchange.forwarding import HolderClient, Sealed
from broker.exchange.gates import (
    BrokenGlass,
    ExchangeRequest,
    consent_gate,
    emergency_gate,
    seconds_to_next_day,
    validate,
    zone_gate,
)
from consent.matching import Consent, Refusal, blocking_refusal
from consent.service import ConsentService
from directory.store import (
    AgencyEntry,
    DirectoryStore,
    SealingKey,
    Versions,
    capacity_in_force,
    holders_in_force,
)
from directory.store import Facts as DirectoryFacts
from policies.reviews import Review, ReviewStore
from policies.rules import Decision, minimise
from policies.service import PolicyService

REVIEW_IDS = uuid.UUID("6b1c2a53-1d0e-4f57-9a44-52b1c0a4a1e7")  # the namespace of a grey review's id, from its exchange


@dataclass(frozen=True)
class Delivered:
    """The holder's answer, minimised to the fields the rule allows, for the requester."""

    answer: dict[str, Any]


@dataclass(frozen=True)
class PendingReview:
    """A grey-zone exchange waiting for a privacy officer's decision; the answer names the review."""

    answer: dict[str, Any]


Outcome = Delivered | PendingReview


class Seal(NamedTuple):
    """A sealed category's forward: the fields the rule allows (None: all) and the requester's key to seal to."""

    fields: tuple[str, ...] | None
    recipient: SealingKey


class Cleared(NamedTuple):
    """An exchange past every check: the holder to forward it to, the emergency access it is, if one, and how its
    answer is sealed, if it is."""

    holder: AgencyEntry
    glass: BrokenGlass | None
    seal: Seal | None


ConsentsOf = dict[str, tuple[list[Consent], list[Refusal]]]  # a subject's consents and refusals, by subject


class Facts(NamedTuple):
    """What an exchange reads from the store, in one round trip (ExchangePipeline.read)."""

    directory: DirectoryFacts
    policy_version: int
    consents: tuple[list[Consent], list[Refusal]] | None  # None where the rule asks for no consent


class ExchangePipeline:
    def __init__(
        self,
        lane: Lane,
        confirm: Callable[[Principal, datetime], Awaitable[None]],
        directory: DirectoryStore,
        policies: PolicyService,
        consents: ConsentService,
        reviews: ReviewStore,
        holders: HolderClient,
        audit: AuditLog,
        emergency_per_day: int,
    ) -> None:
        self._lane = lane  # the exchange's one read
        self._confirm = confirm  # the request's key and principal checked again (Authenticator.confirm)
        self._directory = directory
        self._policies = policies
        self._consents = consents
        self._reviews = reviews
        self._holders = holders
        self._audit = audit
        self._emergency_per_day = emergency_per_day

    async def run(self, principal: Principal, document: dict[str, Any], entry: AuditEntry) -> Outcome:
        """The exchange `principal` asks for in `document`, its steps recorded on `entry`."""
        at = datetime.now(UTC)
        requester = principal.id
        entry.exchange = str(uuid.uuid4())
        request = await self.question(document, entry)
        decision = await self.rule(requester, request)
        facts, decision = await self.read(principal, request, decision, at)
        cleared = await self.decide(requester, request, decision, facts, entry, at)
        if isinstance(cleared, PendingReview):
            return cleared
        answered = await self.forward(requester, request, cleared, entry)
        answer = {
            "exchange": entry.exchange,
            "zone": decision.zone,
            "holder": cleared.holder.id,
            **released(answered, decision, entry),
        }
        if cleared.glass is not None:
            answer["emergency"] = await self.emergency_review(requester, request, decision, entry, cleared.glass, at)
        return Delivered(answer)

    async def rule(self, requester: str, request: ExchangeRequest) -> Decision:
        """The sharing rule's decision for the request, kept in memory until the rules change."""
        return await self._policies.decide(requester, request.category, request.purpose)

    async def question(self, document: dict[str, Any], entry: AuditEntry) -> ExchangeRequest:
        """The request `document` asks, validated, its purpose registered; recorded on `entry`."""
        request = validate(document)
        entry.subject, entry.category, entry.purpose = request.subject, request.category, request.purpose
        entry.emergency = request.emergency is not None
        await self.check_purpose(request)
        return request

    async def decide(
        self,
        requester: str,
        request: ExchangeRequest,
        decision: Decision,
        facts: Facts,
        entry: AuditEntry,
        at: datetime,
    ) -> Cleared | PendingReview:
        """Steps 3 to 6 on what was read (`facts`): the holder to forward to, or the review the exchange waits for;
        a refusal raises its problem. Recorded on `entry`, which carries its exchange id."""
        assert entry.exchange is not None  # noqa: S101 -- the caller allocated it; for the type checker
        self.check_relationship(requester, facts, at)
        holder = await self.find_holder(request, facts, at)
        entry.holder = holder.id
        entry.zone, entry.policy_version = decision.zone, decision.version
        if decision.rule is not None:
            entry.rule_id, entry.ground = decision.rule.id, decision.rule.ground
        entry.fields = None if decision.fields is None else list(decision.fields)
        zone_gate(decision)
        emergency_gate(decision, request)
        seal = await self.sealing(requester, request, decision, at)
        if decision.zone == "grey":
            await self._audit.claim(entry)
            entry.review_id = request.review
            review = await self.grey_review(requester, request, decision, entry.exchange, at)
            entry.review_id = review.id
            if review.status == "pending":
                return PendingReview(
                    {"exchange": entry.exchange, "zone": "grey", "review": review.id, "status": "pending"}
                )
        glass = await self.check_consent(requester, request, decision, entry, at, facts.consents or ([], []))
        return Cleared(holder, glass, seal)

    async def read(
        self, principal: Principal, request: ExchangeRequest, decision: Decision, at: datetime
    ) -> tuple[Facts, Decision]:
        """One round trip brings what the next steps check, read afresh: the directory's and the rules' versions,
        the relationship, the holders, and the subject's consents and refusals where the rule asks for consent.
        Where a version moved since this process last read it (a write on any hub process), what the request was
        authenticated and decided with is checked again, so the write counts from this exchange on."""
        directory = self._directory.facts(principal.id, request.subject, request.category)
        consents = self._consents.for_exchange(request.subject, principal.id) if decision.consent else NOTHING
        facts = Facts(*await self._lane.plans([directory, self._policies.published(), consents]))
        await self._saw(principal, facts.directory.versions, at)
        if await self._policies.follow(facts.policy_version):
            decision = await self.rule(principal.id, request)
            if decision.consent and facts.consents is None:
                [consents] = await self._lane.plans([self._consents.for_exchange(request.subject, principal.id)])
                facts = facts._replace(consents=consents)
        return facts, decision

    async def read_many(self, principal: Principal, requests: Sequence[ExchangeRequest], at: datetime) -> list[Facts]:
        """`read` for many requests of one principal at once (a window of a batch): each table read once for all
        of them, in one transaction, whatever their number; each request's Facts, its subject's consents and
        refusals always read. The principal is checked again where the directory moved since it was, and the rules
        followed where they moved: decide each request after this read."""
        questions = [(request.subject, request.category) for request in requests]
        held = self._directory.facts_of_many(principal.id, questions)
        published = self._policies.published()
        consenting = self._consents.for_exchanges([request.subject for request in requests], principal.id)

        def together(connection: Connection) -> tuple[dict[tuple[str, str], DirectoryFacts], int, ConsentsOf]:
            return held.on(connection), published.on(connection), consenting.on(connection)

        directory, version, consents = await self._lane.read(together)
        if directory:
            await self._saw(principal, next(iter(directory.values())).versions, at)
        await self._policies.follow(version)
        return [Facts(directory[question], version, consents[question[0]]) for question in questions]

    async def _saw(self, principal: Principal, versions: Versions, at: datetime) -> None:
        """Take the directory's versions a read found; where principals moved since the request was authenticated,
        check its key and principal again."""
        self._directory.saw(versions)
        if versions.principals != principal.as_of:
            await self._confirm(principal, at)

    async def check_purpose(self, request: ExchangeRequest) -> None:
        """Names are kept until the directory's version moves: a purpose not known here is looked for again after
        following the version, so one registered on another hub process counts from the next exchange."""
        if not await self._directory.purpose_exists(request.purpose):
            await self._directory.follow()
        if not await self._directory.purpose_exists(request.purpose):
            raise errors.UnknownPurpose(f"purpose {request.purpose!r} is not registered")

    def check_relationship(self, requester: str, facts: Facts, at: datetime) -> None:
        if capacity_in_force(facts.directory.relationship, at) is None:
            raise errors.NoRelationship(f"{requester!r} has no current relationship with this subject")

    async def find_holder(self, request: ExchangeRequest, facts: Facts, at: datetime) -> AgencyEntry:
        if not await self._directory.category_exists(request.category):
            raise errors.UnknownCategory(f"category {request.category!r} is not registered")
        holders = holders_in_force(facts.directory.holding, at)
        if not holders:
            raise errors.NoHolder(f"no active agency holds {request.category!r} for this subject")
        return holders[0]

    async def sealing(self, requester: str, request: ExchangeRequest, decision: Decision, at: datetime) -> Seal | None:
        """A sealed category's answer goes to the requester's sealing key in force: without one it cannot be
        received, so the exchange stops before anything is asked."""
        if not await self._directory.category_sealed(request.category):
            return None
        recipient = await self._directory.sealing_key(requester, at)
        if recipient is None:
            raise errors.NoSealingKey(f"{request.category!r} is sealed and {requester!r} has no valid sealing key")
        return Seal(decision.fields, recipient)

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
        if review.status == "rejected":  # why is for privacy officers only: the reason stays with the review
            raise errors.ReviewRejected(f"review {review.id!r} was rejected by a privacy officer")
        if review.status == "pending" or (
            review.status == "approved" and await self._reviews.use(review.id, exchange, at)
        ):
            return review
        if review.status == "used" or review.valid_until is None or review.valid_until > at:  # or spent just now
            raise errors.ReviewUsed(f"review {review.id!r} was already used: an approval allows one exchange")
        raise errors.ReviewExpired(f"review {review.id!r} expired at {review.valid_until.isoformat()}")

    async def open_review(
        self, requester: str, request: ExchangeRequest, decision: Decision, exchange: str, at: datetime
    ) -> Review:
        assert decision.rule is not None  # noqa: S101 -- a grey zone is always a rule's
        review_id = str(uuid.uuid5(REVIEW_IDS, exchange))  # one review an exchange, should its decision be repeated
        opened = await self._reviews.get(review_id)
        if opened is not None:  # a batch's line decided again after a restart (broker/batches/runner.py)
            return opened
        review = Review(
            review_id,
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

    async def check_consent(
        self,
        requester: str,
        request: ExchangeRequest,
        decision: Decision,
        entry: AuditEntry,
        at: datetime,
        read: tuple[list[Consent], list[Refusal]],
    ) -> BrokenGlass | None:
        """Where the rule requires consent: a refusal stops the exchange, else the most specific covering
        consent lets it go on. A rule needing no consent (a legal mandate) is not subject to refusals.

        An emergency access goes on without consent, counted against the requester's daily allowance, even
        over a refusal: the refusal it overrides is named in the audit record and in the review to come.
        `read` is what the store held at the start of this exchange (read afresh for every exchange where the
        rule requires consent), so a withdrawal made on any hub process counts from the next one.
        """
        if request.emergency is None and not decision.consent:
            return None
        consents, refusals = read
        if request.emergency is not None:
            assert entry.exchange is not None  # noqa: S101 -- run() set them before this step; for the type checker
            refusal = blocking_refusal(refusals, requester, request.category, at)
            entry.consent_id = None if refusal is None else refusal.id
            await self._audit.claim(entry)
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

    async def forward(
        self, requester: str, request: ExchangeRequest, cleared: Cleared, entry: AuditEntry
    ) -> dict[str, Any] | Sealed:
        await self._audit.reserve(entry)
        started = perf_counter()
        try:
            return await self._holders.records(cleared.holder, forwarded(requester, request, entry, cleared.seal))
        finally:
            entry.holder_ms = (perf_counter() - started) * 1000

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
        assert decision.rule is not None and request.emergency is not None and entry.exchange is not None  # noqa: S101 -- run() set them before this step; for the type checker
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


def forwarded(requester: str, request: ExchangeRequest, entry: AuditEntry, seal: Seal | None) -> dict[str, Any]:
    """What the hub asks the holder for (PROTOCOL.md), with the fields allowed and the key to seal to where the
    category is sealed."""
    payload: dict[str, Any] = {
        "exchange": entry.exchange,
        "requester": requester,
        "subject": request.subject,
        "category": request.category,
        "purpose": request.purpose,
        "params": request.params,
    }
    if seal is not None:
        payload["fields"] = None if seal.fields is None else list(seal.fields)
        payload["recipient"] = {"key_id": seal.recipient.key_id, "public_key": seal.recipient.public_key}
    return payload


def released(answered: dict[str, Any] | Sealed, decision: Decision, entry: AuditEntry) -> dict[str, Any]:
    """What the requester is given of the holder's answer: its `data` minimised to the rule's fields, or its sealed
    answer as the holder signed it with the holder's key (`holder_key`, vouched for by the hub's signature, which
    the requester checks the envelope with); the record keeps the ciphertext's digest."""
    if not isinstance(answered, Sealed):
        return {"data": minimise(answered, decision.fields)}
    entry.sealed_digest = answered.digest
    key = answered.holder_key
    return {
        "sealed": answered.envelope,
        "holder_key": {"key_id": key.key_id, "public_key_pem": public_key_pem(key.public_key)},
    }
