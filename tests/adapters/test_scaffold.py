"""`crossroads adapter new` makes a project whose own test passes; its world entry registers the agency;
`crossroads adapter run` serves it; and a hub brokers an exchange to it, as docs/connect-your-agency.md
walks through.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from broker.base.signing import public_key_pem
from broker.cli.demo import DemoWorld, free_port
from broker.cli.main import main
from broker.cli.world import read_world
from policies.rules import Rule
from tests.processes import crossroads

SUBJECT = "00000000097"  # the handler stub's sample record


def new(tmp_path: Path, *arguments: str) -> Path:
    project = tmp_path / "pension-fund"
    result = CliRunner().invoke(
        main, ["adapter", "new", "pension-fund", "--directory", str(project), "--category", "pension", *arguments]
    )
    assert result.exit_code == 0, result.output
    return project


def test_the_scaffold_is_complete_and_its_test_passes(tmp_path: Path) -> None:
    project = new(tmp_path)
    names = {str(path.relative_to(project)) for path in project.rglob("*") if path.is_file()}
    assert names == {
        "README.md",
        "adapter.yaml",
        "handlers.py",
        "test_adapter.py",
        "world-entry.yaml",
        "keys/pension-fund.pem",
        "keys/pension-fund.pub.pem",
    }
    assert stat.S_IMODE((project / "keys" / "pension-fund.pem").stat().st_mode) == 0o600
    assert "PRIVATE" not in (project / "world-entry.yaml").read_text()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout
    again = CliRunner().invoke(main, ["adapter", "new", "pension-fund", "--directory", str(project)])
    assert again.exit_code != 0 and "never overwritten" in again.output
    bad = CliRunner().invoke(main, ["adapter", "new", "Pension Fund", "--directory", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "agency id" in bad.output


def test_the_world_entry_registers_the_agency(tmp_path: Path) -> None:
    project = new(tmp_path)
    state = ["--state-dir", str(tmp_path / "hub")]
    runner = CliRunner()
    assert runner.invoke(main, ["keygen", str(tmp_path / "hub" / "hub.pem")]).exit_code == 0
    assert runner.invoke(main, ["db", "upgrade", *state]).exit_code == 0
    loaded = runner.invoke(main, ["world", "load", str(project / "world-entry.yaml"), *state])
    assert loaded.exit_code == 0, loaded.output


async def test_a_scaffolded_adapter_joins_a_running_hub(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    world, port = sqlite_world, free_port()
    hub_key = tmp_path / "hub.pub.pem"
    await asyncio.to_thread(hub_key.write_text, public_key_pem(world.hub.key.public_key))
    project = await asyncio.to_thread(new, tmp_path, "--port", str(port), "--hub-public-key", str(hub_key))

    # The hub's operator loads the agency's world entry, and says what it holds and who may ask.
    entry = await asyncio.to_thread(read_world, project / "world-entry.yaml")
    entry["holdings"][0]["subjects"] = [SUBJECT]
    entry["relationships"] = [{"agency": "family-benefits", "capacity": "beneficiary", "subjects": [SUBJECT]}]
    await world.hub.directory.load(entry, datetime.now(UTC))
    rules = await world.hub.policies.rules()
    await world.hub.policies.replace(
        [*rules.rules, Rule("r-pension", "agency:family-benefits", "pension", "benefit-eligibility", "white")],
        list(rules.groups),
        "test",
        "pension fund joins",
        datetime.now(UTC),
    )
    async with crossroads(
        "adapter",
        "run",
        str(project / "adapter.yaml"),
        answers=f"http://127.0.0.1:{port}" + "/healthz",
        log=tmp_path / "adapter.log",
    ):
        result = await world.client("family-benefits", session).exchange(SUBJECT, "pension", "benefit-eligibility")
    assert (result.status, result.holder, result.data) == (200, "pension-fund", {"example_field": "example value"})


def test_adapter_run_reports_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "adapter.yaml"
    config.write_text("agency: x\n")
    result = CliRunner().invoke(main, ["adapter", "run", str(config)])
    assert result.exit_code != 0 and "'key' is required" in result.output


@pytest.mark.parametrize("missing", ["keys/hub.pub.pem"])
def test_adapter_run_says_which_key_file_is_missing(tmp_path: Path, missing: str) -> None:
    project = new(tmp_path)
    result = CliRunner().invoke(main, ["adapter", "run", str(project / "adapter.yaml")])
    assert result.exit_code != 0 and missing in result.output
