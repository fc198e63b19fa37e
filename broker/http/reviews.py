"""The grey-zone review queue and privacy officers' decisions."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from broker import errors
from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.http.replies import json_body, reply
from policies.reviews import ReviewNotPending


async def reviews(request: web.Request) -> web.Response:
    status = request.query.get("status", "pending")
    if status not in ("pending", "approved", "rejected", "used"):
        raise errors.Invalid("status is one of pending, approved, rejected, used")
    found = await request.app[HUB].reviews.with_status(status)
    return reply({"reviews": [review.as_json() for review in found]})


async def decide_review(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    review_id = entry.review_id = request.match_info["id"]
    document = json_body(request)
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


ROUTES = [web.get("/v1/reviews", reviews), web.post("/v1/reviews/{id}/decision", decide_review)]
