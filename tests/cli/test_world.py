"""`crossroads world load` on a store of its own: the example file loads on a fresh store; loading merges (a file
with one new agency and its rule keeps every other rule and grouping, a rule with a current id replaces it, the
same file again publishes nothing, a revoked key or a suspended agency stays so); `--replace` shows the difference
and replaces only when told to; a file with an invalid part writes nothing; every load is an audited call."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from click.testing import CliRunner

from broker.cli.main import main
from broker.cli.world import load_world
from broker.config import Config
from broker.hub import Hub, open_hub
from policies.rules import Rule
from policies.service import PolicyEditRefused
from policies.store import RuleSet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "world.yaml"
DEFAULT_RULES = ROOT / "policies" / "default_rules.csv"  # the demo's eight rules
SOCIAL_SECURITY = ("population-register", "tax-authority", "employment-office", "family-benefits")
T = TypeVar("T")


@pytest.fixture
def state(tmp_path: Path) -> list[str]:
    """A fresh store: a hub key and the schema, nothing else."""
    runner = CliRunner()
    runner.invoke(main, ["keygen", str(tmp_path / "hub.pem")])
    options = ["--state-dir", str(tmp_path)]
    assert runner.invoke(main, ["db", "upgrade", *options]).exit_code == 0
    return options


def crossroads(*args: str) -> tuple[int, str]:
    """The exit code and everything the command wrote (its answer, the difference it showed, or its error)."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def on_hub(state: list[str], read: Callable[[Hub], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_hub(Config(state_dir=Path(state[1]))) as hub:
            return await read(hub)

    return asyncio.run(run())


def rule_set(state: list[str]) -> RuleSet:
    return on_hub(state, lambda hub: hub.policies.rules())


def write(path: Path, world: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(world))
    return str(path)


def seed(tmp_path: Path, state: list[str]) -> RuleSet:
    """The demo's eight rules and four role groupings, loaded from a world file."""
    world = {
        "categories": [{"name": name} for name in ("civil-status", "income", "employment-status", "health-record")],
        "purposes": [{"name": name} for name in ("benefit-eligibility", "job-placement", "fraud-investigation")],
        "agencies": [
            {"id": agency, "name": agency, "adapter_url": "http://127.0.0.1:9", "roles": ["social-security"]}
            for agency in SOCIAL_SECURITY
        ],
        "rules_csv": str(DEFAULT_RULES),
    }
    code, shown = crossroads("world", "load", write(tmp_path / "seed.yaml", world), *state)
    assert code == 0, shown
    seeded = rule_set(state)
    assert (seeded.version, len(seeded.rules), len(seeded.groups)) == (1, 8, 4)
    return seeded


PENSION_FUND = {
    "categories": [{"name": "pension"}],
    "agencies": [
        {
            "id": "pension-fund",
            "name": "Pension Fund",
            "adapter_url": "https://pension-fund.example/crossroads",
            "roles": ["social-security"],
        }
    ],
    "holdings": [{"holder": "pension-fund", "category": "pension", "subjects": ["85073003328"]}],
    "rules": [
        {
            "id": "r-pension",
            "requester": "agency:family-benefits",
            "category": "pension",
            "purpose": "benefit-eligibility",
            "zone": "white",
            "ground": "Family Benefits Decree of 27 April 2018, art. 18",
        }
    ],
}


