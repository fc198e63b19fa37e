"""The command line: keys, migrations, world loading, and a hub that refuses an unmigrated store."""

from __future__ import annotations

import asyncio
import csv
import io
import stat
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from broker.base.signing import public_key_pem
from broker.cli.acting import on_hub
from broker.cli.demo import DemoWorld, demo_world, free_port
from broker.cli.main import main
from broker.config import Config
from broker.hub import Hub, open_hub
from broker.schema.migrations import SchemaNotCurrent, heads
from tests.processes import crossroads


def test_keygen_writes_owner_only_key_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "hub.pem"
    result = CliRunner().invoke(main, ["keygen", str(path)])
    assert result.exit_code == 0 and "BEGIN PUBLIC KEY" in result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert CliRunner().invoke(main, ["keygen", str(path)]).exit_code != 0


def test_hub_refuses_an_unmigrated_store(tmp_path: Path) -> None:
    CliRunner().invoke(main, ["keygen", str(tmp_path / "hub.pem")])

    async def start() -> None:
        async with open_hub(Config(state_dir=tmp_path)):
            pass

    with pytest.raises(SchemaNotCurrent, match="crossroads db upgrade"):
        asyncio.run(start())


def test_world_load_from_yaml(tmp_path: Path) -> None:
    runner = CliRunner()
    state = ["--state-dir", str(tmp_path)]
    public = runner.invoke(main, ["keygen", str(tmp_path / "agency.pem")]).output
    runner.invoke(main, ["keygen", str(tmp_path / "hub.pem")])
    assert runner.invoke(main, ["db", "upgrade", *state]).exit_code == 0
    world = {
        "categories": [{"name": "income"}],
        "purposes": [{"name": "benefit-eligibility"}],
        "agencies": [
            {
                "id": "tax-authority",
                "name": "Tax",
                "adapter_url": "http://127.0.0.1:9",
                "keys": [{"key_id": "tax-1", "public_key_pem": public}],
            }
        ],
        "holdings": [{"holder": "tax-authority", "category": "income", "subjects": ["85073003328"]}],
        "rules": [
            {
                "id": "r-1",
                "requester": "agency:tax-authority",
                "category": "income",
                "purpose": "benefit-eligibility",
                "zone": "white",
                "ground": "Family Benefits Decree, art. 18",
            }
        ],
    }
    (tmp_path / "world.yaml").write_text(yaml.safe_dump(world))
    result = runner.invoke(main, ["world", "load", str(tmp_path / "world.yaml"), *state])
    assert result.exit_code == 0, result.output

    async def check() -> None:
        async with open_hub(Config(state_dir=tmp_path)) as hub:
            assert (await hub.directory.agency("tax-authority")) is not None
            assert (await hub.policies.decide("tax-authority", "income", "benefit-eligibility")).zone == "white"

    asyncio.run(check())


async def test_every_command_finds_the_demos_state_directory(tmp_path: Path) -> None:
    """One layout: the hub key at STATE_DIR/hub.pem; a demo directory made before kept it in keys/, and keeps it."""
    state = tmp_path / "state"
    former = await asyncio.to_thread(CliRunner().invoke, main, ["keygen", str(state / "keys" / "hub.pem")])
    async with demo_world(state) as world:
        assert world.hub.config.key_path == state / "hub.pem"
        assert public_key_pem(world.hub.key.public_key) == former.output
        listed = await asyncio.to_thread(CliRunner().invoke, main, ["policy", "list", "--state-dir", str(state)])
    assert listed.exit_code == 0, listed.output
    assert "r-1,agency:family-benefits" in listed.output
    assert not (state / "keys" / "hub.pem").exists()


