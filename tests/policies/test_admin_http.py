"""Policy administration over HTTP: versioned, reasoned, audited edits that the next exchange follows;
history with diffs, rollback, and reviewers' proposals accepted by administrators."""

from __future__ import annotations

from contextlib import suppress

import aiohttp
import pytest

from adapters.client import HubProblem
from adapters.examples.demo_agencies import ANNA, JAN
from broker.cli.demo import SCENARIO, DemoWorld

HEALTH = {"subject": ANNA, "category": "health-record", "purpose": "benefit-eligibility"}
OPEN_HEALTH = {
    "id": "r-health",
    "requester": "agency:family-benefits",
    "category": "health-record",
    "purpose": "benefit-eligibility",
    "zone": "white",
    "fields": ["disability_recognised"],
    "ground": "decree 2026/41 on disability allowances, art. 3",
}


async def test_edit_history_and_rollback(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    admin, agency = world.client("admin-desk", session), world.client("family-benefits", session)
    with pytest.raises(HubProblem, match="black-zone"):
        await agency.exchange(**HEALTH)
    _, removed = await admin.call("DELETE", "/v1/policies/r-4", {"reason": "disability files need the record"})
    status, added = await admin.call("POST", "/v1/policies", {"rule": OPEN_HEALTH, "reason": "decree 2026/41"})
    assert (status, removed["version"], added["version"]) == (201, 2, 3)
    delivered = await agency.exchange(**HEALTH)
    assert delivered.data == {"disability_recognised": False}  # minimised to the rule's field set
    _, explained = await admin.call(
        "POST",
        "/v1/policies/evaluate",
        {"requester": "family-benefits", "category": "health-record", "purpose": "benefit-eligibility"},
    )
    assert explained == {
        "zone": "white",
        "consent": False,
        "fields": ["disability_recognised"],
        "rules": ["r-health"],
        "version": 3,
    }
    _, history = await admin.call("GET", "/v1/policies/history")
    assert [(v["version"], v["actor"]) for v in history["versions"]] == [
        (1, "demo"),
        (2, "admin-desk"),
        (3, "admin-desk"),
    ]
    assert [rule["id"] for rule in history["versions"][1]["diff"]["removed"]] == ["r-4"]
    assert [rule["id"] for rule in history["versions"][2]["diff"]["added"]] == ["r-health"]
    _, rolled = await admin.call("POST", "/v1/policies/rollback", {"version": 1, "reason": "decree annulled"})
    assert rolled["version"] == 4
    with pytest.raises(HubProblem, match="black-zone"):
        await agency.exchange(**HEALTH)
    policy_records = [r for r in await world.hub.audit.records(kind="policy") if r.policy_version is not None]
    assert [(r.requester, r.policy_version) for r in policy_records] == [
        ("admin-desk", 2),
        ("admin-desk", 3),
        ("admin-desk", 4),
    ]
    [delivered_record] = [r for r in await world.hub.audit.records() if r.kind == "exchange" and r.status == 200]
    assert (delivered_record.rule_id, delivered_record.fields) == ("r-health", ["disability_recognised"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/policies", {"rule": OPEN_HEALTH}, 422),
        ("POST", "/v1/policies", {"rule": {**OPEN_HEALTH, "zone": "pink"}, "reason": "x"}, 422),
        ("POST", "/v1/policies", {"rule": {**OPEN_HEALTH, "category": "shoe-size"}, "reason": "x"}, 422),
        ("POST", "/v1/policies", {"rule": {**OPEN_HEALTH, "id": "r-1"}, "reason": "x"}, 409),
        ("DELETE", "/v1/policies/r-99", {"reason": "x"}, 404),
        ("POST", "/v1/policies/rollback", {"version": 99, "reason": "x"}, 404),
    ],
)
async def test_bad_edits_change_nothing(
    sqlite_world: DemoWorld,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    body: dict[str, object],
    status: int,
) -> None:
    with pytest.raises(HubProblem) as refused:
        await sqlite_world.client("admin-desk", session).call(method, path, body)
    assert refused.value.status == status
    assert (await sqlite_world.hub.policies.rules()).version == 1


async def test_only_admins_edit(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    for principal in ("family-benefits", "privacy-office", "citizen-portal"):
        with pytest.raises(HubProblem) as refused:
            await sqlite_world.client(principal, session).call("DELETE", "/v1/policies/r-4", {"reason": "x"})
        assert (refused.value.status, refused.value.name) == (403, "forbidden")


async def test_a_reviewed_decision_becomes_a_standing_rule(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    world = sqlite_world
    agency, officer, admin = (
        world.client(name, session) for name in ("family-benefits", "privacy-office", "admin-desk")
    )
    grey = {"subject": JAN, "category": "employment-status", "purpose": "benefit-eligibility"}
    pending = await agency.exchange(**grey)
    await officer.call("POST", f"/v1/reviews/{pending.review}/decision", {"decision": "approve", "reason": "ok"})
    with pytest.raises(HubProblem) as groundless:  # a standing white rule needs its own legal basis
        await officer.call("POST", f"/v1/reviews/{pending.review}/propose", {"reason": "allowance files need it"})
    assert groundless.value.status == 422 and "ground" in groundless.value.detail
    ground = "Family Benefits Decree of 27 April 2018, art. 22, as amended 2026"
    status, proposal = await officer.call(
        "POST", f"/v1/reviews/{pending.review}/propose", {"reason": "allowance files always need it", "ground": ground}
    )
    assert status == 201 and proposal["rule"]["zone"] == "white" and proposal["rule"]["ground"] == ground
    _, listed = await admin.call("GET", "/v1/policies/proposals")
    assert [p["proposal"] for p in listed["proposals"]] == [proposal["proposal"]]
    _, accepted = await admin.call(
        "POST", f"/v1/policies/proposals/{proposal['proposal']}/accept", {"reason": "standing practice"}
    )
    assert accepted["rule"]["id"] == proposal["rule"]["id"]
    assert (await agency.exchange(**grey)).status == 200  # white now, no review needed
    with pytest.raises(HubProblem) as twice:
        await admin.call("POST", f"/v1/policies/proposals/{proposal['proposal']}/accept", {"reason": "again"})
    assert twice.value.status == 409


async def test_explain_agrees_with_enforcement(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    """For every case of the demo scenario that reaches the policy step, evaluate names the zone and rule
    that the exchange's audit record shows."""
    admin = world.client("admin-desk", session)
    for case in SCENARIO:
        with suppress(HubProblem):
            await world.client(case.requester, session).exchange(**case.request)
        [record] = (await world.hub.audit.records(kind="exchange"))[-1:]
        if record.zone is None:
            continue  # refused before the policy step (relationship, holder)
        _, explained = await admin.call(
            "POST",
            "/v1/policies/evaluate",
            {"requester": case.requester, "category": case.request["category"], "purpose": case.request["purpose"]},
        )
        assert (explained["zone"], explained["rules"], explained["version"]) == (
            record.zone,
            [record.rule_id],
            record.policy_version,
        )
        assert explained["fields"] == record.fields