def test_the_example_file_loads_on_a_fresh_store(state: list[str]) -> None:
    code, shown = crossroads("world", "load", str(EXAMPLE), *state)
    assert code == 0, shown
    assert f"loaded {EXAMPLE}: policy version 1" in shown

    async def read(hub: Hub) -> tuple[Any, ...]:
        consents, refusals = await hub.consents.history("85073003328")
        return (
            [agency.id for agency in await hub.registry.agencies()],
            [capacity.name for capacity in await hub.registry.capacities()],
            {category.name: category.description for category in await hub.registry.categories()},
            await hub.policies.rules(),
            (await hub.policies.decide("family-benefits", "civil-status", "benefit-eligibility")).zone,
            [consent.grantee for consent in consents],
            len(refusals),
            await hub.audit.records(kind="policy"),
        )

    agencies, capacities, categories, rules, zone, grantees, refusals, records = on_hub(state, read)
    assert agencies == ["family-benefits", "population-register", "tax-authority"]
    assert capacities == ["beneficiary", "resident", "taxpayer"]
    assert categories["civil-status"] == "Name, address, household"
    assert (rules.version, len(rules.rules), len(rules.groups)) == (1, 4, 3)
    assert zone == "white"  # role:social-security asks basic-facts, the group civil-status is in
    assert (grantees, refusals) == (["family-benefits"], 0)
    [record] = records
    assert (record.policy_version, record.status, record.outcome, record.reason) == (1, 200, "recorded", "world loaded")


def test_a_file_with_one_new_agency_keeps_every_other_rule(tmp_path: Path, state: list[str]) -> None:
    """The bug that started this: such a file used to turn 8 rules and 4 groupings into 1 rule."""
    seeded = seed(tmp_path, state)
    code, shown = crossroads("world", "load", write(tmp_path / "entry.yaml", PENSION_FUND), *state)
    assert code == 0 and "policy version 2" in shown, shown
    loaded = rule_set(state)
    pension = Rule(
        "r-pension",
        "agency:family-benefits",
        "pension",
        "benefit-eligibility",
        "white",
        ground="Family Benefits Decree of 27 April 2018, art. 18",
    )
    assert set(loaded.rules) == {*seeded.rules, pension}
    assert set(loaded.groups) == {*seeded.groups, ("g", "agency:pension-fund", "role:social-security")}
    history = on_hub(state, lambda hub: hub.policies.history())
    assert history[-1]["diff"] == {
        "added": [PENSION_FUND["rules"][0] | {"consent": False, "fields": None, "emergency": False}],
        "removed": [],
        "changed": [],
        "groups_added": [{"kind": "g", "member": "agency:pension-fund", "group": "role:social-security"}],
        "groups_removed": [],
    }
    agencies = on_hub(state, lambda hub: hub.registry.agencies())
    assert [agency.id for agency in agencies] == sorted([*SOCIAL_SECURITY, "pension-fund"])


def test_a_rule_of_the_same_id_replaces_it_and_the_same_file_changes_nothing(tmp_path: Path, state: list[str]) -> None:
    seeded = seed(tmp_path, state)
    r_1 = {"requester": "agency:family-benefits", "category": "civil-status", "purpose": "benefit-eligibility"}
    greyer = {"rules": [{"id": "r-1", **r_1, "zone": "grey", "ground": "deliberation 26/003"}]}
    path = write(tmp_path / "greyer.yaml", greyer)
    assert crossroads("world", "load", path, "--reason", "r-1 needs a review", *state)[0] == 0
    loaded = rule_set(state)
    assert loaded.version == 2 and len(loaded.rules) == 8 and loaded.groups == seeded.groups
    assert {rule.id: rule.zone for rule in loaded.rules}["r-1"] == "grey"
    code, shown = crossroads("world", "load", path, *state)
    assert code == 0 and shown.strip().endswith(f"loaded {path}")  # no policy version: nothing changed
    assert rule_set(state) == loaded
    history = on_hub(state, lambda hub: hub.policies.history())
    assert [(entry["version"], entry["reason"], len(entry["diff"]["changed"])) for entry in history] == [
        (1, "world loaded", 0),
        (2, "r-1 needs a review", 1),
    ]
    records = on_hub(state, lambda hub: hub.audit.records(kind="policy"))
    assert [(r.policy_version, r.reason) for r in records] == [
        (1, "world loaded"),
        (2, "r-1 needs a review"),
        (None, "world loaded"),
    ]


