"""Emergency access ("break the glass") over HTTP, on SQLite and PostgreSQL: delivered without consent where
the rule allows it, flagged in the audit log, reviewed after the fact, limited per agency and day; refused
where the rule does not allow it; let through over a refusal, and flagged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.client import HubProblem
from adapters.examples.demo_agencies import ANNA
from broker.cli.demo import FIRE, DemoWorld, demo_world

CIVIL = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}


@pytest.fixture
async def world(tmp_path: Path, database_url: str) -> AsyncIterator[DemoWorld]:
    """The demo world with an allowance of two emergency accesses per agency and day."""
    async with demo_world(tmp_path / "state", database_url, emergency_per_day=2) as running:
        yield running


async def emergency_reviews(world: DemoWorld, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
    _, queue = await world.client("privacy-office", session).call("GET", "/v1/reviews?status=pending")
    return [review for review in queue["reviews"] if review["kind"] == "emergency"]


async def test_delivered_without_consent_flagged_reviewed_and_limited(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    municipality = world.client("municipality-leuven", session)
    with pytest.raises(HubProblem, match="no-consent"):
        await municipality.exchange(**CIVIL)
    status, answer = await municipality.call("POST", "/v1/exchanges", {**CIVIL, "emergency": FIRE})
    assert status == 200 and answer["data"] == {
        "name": "Anna Peeters",
        "address": "Bondgenotenlaan 12, 3000 Leuven",
        "household_size": 4,
    }
    review_id = answer["emergency"]["review"]
    assert answer["emergency"]["remaining_today"] == 1
    [record] = await world.hub.audit.records(exchange=answer["exchange"])
    assert (record.outcome, record.emergency, record.consent_id, record.review_id, record.rule_id) == (
        "delivered",
        True,
        None,
        review_id,
        "r-emergency-1",
    )
    [review] = await emergency_reviews(world, session)
    assert (review["review"], review["exchange"], review["status"], review["requester"]) == (
        review_id,
        answer["exchange"],
        "pending",
        "municipality-leuven",
    )
    assert review["justification"] == f"emergency: {FIRE['reason']}"

    second = await municipality.exchange(**CIVIL, emergency=FIRE)
    assert second.status == 200
    with pytest.raises(HubProblem) as over:
        await municipality.exchange(**CIVIL, emergency=FIRE)
    assert (over.value.status, over.value.name) == (429, "emergency-limit")
    assert over.value.retry_after is not None and 1 <= over.value.retry_after <= 86400
    [refused] = await world.hub.audit.records(exchange=over.value.exchange)
    assert (refused.outcome, refused.reason, refused.emergency) == ("refused", "emergency-limit", True)
    assert len(await emergency_reviews(world, session)) == 2  # none for the refused third


async def test_refused_where_the_rule_does_not_allow_it(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    with pytest.raises(HubProblem) as refused:
        await world.client("family-benefits", session).exchange(**CIVIL, emergency=FIRE)  # rule r-1
    assert (refused.value.status, refused.value.name) == (403, "emergency-not-allowed")
    [record] = await world.hub.audit.records(exchange=refused.value.exchange)
    assert (record.emergency, record.rule_id) == (True, "r-1")
    assert await emergency_reviews(world, session) == []
    # nothing was counted: the municipality still has its whole allowance
    municipality = world.client("municipality-leuven", session)
    _, answer = await municipality.call("POST", "/v1/exchanges", {**CIVIL, "emergency": FIRE})
    assert answer["emergency"]["remaining_today"] == 1


async def test_an_emergency_goes_through_a_refusal_and_says_so(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    _, refusal = await world.client("citizen-portal", session).call(
        "POST", "/v1/refusals", {"subject": ANNA, "agency": "municipality-leuven"}
    )
    municipality = world.client("municipality-leuven", session)
    with pytest.raises(HubProblem, match="consent-refused"):
        await municipality.exchange(**CIVIL)
    delivered = await municipality.exchange(**CIVIL, emergency=FIRE)
    [record] = await world.hub.audit.records(exchange=delivered.exchange)
    assert (record.emergency, record.consent_id) == (True, refusal["refusal"])
    [review] = await emergency_reviews(world, session)
    assert f"refusal {refusal['refusal']}" in review["justification"]


async def test_concurrent_emergencies_never_exceed_the_allowance(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    municipality = world.client("municipality-leuven", session)
    outcomes = await asyncio.gather(
        *(municipality.exchange(**CIVIL, emergency=FIRE) for _ in range(6)), return_exceptions=True
    )
    delivered = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, HubProblem)]
    assert (len(delivered), len(refused)) == (2, 4)
    assert {problem.name for problem in refused} == {"emergency-limit"}


async def test_the_daily_count_is_one_slot_per_use_under_contention(world: DemoWorld) -> None:
    at = datetime.now(UTC)
    counted = await asyncio.gather(
        *(world.hub.consents.use_emergency("tax-authority", str(uuid.uuid4()), at, 3) for _ in range(8))
    )
    assert sorted(used for used in counted if used is not None) == [1, 2, 3]
    assert counted.count(None) == 5


async def test_an_emergency_does_not_skip_the_grey_zone(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    admin = world.client("admin-desk", session)
    await admin.call("DELETE", "/v1/policies/r-3", {"reason": "replaced by r-3e"})
    rule = {
        "id": "r-3e",
        "requester": "agency:family-benefits",
        "category": "employment-status",
        "purpose": "benefit-eligibility",
        "zone": "grey",
        "consent": True,
        "emergency": True,
        "ground": "Family Benefits Decree, art. 22; Organic Law of 8 July 1976, art. 60",
    }
    await admin.call("POST", "/v1/policies", {"rule": rule, "reason": "grey, consent, emergency allowed"})
    agency = world.client("family-benefits", session)
    employment = {"subject": ANNA, "category": "employment-status", "purpose": "benefit-eligibility"}
    pending = await agency.exchange(**employment, emergency=FIRE)
    assert pending.status == 202 and await emergency_reviews(world, session) == []
    await world.client("privacy-office", session).call(
        "POST", f"/v1/reviews/{pending.review}/decision", {"decision": "approve", "reason": "urgent file"}
    )
    status, answer = await agency.call(
        "POST", "/v1/exchanges", {**employment, "review": pending.review, "emergency": FIRE}
    )
    assert (status, answer["zone"], answer["emergency"]["remaining_today"]) == (200, "grey", 1)
    [record] = await world.hub.audit.records(exchange=answer["exchange"])
    assert (record.emergency, record.consent_id, record.review_id) == (True, None, answer["emergency"]["review"])
    # the privacy officer finds the access justified; that judgement never allows another exchange
    emergency_review = answer["emergency"]["review"]
    await world.client("privacy-office", session).call(
        "POST", f"/v1/reviews/{emergency_review}/decision", {"decision": "approve", "reason": "justified"}
    )
    with pytest.raises(HubProblem, match="unknown-review"):
        await agency.exchange(**employment, review=emergency_review)
