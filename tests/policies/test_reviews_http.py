"""The grey cycle over HTTP: 202 pending → a privacy officer approves → 200 once → 409 review-used after, 403
review-expired once its validity has passed; and rejection, whose reason stays with the officers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from adapters.client import HubProblem
from adapters.examples.demo_agencies import ANNA, JAN
from broker.cli.demo import DemoWorld
from policies.reviews import APPROVAL_VALIDITY

GREY = {"subject": JAN, "category": "employment-status", "purpose": "benefit-eligibility"}


async def test_approved_review_allows_one_repeat(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    agency, officer = world.client("family-benefits", session), world.client("privacy-office", session)
    pending = await agency.exchange(**GREY)
    assert (pending.status, pending.zone) == (202, "grey") and pending.review is not None
    _, queue = await officer.call("GET", "/v1/reviews?status=pending")
    assert [review["review"] for review in queue["reviews"]] == [pending.review]
    still = await agency.exchange(**GREY, review=pending.review)
    assert (still.status, still.review) == (202, pending.review)
    _, decided = await officer.call(
        "POST",
        f"/v1/reviews/{pending.review}/decision",
        {"decision": "approve", "reason": "job-seeker allowance file 2026/88"},
    )
    assert decided["status"] == "approved" and decided["decided_by"] == "privacy-office"
    delivered = await agency.exchange(**GREY, review=pending.review)
    assert (delivered.status, delivered.holder, delivered.data) == (
        200,
        "employment-office",
        {"status": "job-seeker", "since": "2026-03-01", "contract": None},
    )
    with pytest.raises(HubProblem) as spent:
        await agency.exchange(**GREY, review=pending.review)
    assert (spent.value.status, spent.value.name) == (409, "review-used")
    with pytest.raises(HubProblem) as other_subject:
        await agency.exchange(**{**GREY, "subject": ANNA}, review=pending.review)
    assert (other_subject.value.status, other_subject.value.name) == (404, "unknown-review")
    records = await world.hub.audit.records(review_id=pending.review)
    assert [(record.kind, record.status) for record in records] == [
        ("exchange", 202),
        ("exchange", 202),
        ("review", 200),
        ("exchange", 200),
        ("exchange", 409),
        ("exchange", 404),
    ]


async def test_an_approval_past_its_validity_has_expired(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    agency = world.client("family-benefits", session)
    pending = await agency.exchange(**GREY)
    assert pending.review is not None
    long_ago = datetime.now(UTC) - APPROVAL_VALIDITY - timedelta(minutes=1)
    await world.hub.reviews.decide(
        pending.review, True, "job-seeker allowance file 2026/88", "privacy-office", long_ago
    )
    with pytest.raises(HubProblem) as expired:
        await agency.exchange(**GREY, review=pending.review)
    assert (expired.value.status, expired.value.name) == (403, "review-expired")


async def test_a_rejection_does_not_tell_the_requester_why(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    agency, officer = sqlite_world.client("family-benefits", session), sqlite_world.client("privacy-office", session)
    pending = await agency.exchange(**GREY)
    with pytest.raises(HubProblem) as no_reason:
        await officer.call("POST", f"/v1/reviews/{pending.review}/decision", {"decision": "reject", "reason": " "})
    assert no_reason.value.status == 422
    await officer.call(
        "POST",
        f"/v1/reviews/{pending.review}/decision",
        {"decision": "reject", "reason": "no benefit file open for this person"},
    )
    with pytest.raises(HubProblem) as rejected:
        await agency.exchange(**GREY, review=pending.review)
    assert (rejected.value.status, rejected.value.name) == (403, "review-rejected")
    assert "no benefit file open" not in json.dumps(rejected.value.document)
    _, decided = await officer.call("GET", "/v1/reviews?status=rejected")
    [review] = decided["reviews"]
    assert review["decision_reason"] == "no benefit file open for this person"
    records = await sqlite_world.hub.audit.records(review_id=pending.review)
    assert [(record.kind, record.status, record.reason) for record in records][-2:] == [
        ("review", 200, None),
        ("exchange", 403, "review-rejected"),
    ]
    with pytest.raises(HubProblem) as twice:
        await officer.call("POST", f"/v1/reviews/{pending.review}/decision", {"decision": "approve", "reason": "x"})
    assert twice.value.status == 409


async def test_only_privacy_officers_decide(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    pending = await sqlite_world.client("family-benefits", session).exchange(**GREY)
    for principal in ("family-benefits", "admin-desk", "citizen-portal"):
        with pytest.raises(HubProblem) as refused:
            await sqlite_world.client(principal, session).call(
                "POST", f"/v1/reviews/{pending.review}/decision", {"decision": "approve", "reason": "x"}
            )
        assert (refused.value.status, refused.value.name) == (403, "forbidden")
    assert [review.id for review in await sqlite_world.hub.reviews.with_status("pending")] == [pending.review]