def test_a_missing_hub_key_names_the_former_place(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(main, ["keygen", str(tmp_path / "keys" / "hub.pem")])
    assert runner.invoke(main, ["db", "upgrade", "--state-dir", str(tmp_path)]).exit_code == 0
    result = runner.invoke(main, ["policy", "list", "--state-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert f"move {tmp_path / 'keys' / 'hub.pem'} there" in str(result.exception) + result.output


async def test_one_shot_commands_exit_without_a_traceback(world: DemoWorld) -> None:
    """A command acts and leaves: it makes none of a serving hub's rounds, so none is cut off mid-query at its exit
    (`-X dev` reports what a cut-off connection leaves behind every time, not now and then)."""
    store = ("--state-dir", str(world.state_dir), "--database-url", world.hub.config.database)
    commands = [
        ("policy", "evaluate", "family-benefits", "income", "benefit-eligibility"),
        ("policy", "add", '{"requester": "agency:nobody"}', "--reason", "refused"),
    ]
    for command in commands:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-X", "dev", "-m", "broker", *command, *store, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await process.communicate()
        said = [line for line in stderr.decode().splitlines() if not line.startswith('{"')]  # log lines are JSON
        refused = [line for line in said if line.startswith("Error: ") and line.endswith("; nothing changed")]
        assert said == refused and len(refused) == (1 if "add" in command else 0), said


def test_a_command_runs_only_the_work_that_ends_with_it(tmp_path: Path) -> None:
    """The command itself, the audit and nonce writers and the audit sequencer, which finish what they hold at its
    exit; none of the rounds of a serving hub (policy and directory following, nonce pruning, deliveries, imports)."""
    runner = CliRunner()
    runner.invoke(main, ["keygen", str(tmp_path / "hub.pem")])
    assert runner.invoke(main, ["db", "upgrade", "--state-dir", str(tmp_path)]).exit_code == 0

    async def running(hub: Hub) -> set[str]:
        return {task.get_coro().__qualname__ for task in asyncio.all_tasks()}  # type: ignore[union-attr]

    assert on_hub((tmp_path, "", None), running) == {"on_hub.<locals>.run", "GroupCommit._run", "Sequencer._run"}


async def test_serve_says_where_it_listens(tmp_path: Path) -> None:
    runner = CliRunner()
    await asyncio.to_thread(runner.invoke, main, ["keygen", str(tmp_path / "hub.pem")])
    assert (
        await asyncio.to_thread(runner.invoke, main, ["db", "upgrade", "--state-dir", str(tmp_path)])
    ).exit_code == 0
    port, log = free_port(), tmp_path / "serve.log"
    async with crossroads(
        "serve", "--state-dir", str(tmp_path), "--port", str(port), answers=f"http://127.0.0.1:{port}/healthz", log=log
    ):
        said = await asyncio.to_thread(log.read_text)
    assert f"listening on http://127.0.0.1:{port}\n" in said


def test_db_upgrade_says_which_revisions_it_applied(tmp_path: Path) -> None:
    first = CliRunner().invoke(main, ["db", "upgrade", "--state-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    applied = [line.removeprefix("applied ") for line in first.output.splitlines() if line.startswith("applied ")]
    assert applied[0] == "0001" and set(applied) >= heads() and len(set(applied)) == len(applied)
    assert first.output.splitlines()[-1] == f"schema is current ({len(applied)} revisions applied)"
    again = CliRunner().invoke(main, ["db", "upgrade", "--state-dir", str(tmp_path)])
    assert again.output == "schema is current; nothing to apply\n"


async def test_policy_list_as_csv_has_a_header_row(sqlite_world: DemoWorld) -> None:
    store = ["--state-dir", str(sqlite_world.state_dir)]
    listed = await asyncio.to_thread(CliRunner().invoke, main, ["policy", "list", "--format", "csv", *store])
    assert listed.exit_code == 0, listed.output
    rows = list(csv.DictReader(io.StringIO(listed.output)))
    rules = (await sqlite_world.hub.policies.rules()).rules
    assert list(rows[0]) == [
        "id",
        "requester",
        "category",
        "purpose",
        "zone",
        "consent",
        "fields",
        "emergency",
        "ground",
    ]
    assert [(row["id"], row["zone"]) for row in rows] == [(rule.id, rule.zone) for rule in rules]
