"""`crossroads directory import` and `status` on a store of their own: a file applied with a progress bar, every
bad line named, the same file again changing nothing, each import audited."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from broker.cli.main import main
from broker.config import Config
from broker.hub import open_hub

FROM = "2026-12-01T00:00:00Z"
SUBJECTS = [f"7701010{index:04d}" for index in range(25)]


@pytest.fixture
def state(tmp_path: Path) -> list[str]:
    runner = CliRunner()
    runner.invoke(main, ["keygen", str(tmp_path / "hub.pem")])
    options = ["--state-dir", str(tmp_path)]
    assert runner.invoke(main, ["db", "upgrade", *options]).exit_code == 0
    world = {
        "categories": [{"name": "income"}],
        "capacities": [{"name": "taxpayer"}],
        "agencies": [{"id": "tax-authority", "name": "Tax", "adapter_url": "http://127.0.0.1:9"}],
    }
    (tmp_path / "world.yaml").write_text(yaml.safe_dump(world))
    assert runner.invoke(main, ["world", "load", str(tmp_path / "world.yaml"), *options]).exit_code == 0
    return options


def test_an_import_from_the_command_line(state: list[str], tmp_path: Path) -> None:
    lines = [json.dumps({"kind": "relationship", "subject": s, "capacity": "taxpayer", "from": FROM}) for s in SUBJECTS]
    lines.insert(3, json.dumps({"kind": "holding", "subject": SUBJECTS[0], "category": "shoes", "from": FROM}))
    path = tmp_path / "refs.ndjson"
    path.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    result = runner.invoke(main, ["directory", "import", str(path), "--agency", "tax-authority", *state])
    assert result.exit_code == 0, result.output
    assert "26 lines, 25 applied, 1 rejected" in result.stdout and "line 4: " in result.stdout
    import_id = re.search(r"import (\S+) done", result.stdout)
    assert import_id is not None
    again = runner.invoke(main, ["directory", "import", str(path), "--agency", "tax-authority", *state])
    assert again.exit_code == 0 and "25 applied, 1 rejected" in again.stdout
    shown = runner.invoke(main, ["directory", "status", import_id.group(1), *state])
    assert shown.exit_code == 0 and "line 4: " in shown.stdout and "shoes" in shown.stdout

    async def read() -> tuple[int, list[str | None]]:
        async with open_hub(Config(state_dir=Path(state[1]))) as hub:
            now = datetime.now(UTC)
            related = await hub.directory.relationships_of(SUBJECTS[7], now, None)
            records = await hub.audit.records(kind="directory")
            return len(related), sorted(str(record.reason) for record in records if record.outcome == "recorded")

    related, recorded = asyncio.run(read())
    assert related == 1  # declared twice, one reference
    assert recorded == ["None", "None", "import-done", "import-done"]  # each command, and each import's end


def test_an_import_for_an_unknown_agency_is_refused(state: list[str], tmp_path: Path) -> None:
    path = tmp_path / "refs.ndjson"
    path.write_text(json.dumps({"kind": "relationship", "subject": "1", "capacity": "taxpayer", "from": FROM}) + "\n")
    result = CliRunner().invoke(main, ["directory", "import", str(path), "--agency", "nobody", *state])
    assert result.exit_code != 0 and "no agency 'nobody'" in result.output
