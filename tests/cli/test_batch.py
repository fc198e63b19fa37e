"""`crossroads batch submit`: an agency's file sent to a running hub as one batch, signed with the key its adapter
config names, followed to its end with a progress bar, its answers written to a file."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import yaml

from adapters.examples.demo_agencies import ANNA, SOFIE
from broker.base.signing import public_key_pem
from broker.cli.demo import DemoWorld


async def test_an_agency_submits_a_batch_from_the_command_line(sqlite_world: DemoWorld, tmp_path: Path) -> None:
    world = sqlite_world
    (tmp_path / "hub.pub").write_text(public_key_pem(world.hub.key.public_key))
    config = {
        "agency": "family-benefits",
        "key": {"id": world.keys["family-benefits"].key_id, "file": str(world.state_dir / "keys/family-benefits.pem")},
        "hub": {"key_id": world.hub.key.key_id, "public_key_file": "hub.pub"},
    }
    (tmp_path / "agency.yaml").write_text(yaml.safe_dump(config))
    asked = [
        {"ref": "a", "subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"},
        {"ref": "b", "subject": SOFIE, "category": "income", "purpose": "benefit-eligibility"},
        {"ref": "c", "subject": ANNA, "category": "health-record", "purpose": "benefit-eligibility"},
    ]
    (tmp_path / "check.ndjson").write_text("".join(json.dumps(line) + "\n" for line in asked))
    command = ["batch", "submit", str(tmp_path / "check.ndjson"), "--config", str(tmp_path / "agency.yaml")]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker",
        *command,
        "--hub",
        world.hub_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "done: 3 of 3 lines (2 delivered, 1 refused)" in out.decode() and "line" in err.decode()  # the bar
    answers = [json.loads(line) for line in (tmp_path / "check.results.ndjson").read_text().splitlines()]
    assert [(answer["ref"], answer["status"]) for answer in answers] == [("a", 200), ("b", 200), ("c", 403)]
    assert answers[0]["data"] and "data" not in answers[2]

    refused = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", *command, "--hub", "http://127.0.0.1:9", stderr=asyncio.subprocess.PIPE
    )
    _, err = await refused.communicate()
    assert refused.returncode == 1 and "could not be reached" in err.decode()
