"""`crossroads audit` against a running world's store: exports to JSON Lines and CSV that verify offline
with nothing but the hub's public key, a tampered export named at its record, online verification, the
anomaly report, and the search that says who looked at a person's data and on what ground."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner, Result

from adapters.examples.demo_agencies import ANNA, JAN, SOFIE
from broker.audit.chain import timestamp
from broker.base.signing import generate_key, public_key_pem
from broker.cli.demo import DemoWorld, run_scenario
from broker.cli.main import main


async def crossroads(*args: str) -> Result:
    """Run the command in a thread: it has its own event loop, while the world serves on this one."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


def store(world: DemoWorld) -> list[str]:
    return ["--state-dir", str(world.state_dir), "--database-url", world.hub.config.database]


async def sealed(world: DemoWorld) -> int:
    """Broker the demo scenario, then link and sign everything; the number of records."""
    await run_scenario(world)
    head = await world.hub.sequencer.step(seal=True)
    assert head is not None
    return head.size


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
async def test_an_export_verifies_offline_with_only_the_public_key(
    world: DemoWorld, tmp_path: Path, suffix: str
) -> None:
    size = await sealed(world)
    exported, public = tmp_path / f"audit{suffix}", tmp_path / "hub.pub.pem"
    public.write_text(public_key_pem(world.hub.key.public_key))
    result = await crossroads("audit", "export", str(exported), *store(world))
    assert result.exit_code == 0, result.output
    assert f"exported {size} records" in result.output
    checked = await crossroads("audit", "verify", "--export", str(exported), "--public-key", str(public), "--json")
    assert checked.exit_code == 0, checked.output
    verdict = json.loads(checked.output)
    assert (verdict["ok"], verdict["records"], verdict["unsigned"]) == (True, size, 0)
    stranger = tmp_path / "stranger.pem"
    stranger.write_text(public_key_pem(generate_key().public_key()))
    untrusted = await crossroads("audit", "verify", "--export", str(exported), "--public-key", str(stranger))
    assert untrusted.exit_code == 1 and "untrusted-checkpoint" in untrusted.output


async def test_a_tampered_json_lines_export_is_named_at_its_record(world: DemoWorld, tmp_path: Path) -> None:
    await sealed(world)
    exported, public = tmp_path / "audit.jsonl", tmp_path / "hub.pub.pem"
    public.write_text(public_key_pem(world.hub.key.public_key))
    assert (await crossroads("audit", "export", str(exported), *store(world))).exit_code == 0
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    [target] = [line for line in lines if line.get("position") == 4]
    target["purpose"] = "fraud-investigation"
    exported.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = await crossroads("audit", "verify", "--export", str(exported), "--public-key", str(public))
    assert result.exit_code == 1
    assert f"BROKEN at position 4 (seq {target['seq']}): changed" in result.output


async def test_a_csv_export_carries_chain_fields_and_its_checkpoints(world: DemoWorld, tmp_path: Path) -> None:
    size = await sealed(world)
    exported = tmp_path / "audit.csv"
    assert (await crossroads("audit", "export", str(exported), *store(world))).exit_code == 0
    with exported.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == size and [int(row["position"]) for row in rows] == list(range(1, size + 1))
    assert all(len(row["hash"]) == 64 for row in rows)
    with (tmp_path / "audit.checkpoints.csv").open(newline="") as file:
        checkpoints = list(csv.DictReader(file))
    assert int(checkpoints[-1]["size"]) == size and checkpoints[-1]["head"] == rows[-1]["hash"]


async def test_online_verification_and_its_refusals(world: DemoWorld, tmp_path: Path) -> None:
    size = await sealed(world)
    result = await crossroads("audit", "verify", *store(world))  # the hub keys the store records: no key file
    assert result.exit_code == 0, result.output
    assert f"ok: {size} records" in result.output
    offline = await crossroads("audit", "verify", "--export", str(world.hub.config.key_path))
    assert offline.exit_code != 0 and "--public-key" in offline.output


async def test_anomaly_report(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    agency = world.client("family-benefits", session)
    for _ in range(5):
        await agency.exchange(JAN, "civil-status", "benefit-eligibility")
    result = await crossroads("audit", "anomalies", *store(world))
    assert result.exit_code == 0, result.output
    assert "repeated-lookup" in result.output and f"looked up {JAN} 5 times" in result.output
    as_json = await crossroads("audit", "anomalies", *store(world), "--json")
    assert [finding["kind"] for finding in json.loads(as_json.stdout)] == ["repeated-lookup"]
    bad = await crossroads("audit", "anomalies", *store(world), "--since", "last tuesday")
    assert bad.exit_code != 0


async def test_search_answers_who_looked_at_a_persons_income_and_on_what_ground(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    agency = world.client("family-benefits", session)
    income = await agency.exchange(SOFIE, "income", "benefit-eligibility")
    await agency.exchange(SOFIE, "civil-status", "benefit-eligibility")  # not income
    await agency.exchange(ANNA, "income", "fraud-investigation")  # not her
    since, until = timestamp(datetime.now(UTC) - timedelta(days=365)), timestamp(datetime.now(UTC) + timedelta(days=1))
    question = ["--subject", SOFIE, "--category", "income", "--kind", "exchange", "--since", since, "--until", until]
    answered = await crossroads("audit", "search", *question, "--format", "json", *store(world))
    assert answered.exit_code == 0, answered.output
    [record] = json.loads(answered.stdout)["records"]
    assert (record["exchange"], record["requester"], record["purpose"], record["rule_id"]) == (
        income.exchange,
        "family-benefits",
        "benefit-eligibility",
        "r-2",
    )
    assert record["ground"].startswith("Family Benefits Decree of 27 April 2018, art. 18")
    table = await crossroads("audit", "search", *question, *store(world))
    assert table.exit_code == 0, table.output
    header, row = table.stdout.splitlines()
    assert header.split() == ["at", "requester", "subject", "category", "purpose", "outcome", "rule", "ground"]
    assert f"family-benefits  {SOFIE}  income" in row and "r-2 v1" in row and record["ground"] in row
    searches = await world.hub.audit.records(kind="audit", subject=SOFIE)
    assert [(r.outcome, r.requester.startswith("cli:")) for r in searches] == [("delivered", True)] * 2
    first = await crossroads("audit", "search", "--subject", SOFIE, "--limit", "1", *store(world))
    assert first.exit_code == 0 and "more records match: --cursor " in first.output
    bad = await crossroads("audit", "search", "--since", "last year", *store(world))
    assert bad.exit_code != 0 and "RFC 3339" in bad.output
