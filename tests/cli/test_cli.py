"""The command line: keys, migrations, world loading, and a hub that refuses an unmigrated store."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from broker.cli.main import main
from broker.config import Config
from broker.hub import open_hub
from broker.schema.migrations import SchemaNotCurrent


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