def test_replace_shows_the_difference_and_replaces_only_when_told(tmp_path: Path, state: list[str]) -> None:
    seeded = seed(tmp_path, state)
    path = write(tmp_path / "entry.yaml", PENSION_FUND)
    code, shown = crossroads("world", "load", path, "--replace", *state)
    assert code == 1
    assert "    + r-pension agency:family-benefits pension benefit-eligibility white" in shown
    assert "    - r-4 agency:family-benefits health-record * black" in shown
    assert "    - g agency:family-benefits in role:social-security" in shown
    assert "    + g agency:pension-fund in role:social-security" in shown
    assert "standard input is not a terminal: pass --yes to replace; nothing changed" in shown
    assert rule_set(state) == seeded
    assert on_hub(state, lambda hub: hub.registry.agency("pension-fund")) is None
    code, shown = crossroads("world", "load", path, "--replace", "--yes", "--reason", "the pension world", *state)
    assert code == 0 and "    - r-4 agency:family-benefits" in shown and "policy version 2" in shown
    replaced = rule_set(state)
    assert [rule.id for rule in replaced.rules] == ["r-pension"]
    assert replaced.groups == (("g", "agency:pension-fund", "role:social-security"),)
    [record] = [r for r in on_hub(state, lambda hub: hub.audit.records(kind="policy")) if r.policy_version == 2]
    assert (record.status, record.reason) == (200, "the pension world")
    entry = on_hub(state, lambda hub: hub.policies.history())[-1]
    assert len(entry["diff"]["removed"]) == 8 and len(entry["diff"]["groups_removed"]) == 4
    code, shown = crossroads("world", "load", path, "--replace", *state)
    assert code == 0 and "already is the file's" in shown  # nothing to replace: nothing asked


def test_replace_asks_a_terminal(tmp_path: Path, state: list[str]) -> None:
    seed(tmp_path, state)
    path = write(tmp_path / "entry.yaml", PENSION_FUND)

    def answered(answer: str) -> str:
        """What the command says when its standard input is a terminal on which `answer` is typed."""
        controller, terminal = os.openpty()
        try:
            os.write(controller, answer.encode())  # typed ahead: the terminal holds it until the prompt reads it
            done = subprocess.run(
                [sys.executable, "-m", "broker", "world", "load", path, "--replace", *state],
                stdin=terminal,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            os.close(controller)
            os.close(terminal)
        return done.stdout + done.stderr

    refused = answered("n\n")
    assert "Replace the rule set? [y/N]" in refused and "not confirmed; nothing changed" in refused
    assert len(rule_set(state).rules) == 8
    accepted = answered("y\n")
    assert "policy version 2" in accepted, accepted
    assert [rule.id for rule in rule_set(state).rules] == ["r-pension"]


def test_replace_needs_the_file_to_state_its_rules(tmp_path: Path, state: list[str]) -> None:
    seed(tmp_path, state)
    path = write(tmp_path / "agency.yaml", {"agencies": PENSION_FUND["agencies"]})
    code, shown = crossroads("world", "load", path, "--replace", "--yes", *state)
    assert code == 2 and "--replace needs the file to state its rules" in shown
    assert len(rule_set(state).rules) == 8


def test_loading_again_undoes_no_revocation_nor_suspension(tmp_path: Path, state: list[str]) -> None:
    public = CliRunner().invoke(main, ["keygen", str(tmp_path / "agency.pem")]).output
    world = {
        "agencies": [
            {
                "id": "pension-fund",
                "name": "Pension Fund",
                "adapter_url": "https://pension-fund.example/crossroads",
                "keys": [{"key_id": "pension-fund-2026", "public_key_pem": public}],
            }
        ]
    }
    path = write(tmp_path / "entry.yaml", world)
    assert crossroads("world", "load", path, *state)[0] == 0
    assert (
        crossroads("keys", "revoke", "pension-fund", "pension-fund-2026", "--reason", "laptop stolen", *state)[0] == 0
    )
    assert crossroads("agencies", "suspend", "pension-fund", "--reason", "key compromised", *state)[0] == 0
    world["agencies"][0]["name"] = "Federal Pension Fund"
    assert crossroads("world", "load", write(tmp_path / "entry.yaml", world), *state)[0] == 0

    async def read(hub: Hub) -> tuple[Any, ...]:
        return await hub.registry.agency("pension-fund"), await hub.directory.key("pension-fund-2026")

    agency, key = on_hub(state, read)
    assert agency is not None and (agency.name, agency.status) == ("Federal Pension Fund", "suspended")
    assert key is not None and key.status == "revoked"
    records = on_hub(state, lambda hub: hub.audit.records(kind="registry"))
    assert [(r.status, r.reason) for r in records] == [
        (200, "world loaded"),
        (200, "key compromised"),
        (200, "world loaded"),
    ]


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        ({"consents": [{"subject": "85073003328", "grantee": "pension-fund", "categories": ["shoe-size"],
                        "purposes": ["benefit-eligibility"], "evidence": "form 1"}]}, "category 'shoe-size'"),
        ({"refusals": [{"subject": "85073003328", "agency": "nobody-here"}]}, "agency 'nobody-here'"),
        ({"consents": [{"subject": "85073003328", "grantee": "pension-fund"}]}, "missing fields"),
        ({"rules": [{"id": "r-x", "requester": "agency:pension-fund", "category": "*", "purpose": "*",
                     "zone": "pink"}]}, "zone must be"),
        ({"rules": [PENSION_FUND["rules"][0], PENSION_FUND["rules"][0]]}, "rule id 'r-pension' is given twice"),
    ],
)  # fmt: skip
def test_a_file_with_an_invalid_part_writes_nothing(
    tmp_path: Path, state: list[str], broken: dict[str, Any], why: str
) -> None:
    seeded = seed(tmp_path, state)
    code, shown = crossroads("world", "load", write(tmp_path / "broken.yaml", PENSION_FUND | broken), *state)
    assert code == 1 and why in shown and "nothing changed" in shown, shown
    assert rule_set(state) == seeded
    assert on_hub(state, lambda hub: hub.registry.agency("pension-fund")) is None
    [refused] = [r for r in on_hub(state, lambda hub: hub.audit.records(kind="policy")) if r.status != 200]
    assert (refused.status, refused.outcome, refused.reason) == (422, "refused", "invalid")


