"""The grey-zone review queue and privacy officers' decisions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.base import errors
from broker.http.policies import reason_of
from broker.http.replies import json_body, record_id, reply
from policies.reviews import Review
from policies.rules import Rule, parse_rule
from policies.store import Proposal


async def reviews(request: web.Request) -> web.Response:
    status = request.query.get("status", "pending")
    if status not in ("pending", "approved", "rejected", "used"):
        raise errors.Invalid("status is one of pending, approved, rejected, used")
    found = await request.app[HUB].reviews.with_status(status)
    return reply({"reviews": [review.as_json() for review in found]})


async def decide_review(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    review_id = entry.review_id = record_id(request, errors.UnknownReview)
    document = json_body(request)
    decision, reason = document.get("decision"), document.get("reason")
    if set(document) != {"decision", "reason"} or decision not in ("approve", "reject"):
        raise errors.Invalid('a decision is {"decision": "approve" | "reject", "reason": "..."}')
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise errors.Invalid("a decision needs its reason, at most 2000 characters")
    review = await hub.reviews.decide(
        review_id, decision == "approve", reason, request[PRINCIPAL].id, datetime.now(UTC)
    )
    entry.subject = review.subject
    entry.category, entry.purpose, entry.rule_id = review.category, review.purpose, review.rule_id
    return reply(review.as_json())


async def propose_rule(request: web.Request) -> web.Response:
    """Ask the administrators to make a decided review's outcome a standing rule."""
    hub, entry, document = request.app[HUB], request[AUDIT], json_body(request)
    reason = reason_of(document, {"zone", "ground"})
    review = await hub.reviews.get(request.match_info["id"])
    if review is None:
        raise errors.UnknownReview(f"no review {request.match_info['id']!r}")
    if review.status == "pending":
        raise errors.Conflict("decide the review before proposing a standing rule")
    zone = document.get("zone", "black" if review.status == "rejected" else "white")
    proposal = Proposal(
        str(uuid.uuid4()),
        review.id,
        standing_rule(review, zone, document.get("ground")),
        reason,
        request[PRINCIPAL].id,
        datetime.now(UTC),
    )
    await hub.policies.propose(proposal)
    entry.review_id, entry.subject, entry.rule_id = review.id, review.subject, proposal.rule.id
    return reply(proposal.as_json(), 201)


def standing_rule(review: Review, zone: object, ground: object) -> Rule:
    """The rule that would have decided this review's question without a human, on `ground` (required unless
    black: the ground of the grey rule that sent the question to review allowed a case-by-case decision, not a
    standing one)."""
    return parse_rule(
        {
            "id": f"p-{review.id[:8]}",
            "requester": f"agency:{review.requester}",
            "category": review.category,
            "purpose": review.purpose,
            "zone": zone,
            "ground": ground,
        }
    )


ROUTES = [
    web.get("/v1/reviews", reviews),
    web.post("/v1/reviews/{id}/decision", decide_review),
    web.post("/v1/reviews/{id}/propose", propose_rule),
]
