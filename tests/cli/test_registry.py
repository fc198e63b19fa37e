"""`crossroads agencies`, `categories`, `purposes` and `capacities` on a store of their own: each change an audited
call by the operator at the keyboard, its record keeping the reason; refusals name why and change nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.audit.log import AuditRecord
from broker.cli.main import main
from broker.config import Config
from broker.hub import open_hub
from directory.store import AgencyEntry


@pytest.fixture
def state(tmp_path: Path) -> list[str]:
    runner = CliRunner()
    runner.invoke(main, ["keygen", str(tmp_path / "hub.pem")])
    (tmp_path / "agency.pub.pem").write_text(runner.invoke(main, ["keygen", str(tmp_path / "agency.pem")]).output)
    options = ["--state-dir", str(tmp_path)]
    assert runner.invoke(main, ["db", "upgrade", *options]).exit_code == 0
    return options


def crossroads(*args: str) -> tuple[int, str]:
    """The exit code, and the command's answer on stdout (the hub's log lines go to stderr), or its error."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def registry_records(state: list[str]) -> list[AuditRecord]:
    async def read() -> list[AuditRecord]:
        async with open_hub(Config(state_dir=Path(state[1]))) as hub:
            return await hub.audit.records(kind="registry")

    return asyncio.run(read())


def agency(state: list[str], agency_id: str) -> AgencyEntry | None:
    async def read() -> AgencyEntry | None:
        async with open_hub(Config(state_dir=Path(state[1]))) as hub:
            return await hub.registry.agency(agency_id)

    return asyncio.run(read())


def test_an_agency_is_registered_changed_suspended_and_resumed(state: list[str], tmp_path: Path) -> None:
    key = str(tmp_path / "agency.pub.pem")
    code, shown = crossroads(
        "agencies", "register", "pension-fund", "--name", "Pension Fund", "--adapter-url",
        "https://pension.example/crossroads", "--key-id", "pension-fund-2026", "--public-key", key,
        "--reason", "joins the hub", *state,
    )  # fmt: skip
    assert code == 0, shown
    assert shown.strip() == "pension-fund  active  https://pension.example/crossroads  Pension Fund"
    code, shown = crossroads("keys", "list", "pension-fund", *state)
    assert code == 0 and shown.startswith("pension-fund-2026  valid")
    code, shown = crossroads(
        "agencies", "update", "pension-fund", "--adapter-url", "https://pensions.example/v2", "--reason", "moved",
        *state,
    )  # fmt: skip
    assert code == 0 and "https://pensions.example/v2  Pension Fund" in shown
    code, shown = crossroads("agencies", "suspend", "pension-fund", "--reason", "adapter compromised", *state)
    assert code == 0 and shown.startswith("pension-fund  suspended")
    found = agency(state, "pension-fund")
    assert found is not None and found.status == "suspended"
    code, shown = crossroads("agencies", "resume", "pension-fund", "--reason", "new adapter certified", *state)
    assert code == 0 and shown.startswith("pension-fund  active")
    code, shown = crossroads("agencies", "list", *state)
    assert code == 0 and shown.splitlines() == ["pension-fund  active  https://pensions.example/v2  Pension Fund"]
    records = registry_records(state)
    assert [(r.holder, r.status, r.outcome, r.reason) for r in records] == [
        ("pension-fund", 201, "recorded", "joins the hub"),
        ("pension-fund", 200, "delivered", "moved"),
        ("pension-fund", 200, "delivered", "adapter compromised"),
        ("pension-fund", 200, "delivered", "new adapter certified"),
    ]
    assert {r.requester for r in records} == {records[0].requester} and str(records[0].requester).startswith("cli:")


def test_names_are_listed_and_added(state: list[str]) -> None:
    code, shown = crossroads(
        "categories", "add", "pension", "--description", "Pension rights", "--reason", "d1", *state
    )
    assert code == 0 and shown.strip() == "pension  Pension rights"
    code, shown = crossroads(
        "purposes", "add", "fraud-investigation", "--confidential", "--embargo-days", "365", "--reason", "d2", *state
    )
    assert code == 0 and shown.strip() == "fraud-investigation  confidential for 365 days"
    code, shown = crossroads("purposes", "add", "benefit-eligibility", "--reason", "d3", *state)
    assert code == 0
    code, shown = crossroads("capacities", "add", "pensioner", "--reason", "d4", *state)
    assert code == 0 and shown.strip() == "pensioner"
    assert crossroads("categories", "list", *state) == (0, "pension  Pension rights\n")
    assert crossroads("purposes", "list", *state) == (
        0,
        "benefit-eligibility\nfraud-investigation  confidential for 365 days\n",
    )
    assert crossroads("capacities", "list", *state) == (0, "pensioner\n")
    records = registry_records(state)
    assert [(r.category, r.purpose, r.status, r.reason) for r in records] == [
        ("pension", None, 201, "d1"),
        (None, "fraud-investigation", 201, "d2"),
        (None, "benefit-eligibility", 201, "d3"),
        (None, None, 201, "d4"),
    ]