def test_a_relative_rules_csv_is_read_beside_the_file(tmp_path: Path, state: list[str]) -> None:
    folder = tmp_path / "worlds"
    folder.mkdir()
    (folder / "rules.csv").write_text(
        'r-9, agency:family-benefits, income, *, grey, false, , false, "Income Tax Code 1992, art. 337"\n'
        "r-10, agency:family-benefits, health-record, *, black, false, , false\n"  # written before grounds: read
    )
    code, shown = crossroads("world", "load", write(folder / "world.yaml", {"rules_csv": "rules.csv"}), *state)
    assert code == 0, shown
    assert [(rule.id, rule.ground) for rule in rule_set(state).rules] == [
        ("r-10", None),
        ("r-9", "Income Tax Code 1992, art. 337"),
    ]


async def test_a_replacement_shown_on_an_older_version_is_refused(tmp_path: Path) -> None:
    """Between the difference shown and the replacement another edit was published: nothing is written."""
    state = tmp_path / "state"
    await asyncio.to_thread(CliRunner().invoke, main, ["keygen", str(state / "hub.pem")])
    await asyncio.to_thread(CliRunner().invoke, main, ["db", "upgrade", "--state-dir", str(state)])
    async with open_hub(Config(state_dir=state)) as hub:
        assert await load_world(hub, {"rules": PENSION_FUND["rules"]}, "test", "first") == 1
        await hub.policies.remove("r-pension", "someone-else", "meanwhile", datetime.now(UTC))
        with pytest.raises(PolicyEditRefused, match="version 2, not 1"):
            await load_world(hub, PENSION_FUND, "test", "replace", replace=True, expected=1)
        assert await hub.registry.agency("pension-fund") is None
        assert (await hub.policies.rules()).version == 2
        assert await load_world(hub, PENSION_FUND, "test", "replace", replace=True, expected=2) == 3
