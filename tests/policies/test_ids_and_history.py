"""Rule ids the hub gives, and a history that shows every change: a rule added without an id over the API, the
command line or the console gets one, unique in the rule set and returned; the history shows groupings added and
removed, and marks a rollback with the version it restored; merging a rule file never removes anything."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from broker.cli.demo import DemoWorld
from broker.cli.main import main
from broker.config import Config
from broker.hub import open_hub
from policies.rules import (
    UNASSIGNED,
    PolicyFile,
    Rule,
    RuleInvalid,
    changes,
    fresh_rule_id,
    groups_diff,
    merged,
    parse_rule,
)

HUB_ID = re.compile(r"r-[0-9a-f]{8}")
NEW = {
    "requester": "agency:family-benefits",
    "category": "health-record",
    "purpose": "job-placement",
    "zone": "grey",
    "ground": "deliberation 26/012 of the information security committee",
}


def test_a_new_rule_may_come_without_an_id() -> None:
    assert parse_rule(NEW, new=True).id == UNASSIGNED
    assert parse_rule({**NEW, "id": None}, new=True).id == UNASSIGNED
    assert parse_rule({**NEW, "id": "r-17"}, new=True).id == "r-17"
    for document in (NEW, {**NEW, "id": ""}):
        with pytest.raises(RuleInvalid, match="id must be"):
            parse_rule(document)  # a rule read back, from a file or the store, always has its id
    with pytest.raises(RuleInvalid, match="id must be"):
        parse_rule({**NEW, "id": ""}, new=True)  # an empty id is not a missing one


def test_a_fresh_id_is_none_of_the_taken() -> None:
    taken = {fresh_rule_id(()) for _ in range(50)}
    assert all(HUB_ID.fullmatch(rule_id) for rule_id in taken)
    assert fresh_rule_id(taken) not in taken


rules = st.builds(
    Rule,
    id=st.sampled_from(["r-1", "r-2", "r-3", "r-4"]),
    requester=st.sampled_from(["agency:a1", "role:r1"]),
    category=st.sampled_from(["income", "*"]),
    purpose=st.just("*"),
    zone=st.sampled_from(["white", "grey", "black"]),
)
groups = st.tuples(st.sampled_from(["g", "g2"]), st.sampled_from(["agency:a1", "income"]), st.just("x"))


@given(
    st.lists(rules, unique_by=lambda rule: rule.id),
    st.lists(groups),
    st.lists(rules, unique_by=lambda rule: rule.id),
    st.lists(groups),
)
def test_merging_never_removes(
    current: list[Rule],
    current_groups: list[tuple[str, str, str]],
    added: list[Rule],
    added_groups: list[tuple[str, str, str]],
) -> None:
    before = PolicyFile(current, list(dict.fromkeys(current_groups)))
    after = merged(before, added, added_groups)
    difference = changes(before, after)
    assert difference["removed"] == [] and difference["groups_removed"] == []
    by_id = {rule.id: rule for rule in after.rules}
    assert len(by_id) == len(after.rules)  # one rule per id
    assert all(by_id[rule.id] == rule for rule in added)  # the file's rule wins
    assert {rule.id for rule in current} <= set(by_id)
    assert set(after.groups) == set(current_groups) | set(added_groups) and len(set(after.groups)) == len(after.groups)


def test_a_grouping_diff() -> None:
    assert groups_diff([("g", "agency:a", "role:x")], [("g2", "income", "money")]) == {
        "groups_added": [{"kind": "g2", "member": "income", "group": "money"}],
        "groups_removed": [{"kind": "g", "member": "agency:a", "group": "role:x"}],
    }


async def test_the_hub_names_a_rule_added_without_an_id(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    world = sqlite_world
    admin = world.client("admin-desk", session)
    status, first = await admin.call("POST", "/v1/policies", {"rule": NEW, "reason": "job placement in care"})
    _, second = await admin.call("POST", "/v1/policies", {"rule": {**NEW, "id": None}, "reason": "again"})
    assert status == 201 and HUB_ID.fullmatch(first["rule"]["id"]) and HUB_ID.fullmatch(second["rule"]["id"])
    assert first["rule"]["id"] != second["rule"]["id"]
    assert first["rule"] == {**NEW, "id": first["rule"]["id"], "consent": False, "fields": None, "emergency": False}
    current = {rule.id for rule in (await world.hub.policies.rules()).rules}
    assert {first["rule"]["id"], second["rule"]["id"]} <= current
    records = [r for r in await world.hub.audit.records(kind="policy") if r.policy_version is not None]
    assert [(r.rule_id, r.policy_version) for r in records] == [(first["rule"]["id"], 2), (second["rule"]["id"], 3)]


def test_the_command_line_prints_the_id_it_was_given(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(main, ["keygen", str(tmp_path / "hub.pem")])
    state = ["--state-dir", str(tmp_path)]
    assert runner.invoke(main, ["db", "upgrade", *state]).exit_code == 0
    world = tmp_path / "world.yaml"
    world.write_text("categories: [{name: health-record}]\npurposes: [{name: job-placement}]\n")
    assert runner.invoke(main, ["world", "load", str(world), *state]).exit_code == 0
    result = runner.invoke(main, ["policy", "add", json.dumps(NEW), "--reason", "care", *state])
    assert result.exit_code == 0, result.output
    found = re.search(r"version 1: rule (r-[0-9a-f]{8})", result.output)
    assert found is not None

    async def read() -> set[str]:
        async with open_hub(Config(state_dir=tmp_path)) as hub:
            return {rule.id for rule in (await hub.policies.rules()).rules}

    assert asyncio.run(read()) == {found.group(1)}


async def test_history_shows_groupings_and_marks_rollbacks(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    hub, admin = world.hub, world.client("admin-desk", session)
    current = await hub.policies.rules()
    employment = ("g", "agency:employment-office", "role:social-security")
    assert employment in current.groups
    kept = [group for group in current.groups if group != employment]
    await hub.policies.replace(
        list(current.rules), [*kept, ("g2", "income", "money")], "test", "regroup", datetime.now(UTC), current.version
    )
    _, removed = await admin.call("DELETE", "/v1/policies/r-4", {"reason": "health records for everyone"})
    _, rolled = await admin.call("POST", "/v1/policies/rollback", {"version": 1, "reason": "decree annulled"})
    assert (removed["version"], rolled["version"]) == (3, 4)
    _, history = await admin.call("GET", "/v1/policies/history")
    versions = history["versions"]
    assert [(v["version"], v["rollback_of"]) for v in versions] == [(1, None), (2, None), (3, None), (4, 1)]
    assert versions[1]["diff"] == {
        "added": [],
        "removed": [],
        "changed": [],
        "groups_added": [{"kind": "g2", "member": "income", "group": "money"}],
        "groups_removed": [{"kind": "g", "member": "agency:employment-office", "group": "role:social-security"}],
    }
    assert [rule["id"] for rule in versions[3]["diff"]["added"]] == ["r-4"]
    assert versions[3]["diff"]["groups_added"] == [versions[1]["diff"]["groups_removed"][0]]
    assert versions[3]["diff"]["groups_removed"] == [versions[1]["diff"]["groups_added"][0]]
    restored = await hub.policies.rules()
    assert set(restored.groups) == set(current.groups) and set(restored.rules) == set(current.rules)
    [record] = [r for r in await hub.audit.records(kind="policy") if r.policy_version == 4]
    assert (record.requester, record.status) == ("admin-desk", 200)
