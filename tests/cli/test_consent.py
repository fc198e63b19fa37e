"""`crossroads consent` on a store of its own: give, list, refuse, withdraw and lift, each audited; bad
input refused with its reason and nothing recorded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from broker.cli.main import main
from broker.config import Config
from broker.hub import open_hub

SUBJECT = "85073003328"


@pytest.fixture
def state(tmp_path: Path) -> list[str]:
    runner = CliRunner()
    public = runner.invoke(main, ["keygen", str(tmp_path / "agency.pem")]).output
    runner.invoke(main, ["keygen", str(tmp_path / "hub.pem")])
    options = ["--state-dir", str(tmp_path)]
    assert runner.invoke(main, ["db", "upgrade", *options]).exit_code == 0
    world = {
        "categories": [{"name": "income"}, {"name": "civil-status"}],
        "purposes": [{"name": "benefit-eligibility"}],
        "agencies": [
            {
                "id": "tax-authority",
                "name": "Tax",
                "adapter_url": "http://127.0.0.1:9",
                "keys": [{"key_id": "tax-1", "public_key_pem": public}],
            }
        ],
    }
    (tmp_path / "world.yaml").write_text(yaml.safe_dump(world))
    assert runner.invoke(main, ["world", "load", str(tmp_path / "world.yaml"), *options]).exit_code == 0
    return options


def consent(*args: str) -> tuple[int, str]:
    """The exit code, and the command's answer on stdout (the hub's log lines go to stderr), or its error."""
    result = CliRunner().invoke(main, ["consent", *args])
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_the_consent_commands(state: list[str]) -> None:
    code, output = consent(
        "give",
        "--subject",
        SUBJECT,
        "--grantee",
        "tax-authority",
        "--category",
        "income",
        "--category",
        "civil-status",
        "--purpose",
        "benefit-eligibility",
        "--evidence",
        "form 2026/7",
        "--channel",
        "paper",
        "--notice-version",
        "2026-1",
        *state,
    )
    assert code == 0, output
    given = json.loads(output)
    assert (given["categories"], given["channel"], given["notice_version"], given["status"]) == (
        ["income", "civil-status"],
        "paper",
        "2026-1",
        "active",
    )
    assert given["created_by"].startswith("cli:")
    code, output = consent("refuse", "--subject", SUBJECT, "--agency", "tax-authority", "--category", "income", *state)
    assert code == 0, output
    refusal = json.loads(output)
    assert consent("withdraw", given["consent"], "--channel", "phone", *state) == (0, f"withdrawn {given['consent']}\n")
    code, output = consent("withdraw", given["consent"], *state)
    assert code != 0 and "already withdrawn" in output
    assert consent("lift", refusal["refusal"], *state) == (0, f"lifted {refusal['refusal']}\n")
    code, output = consent("list", SUBJECT, *state)
    assert code == 0 and f"consent {given['consent']} withdrawn" in output and "lifted" in output
    code, output = consent("list", SUBJECT, "--json", *state)
    history = json.loads(output)
    assert [(c["status"], c["withdrawn_channel"]) for c in history["consents"]] == [("withdrawn", "phone")]
    assert [(r["status"], r["categories"]) for r in history["refusals"]] == [("lifted", ["income"])]

    async def audited() -> list[tuple[str, int]]:
        async with open_hub(Config(state_dir=Path(state[1]))) as hub:
            return [(record.kind, record.status) for record in await hub.audit.records(subject=SUBJECT)]

    assert asyncio.run(audited()) == [("consent", 201), ("consent", 201), ("consent", 200), ("consent", 200)]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--grantee", "nobody", "--category", "income"], "not a registered agency"),
        (["--grantee", "tax-authority", "--category", "shoe-size"], "not a registered category"),
        (["--grantee", "tax-authority", "--category", "income", "--grantor", "60010100123"], "mandate"),
        (
            ["--grantee", "tax-authority", "--category", "income", "--valid-until", "2020-01-01T00:00:00+00:00"],
            "valid_until",
        ),
    ],
)
def test_bad_input_changes_nothing(state: list[str], args: list[str], reason: str) -> None:
    base = ["give", "--subject", SUBJECT, "--purpose", "benefit-eligibility", "--evidence", "e"]
    code, output = consent(*base, *args, *state)
    assert code != 0 and reason in output and "nothing changed" in output
    assert consent("list", SUBJECT, *state) == (0, f"no consents or refusals for {SUBJECT}\n")
    code, output = consent("withdraw", "c-none", *state)
    assert code != 0 and "no consent 'c-none'" in output
