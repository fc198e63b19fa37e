"""Four eyes on the sharing rules (`policy_approvals = 2`): every edit waits as a change until another administrator
approves it, exchanges are decided by the old rules until then, the proposer cannot approve their own, a rejection
publishes nothing, history and audit log name both administrators and both reasons, the dry run counts the recent
exchanges that would change zone, and an approval that no longer applies is refused and changes nothing."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.client import HubClient, HubProblem
from adapters.examples.demo_agencies import ANNA, JAN
from broker.accounts.credentials import hash_password
from broker.base.signing import SigningKey, public_key_pem
from broker.cli.acting import actor
from broker.cli.demo import HUB_KEY_ID, DemoWorld, demo_world
from broker.cli.main import main
from broker.cli.world import load_world
from broker.config import Config, ConfigError, load_config
from policies.changes import Pending
from tests.console.test_sessions import Browser

CIVIL_STATUS = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}  # white by r-1
BLOCK = {
    "id": "r-block",
    "requester": "agency:family-benefits",
    "category": "civil-status",
    "purpose": "benefit-eligibility",
    "zone": "black",
}


@pytest.fixture
async def four_eyes(tmp_path: Path, database_url: str) -> AsyncIterator[DemoWorld]:
    """The demo world (its first rule set published as the hub's first: version 1) with four eyes, on each store."""
    async with demo_world(tmp_path / "state", database_url, policy_approvals=2) as running:
        yield running


async def second_admin(world: DemoWorld, session: aiohttp.ClientSession) -> HubClient:
    """Another administrator, registered as the demo's own are (a world file's operator with a key)."""
    key = SigningKey("rules-desk-2026", Ed25519PrivateKey.generate())
    operator = {
        "id": "rules-desk",
        "name": "Rules Desk",
        "role": "admin",
        "keys": [{"key_id": key.key_id, "public_key_pem": public_key_pem(key.public_key)}],
    }
    assert await load_world(world.hub, {"operators": [operator]}, "test", "a second administrator") is None
    return HubClient(world.hub_url, key, HUB_KEY_ID, world.hub.key.public_key, session)


async def zone(world: DemoWorld, session: aiohttp.ClientSession) -> str:
    """The zone an actual exchange of Anna's civil status by family benefits is decided in."""
    try:
        return (await world.client("family-benefits", session).exchange(**CIVIL_STATUS)).zone
    except HubProblem as refused:
        assert refused.name == "black-zone"
        return "black"


async def via_api(world: DemoWorld, session: aiohttp.ClientSession, method: str, path: str, body: Any) -> str:
    status, held = await world.client("admin-desk", session).call(method, path, body)
    assert status == 202 and {key: held[key] for key in ("status", "approvals", "needed")} == {
        "status": "pending",
        "approvals": 1,
        "needed": 2,
    }
    return str(held["change"])


async def via_world_file(world: DemoWorld, document: dict[str, Any], *, replace: bool) -> str:
    held = await load_world(world.hub, document, "admin-desk", "the committee's file", replace=replace)
    assert isinstance(held, Pending)
    return held.change


async def every_rule_but_r1(world: DemoWorld) -> dict[str, Any]:
    current = await world.hub.policies.rules()
    return {"rules": [rule.as_json() for rule in current.rules if rule.id != "r-1"]}


PROPOSE: dict[str, Callable[[DemoWorld, aiohttp.ClientSession], Awaitable[str]]] = {
    "add": lambda w, s: via_api(w, s, "POST", "/v1/policies", {"rule": BLOCK, "reason": "deliberation 26/001"}),
    "remove": lambda w, s: via_api(w, s, "DELETE", "/v1/policies/r-1", {"reason": "decree annulled"}),
    "load": lambda w, _s: via_world_file(w, {"rules": [BLOCK]}, replace=False),
    "replace": lambda w, _s: via_world_file_replacing(w),
}


async def via_world_file_replacing(world: DemoWorld) -> str:
    return await via_world_file(world, await every_rule_but_r1(world), replace=True)


@pytest.mark.parametrize("kind", list(PROPOSE))
async def test_each_kind_of_change_waits_for_another_administrator(
    four_eyes: DemoWorld, session: aiohttp.ClientSession, kind: str
) -> None:
    world, admin = four_eyes, four_eyes.client("admin-desk", session)
    other = await second_admin(world, session)
    change = await PROPOSE[kind](world, session)
    assert (await world.hub.policies.rules()).version == 1
    assert await zone(world, session) == "white"  # still decided by the old rules
    with pytest.raises(HubProblem) as own:
        await admin.call("POST", f"/v1/policies/changes/{change}/approve", {"reason": "mine"})
    assert (own.value.status, own.value.name) == (403, "own-change")
    _, listed = await other.call("GET", "/v1/policies/changes")
    assert [(c["change"], c["kind"], c["against"]) for c in listed["changes"]] == [(change, kind, 1)]
    status, approved = await other.call("POST", f"/v1/policies/changes/{change}/approve", {"reason": "checked"})
    assert (status, approved["version"], approved["change"]["status"]) == (200, 2, "approved")
    assert await zone(world, session) == "black"
    with pytest.raises(HubProblem) as twice:
        await other.call("POST", f"/v1/policies/changes/{change}/approve", {"reason": "again"})
    assert twice.value.status == 409


async def test_history_and_audit_name_both_administrators_and_reasons(
    four_eyes: DemoWorld, session: aiohttp.ClientSession
) -> None:
    world, admin = four_eyes, four_eyes.client("admin-desk", session)
    other = await second_admin(world, session)
    change = await via_api(world, session, "DELETE", "/v1/policies/r-1", {"reason": "decree annulled"})
    await other.call("POST", f"/v1/policies/changes/{change}/approve", {"reason": "read the annulment"})
    _, history = await admin.call("GET", "/v1/policies/history")
    newest = history["versions"][-1]
    assert {key: newest[key] for key in ("version", "actor", "reason", "approved_by", "approval_reason")} == {
        "version": 2,
        "actor": "admin-desk",
        "reason": "decree annulled",
        "approved_by": "rules-desk",
        "approval_reason": "read the annulment",
    }
    assert "approved_by" not in history["versions"][0]  # the first rule set needed no approval
    records = [r for r in await world.hub.audit.records(kind="policy") if r.exchange == change]
    assert [(r.requester, r.status, r.outcome, r.reason, r.policy_version) for r in records] == [
        ("admin-desk", 202, "pending", "decree annulled", None),
        ("rules-desk", 200, "delivered", "read the annulment", 2),
    ]


async def test_a_rejection_publishes_nothing(four_eyes: DemoWorld, session: aiohttp.ClientSession) -> None:
    world = four_eyes
    other = await second_admin(world, session)
    change = await via_api(world, session, "POST", "/v1/policies", {"rule": BLOCK, "reason": "deliberation 26/001"})
    _, rejected = await other.call("POST", f"/v1/policies/changes/{change}/reject", {"reason": "no deliberation"})
    assert {key: rejected["change"][key] for key in ("status", "decided_by", "decision_reason", "version")} == {
        "status": "rejected",
        "decided_by": "rules-desk",
        "decision_reason": "no deliberation",
        "version": None,
    }
    assert (await world.hub.policies.rules()).version == 1
    assert await zone(world, session) == "white"
    with pytest.raises(HubProblem) as late:
        await other.call("POST", f"/v1/policies/changes/{change}/approve", {"reason": "after all"})
    assert late.value.status == 409
    _, listed = await other.call("GET", "/v1/policies/changes?status=rejected")
    assert [c["change"] for c in listed["changes"]] == [change]


async def test_the_dry_run_counts_exchanges_that_would_change_zone(
    four_eyes: DemoWorld, session: aiohttp.ClientSession
) -> None:
    world = four_eyes
    other = await second_admin(world, session)
    for _ in range(3):
        assert await zone(world, session) == "white"
    change = await via_api(world, session, "DELETE", "/v1/policies/r-1", {"reason": "decree annulled"})
    _, dry_run = await other.call("POST", f"/v1/policies/changes/{change}/evaluate", {})
    assert dry_run["examined"] == 3 and dry_run["differ"] == 3
    assert dry_run["questions"] == [
        {
            "requester": "family-benefits",
            "category": "civil-status",
            "purpose": "benefit-eligibility",
            "was": "white",
            "would_be": "black",
            "exchanges": 3,
        }
    ]
    _, later = await other.call("POST", f"/v1/policies/changes/{change}/evaluate", {"since": "2999-01-01T00:00:00Z"})
    assert later == {"examined": 0, "differ": 0, "questions": []}
    assert (await world.hub.policies.rules()).version == 1  # a dry run publishes nothing


async def test_a_conflicting_approval_is_refused_and_changes_nothing(
    four_eyes: DemoWorld, session: aiohttp.ClientSession
) -> None:
    world = four_eyes
    other = await second_admin(world, session)
    rollback = await via_api(world, session, "POST", "/v1/policies/rollback", {"version": 1, "reason": "back"})
    first = await via_api(world, session, "POST", "/v1/policies", {"rule": BLOCK, "reason": "first"})
    second = await via_api(world, session, "POST", "/v1/policies", {"rule": BLOCK, "reason": "the same id"})
    await other.call("POST", f"/v1/policies/changes/{first}/approve", {"reason": "checked"})
    before = await world.hub.policies.rules()
    for change, why in ((second, "no longer applies: a rule 'r-block' exists"), (rollback, "is superseded")):
        with pytest.raises(HubProblem) as refused:
            await other.call("POST", f"/v1/policies/changes/{change}/approve", {"reason": "checked too"})
        assert refused.value.status == 409 and why in refused.value.detail
    assert await world.hub.policies.rules() == before
    _, pending = await other.call("GET", "/v1/policies/changes")
    assert [c["change"] for c in pending["changes"]] == [second]  # still there, for someone to reject
    _, superseded = await other.call("GET", "/v1/policies/changes?status=superseded")
    assert [c["change"] for c in superseded["changes"]] == [rollback]  # proposed against version 1: never now


async def test_a_rollback_waits_and_takes_effect_on_approval(
    four_eyes: DemoWorld, session: aiohttp.ClientSession
) -> None:
    world = four_eyes
    other = await second_admin(world, session)
    remove = await via_api(world, session, "DELETE", "/v1/policies/r-1", {"reason": "decree annulled"})
    await other.call("POST", f"/v1/policies/changes/{remove}/approve", {"reason": "checked"})
    rollback = await via_api(world, session, "POST", "/v1/policies/rollback", {"version": 1, "reason": "reinstated"})
    assert await zone(world, session) == "black"
    _, approved = await other.call("POST", f"/v1/policies/changes/{rollback}/approve", {"reason": "court ruling"})
    assert approved["version"] == 3 and await zone(world, session) == "white"
    _, history = await other.call("GET", "/v1/policies/history")
    assert history["versions"][-1]["rollback_of"] == 1


async def crossroads(*args: str) -> Result:
    """A `crossroads` command, in a thread of its own (it runs its own event loop), without the hub's setting: it
    follows the four eyes the serving hub declared in the store."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env={"CROSSROADS_POLICY_APPROVALS": None})


async def test_the_command_line_holds_edits_and_approves_others(
    four_eyes: DemoWorld, session: aiohttp.ClientSession
) -> None:
    world = four_eyes
    store = ("--state-dir", str(world.state_dir), "--database-url", world.hub.config.database)
    held = await crossroads("policy", "remove", "r-1", "--reason", "decree annulled", *store)
    assert held.exit_code == 0 and held.stdout.startswith("pending approval: change c-"), held.output
    change = held.stdout.split()[-1]
    own = await crossroads("policy", "approve", change, "--reason", "mine", *store)
    assert own.exit_code != 0 and "yours" in own.output
    listed = await crossroads("policy", "changes", *store)
    assert f"{change} pending: remove r-1 (against v1) proposed by {actor()}" in listed.stdout
    await world.client("admin-desk", session).call("POST", f"/v1/policies/changes/{change}/approve", {"reason": "ok"})
    history = await crossroads("policy", "history", *store)
    assert "[approved by admin-desk: ok]" in history.stdout
    proposed = await via_api(world, session, "POST", "/v1/policies", {"rule": BLOCK, "reason": "deliberation"})
    dry_run = await crossroads("policy", "evaluate", "--change", proposed, "--since", "1d", *store)
    assert dry_run.exit_code == 0 and '"differ": 0' in dry_run.stdout, dry_run.output
    approved = await crossroads("policy", "approve", proposed, "--reason", "checked", *store)
    assert approved.exit_code == 0 and approved.stdout.strip() == "version 3", approved.output


def test_only_one_or_two_approvals_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="policy_approvals must be 1"):
        load_config({}, {"CROSSROADS_POLICY_APPROVALS": "3"}, None)
    with pytest.raises(ConfigError):
        Config(state_dir=tmp_path, policy_approvals=0)
    assert load_config({}, {"CROSSROADS_POLICY_APPROVALS": "2"}, None)[0].policy_approvals == 2


async def test_accepting_a_reviewers_proposal_waits_too(four_eyes: DemoWorld, session: aiohttp.ClientSession) -> None:
    world = four_eyes
    agency, officer = world.client("family-benefits", session), world.client("privacy-office", session)
    other = await second_admin(world, session)
    grey = {"subject": JAN, "category": "employment-status", "purpose": "benefit-eligibility"}
    review = (await agency.exchange(**grey)).review
    await officer.call("POST", f"/v1/reviews/{review}/decision", {"decision": "approve", "reason": "ok"})
    standing = {"reason": "always needed", "ground": "Family Benefits Decree, art. 22"}
    _, proposal = await officer.call("POST", f"/v1/reviews/{review}/propose", standing)
    path = f"/v1/policies/proposals/{proposal['proposal']}/accept"
    change = await via_api(world, session, "POST", path, {"reason": "standing practice"})
    assert (await agency.exchange(**grey)).status == 202  # still grey: a review again
    await other.call("POST", f"/v1/policies/changes/{change}/approve", {"reason": "agreed"})
    assert (await agency.exchange(**grey)).status == 200  # white now
    _, accepted = await other.call("GET", "/v1/policies/proposals?status=accepted")
    assert [p["accepted_version"] for p in accepted["proposals"]] == [2]


async def test_the_consoles_rules_page_asks_the_other_administrator(four_eyes: DemoWorld) -> None:
    world = four_eyes
    password = secrets.token_urlsafe(16)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await second_admin(world, session)
        hashed = await asyncio.to_thread(hash_password, password)
        await world.hub.console.set_password("rules-desk", hashed, datetime.now(UTC))
        proposer = Browser(world, session)
        await proposer.sign_in("admin-desk", world.console_passwords["admin-desk"])
        token = await proposer.token("/console/rules")
        held = await proposer.post("/console/rules/r-1/remove", {"reason": "decree annulled", "csrf": token})
        assert held.headers["Location"] == "/console/rules?notice=change-held"
        [change] = await world.hub.policies.changes("pending")
        _, page = await proposer.get("/console/rules")
        assert f'id="change-{change.id}"' in page and "Your change: another administrator approves it." in page
        assert f"/console/rules/changes/{change.id}/decision" not in page
        await proposer.post("/console/sign-out", {"csrf": token})
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        approver = Browser(world, session)
        await approver.sign_in("rules-desk", password)
        token = await approver.token("/console/rules")
        fields = {"csrf": token, "decision": "approve", "reason": "read the annulment"}
        done = await approver.post(f"/console/rules/changes/{change.id}/decision", fields)
        assert done.headers["Location"] == "/console/rules?notice=change-approved"
    assert all(rule.id != "r-1" for rule in (await world.hub.policies.rules()).rules)
    [record] = await world.hub.audit.records(kind="console", exchange=change.id, requester="rules-desk")
    assert (record.policy_version, record.reason) == (2, "read the annulment")
