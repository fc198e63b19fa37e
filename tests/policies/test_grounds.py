"""A rule's ground, its legal basis: required of white and grey rules, bounded printable text, kept in CSV files and
in every published version; rules made before grounds were required stay valid and say so (migration
0009_rule_ground, SQLite: see tests/consent/test_consent_migration.py for why)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker

from broker.base.store import create_engine
from policies.rules import (
    GROUND_NOT_RECORDED,
    MAX_GROUND,
    PolicyFile,
    RuleInvalid,
    changes,
    parse_csv,
    parse_rule,
    stored_rule,
    to_csv,
)
from policies.service import PolicyEditRefused, PolicyService
from policies.store import PolicyStore
from tests.consent.test_consent_migration import migrate

WHITE = {
    "id": "r-17",
    "requester": "agency:family-benefits",
    "category": "income",
    "purpose": "benefit-eligibility",
    "zone": "white",
}
FLAGS = {"consent": False, "fields": None, "emergency": False}
DELIBERATION = "deliberation 21/104 of the information security committee"


@pytest.mark.parametrize("zone", ["white", "grey"])
@pytest.mark.parametrize("ground", [None, "", "   ", "g" * (MAX_GROUND + 1), "art. 1\nart. 2", "\u200bart. 1", 104])
def test_a_white_or_grey_rule_needs_a_printable_bounded_ground(zone: str, ground: Any) -> None:
    with pytest.raises(RuleInvalid, match="ground must be the legal basis"):
        parse_rule({**WHITE, "zone": zone, "ground": ground})


def test_a_ground_is_kept_as_given_and_optional_for_black() -> None:
    assert parse_rule({**WHITE, "ground": DELIBERATION}).ground == DELIBERATION
    assert parse_rule({**WHITE, "ground": "g" * MAX_GROUND}).ground == "g" * MAX_GROUND
    assert parse_rule({**WHITE, "ground": "Décret du 27 avril 2018, art. 18"}).as_json()["ground"].startswith("Décret")
    assert parse_rule({**WHITE, "zone": "black"}).ground is None
    black = {**WHITE, "zone": "black", "ground": "Health Data Act, art. 5"}
    assert parse_rule(black).ground == "Health Data Act, art. 5"
    with pytest.raises(RuleInvalid, match="ground"):
        parse_rule({**WHITE, "zone": "black", "ground": ""})


def test_a_rule_recorded_before_grounds_reads_as_not_recorded() -> None:
    assert stored_rule(WHITE).ground == GROUND_NOT_RECORDED
    assert stored_rule({**WHITE, "zone": "black"}).ground is None
    assert stored_rule({**WHITE, "ground": DELIBERATION}).ground == DELIBERATION


def test_csv_keeps_the_ground_and_reads_files_without_its_column() -> None:
    rule = parse_rule({**WHITE, "ground": 'Decree of 27 April 2018, "art. 18", 2nd paragraph'})
    policy = PolicyFile([rule], [])
    written = to_csv(policy)
    assert written.splitlines()[0].endswith('"Decree of 27 April 2018, ""art. 18"", 2nd paragraph"')
    assert parse_csv(written) == policy
    old = "r-4, agency:family-benefits, health-record, *, black, false, , false\n"
    assert parse_csv(old).rules[0].ground is None
    with pytest.raises(RuleInvalid, match=r"line 1: ground must .* a white rule needs one"):
        parse_csv("r-1, agency:family-benefits, civil-status, benefit-eligibility, white, false, , false\n")
    with pytest.raises(RuleInvalid, match="line 1: a rule needs 9 columns"):
        parse_csv("r-1, agency:family-benefits, civil-status, benefit-eligibility, white, false, , false, a, b\n")


def test_the_demo_rules_each_have_a_ground() -> None:
    policy = parse_csv((Path(__file__).parents[2] / "policies" / "default_rules.csv").read_text())
    assert all(rule.ground for rule in policy.rules if rule.zone != "black")


def test_rules_made_before_the_revision_keep_valid_and_history_stays_quiet(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    migrate(f"sqlite:///{path}", "0006_policy_history")
    engine = sa.create_engine(f"sqlite:///{path}")
    old_rules = [WHITE, {**WHITE, "id": "r-4", "category": "health-record", "zone": "black"}]
    with engine.begin() as connection:
        for rule in old_rules:
            connection.execute(
                sa.text(
                    "INSERT INTO policy_rules (id, requester, category, purpose, zone, consent, fields, emergency)"
                    " VALUES (:id, :requester, :category, :purpose, :zone, 0, NULL, 0)"
                ),
                rule,
            )
        connection.execute(
            sa.text(
                "INSERT INTO rule_proposals VALUES ('p-old', 'v-1', :rule, 'standing', 'privacy-office', :at,"
                " 'open', NULL)"
            ),
            {"rule": json.dumps({**FLAGS, **WHITE}), "at": datetime(2026, 3, 1, tzinfo=UTC).replace(tzinfo=None)},
        )
        connection.execute(
            sa.text("INSERT INTO policy_versions VALUES (1, :at, 'demo', 'seed', :snapshot, NULL)"),
            {
                "at": datetime(2026, 3, 1, tzinfo=UTC).replace(tzinfo=None),
                "snapshot": json.dumps({"rules": [{**FLAGS, **rule} for rule in old_rules], "groups": []}),
            },
        )
    engine.dispose()
    migrate(f"sqlite:///{path}", "heads")

    async def read() -> tuple[Any, ...]:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            store = PolicyStore(async_sessionmaker(engine))
            current = await store.current()
            grey = parse_rule({**WHITE, "id": "r-18", "zone": "grey", "ground": DELIBERATION})
            await store.publish([*current.rules, grey], [], "admin-desk", "add r-18", datetime.now(UTC), 1)
            first, second = await store.versions()
            service = PolicyService(store, _exists, _exists)
            with pytest.raises(PolicyEditRefused, match="names no ground"):  # the rule it would add has none
                await service.accept("p-old", "admin-desk", "standing", datetime.now(UTC))
        finally:
            await engine.dispose()
        difference = changes(PolicyFile(list(first.rules), []), PolicyFile(list(second.rules), []))
        return {rule.id: rule.ground for rule in current.rules}, difference

    grounds, difference = asyncio.run(read())
    assert grounds == {"r-17": GROUND_NOT_RECORDED, "r-4": None}
    assert [rule["id"] for rule in difference["added"]] == ["r-18"] and difference["changed"] == []


async def _exists(name: str) -> bool:
    return True