def test_refusals_name_why_and_change_nothing(state: list[str]) -> None:
    assert crossroads("categories", "add", "pension", "--reason", "first", *state)[0] == 0
    code, shown = crossroads("categories", "add", "pension", "--reason", "again", *state)
    assert code == 1 and "already registered; nothing changed" in shown
    code, shown = crossroads("agencies", "suspend", "nobody-here", "--reason", "x", *state)
    assert code == 1 and "no agency 'nobody-here'" in shown
    code, shown = crossroads("purposes", "add", "audit", "--embargo-days", "3", "--reason", "x", *state)
    assert code == 1 and "confidential purpose only" in shown
    code, shown = crossroads("capacities", "add", "pensioner", "--reason", "x" * 64, *state)
    assert code == 1 and "at most 63 characters" in shown
    code, shown = crossroads(
        "agencies", "register", "pension-fund", "--name", "P", "--adapter-url", "ftp://p.example", "--reason", "x",
        *state,
    )  # fmt: skip
    assert code == 1 and "http or https" in shown
    assert crossroads("agencies", "list", *state) == (0, "")
    assert [(r.status, r.outcome, r.reason) for r in registry_records(state)] == [
        (201, "recorded", "first"),
        (409, "refused", "conflict"),
        (404, "refused", "not-found"),
        (422, "refused", "invalid"),
        (422, "refused", "invalid"),
        (422, "refused", "invalid"),
    ]


def test_a_change_needs_its_reason(state: list[str]) -> None:
    for command in (
        ["agencies", "suspend", "pension-fund"],
        ["categories", "add", "pension"],
        ["purposes", "add", "audit"],
        ["capacities", "add", "pensioner"],
    ):
        code, shown = crossroads(*command, *state)
        assert code == 2 and "--reason" in shown, command
    code, shown = crossroads(
        "agencies", "register", "pension-fund", "--name", "P", "--adapter-url", "https://p.example", "--key-id", "k-1",
        "--reason", "x", *state,
    )  # fmt: skip
    assert code == 2 and "--key-id and --public-key go together" in shown
    assert registry_records(state) == []  # a command that does not run reaches no hub and records nothing


def test_a_category_is_sealed_and_unsealed_with_its_history(state: list[str], tmp_path: Path) -> None:
    assert crossroads("categories", "add", "income", "--reason", "d1", *state)[0] == 0
    code, shown = crossroads("categories", "seal", "income", "--reason", "read by its requester alone", *state)
    assert code == 0 and shown.startswith("v1  sealed") and shown.rstrip().endswith("read by its requester alone")
    assert crossroads("categories", "list", *state) == (0, "income  sealed\n")
    assert crossroads("categories", "unseal", "income", "--reason", "plain again", *state)[1].startswith("v2  plain")
    code, shown = crossroads("categories", "history", "income", *state)
    assert code == 0 and [line.split("  ")[:2] for line in shown.splitlines()] == [["v1", "sealed"], ["v2", "plain"]]
    code, shown = crossroads("categories", "seal", "nothing-here", "--reason", "x", *state)
    assert code == 1 and "no category 'nothing-here'" in shown
    assert [(r.category, r.status, r.reason) for r in registry_records(state)][1:] == [
        ("income", 200, "read by its requester alone"),
        ("income", 200, "plain again"),
        ("nothing-here", 404, "not-found"),
    ]
    (tmp_path / "seal.pub.pem").write_text(crossroads("keygen", "--seal", str(tmp_path / "seal.pem"))[1])
    assert (tmp_path / "seal.pem").stat().st_mode & 0o077 == 0
    agency = [
        "agencies",
        "register",
        "pension-fund",
        "--name",
        "P",
        "--adapter-url",
        "https://p.example",
        "--reason",
        "x",
    ]
    assert crossroads(*agency, *state)[0] == 0
    key = ["keys", "register", "pension-fund", "pf-seal", str(tmp_path / "seal.pub.pem"), "--use", "seal"]
    code, shown = crossroads(*key, *state)
    assert code == 0 and shown.startswith("pf-seal  seal  valid")
    code, shown = crossroads(*key[:3], "pf-sign", str(tmp_path / "seal.pub.pem"), *state)  # an X25519 key never signs
    assert code == 1 and "not an Ed25519 public key" in shown
