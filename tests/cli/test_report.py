"""`crossroads audit report` against a running world's store: a person's subject access report in each format, on
standard output or in a file, itself an audit record naming the person; a period or a person it cannot read is
refused before anything is read."""

from __future__ import annotations

import csv
import io
from html import unescape
from pathlib import Path

import aiohttp
from pypdf import PdfReader

from adapters.examples.demo_agencies import ANNA, JAN
from broker.audit.chain import timestamp
from broker.cli.demo import DemoWorld
from tests.audit.test_report import MANDATE, OFFICERS_REASON, jan_and_anna
from tests.cli.test_audit import crossroads, store


async def test_a_report_in_each_format_and_its_audit_record(
    world: DemoWorld, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    scenario = await jan_and_anna(world, session)
    page = await crossroads("audit", "report", JAN, "--since", "1d", *store(world))
    assert page.exit_code == 0, page.output
    shown = unescape(page.stdout)
    assert shown.startswith("<!doctype html>") and "Family Benefits Agency (family-benefits)" in shown
    assert MANDATE in shown and OFFICERS_REASON not in shown and ANNA not in shown

    table = tmp_path / "jan.csv"
    period = ["--since", timestamp(scenario.started), "--until", timestamp(scenario.ended)]
    written = await crossroads("audit", "report", JAN, *period, "--format", "csv", "--out", str(table), *store(world))
    assert written.exit_code == 0, written.output
    assert f"wrote the csv report on {JAN} to {table}" in written.output
    with table.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert {row["item"]: row["value"] for row in rows if row["section"] == "report"}["subject"] == JAN
    accesses = [row for row in rows if row["section"] == "access"]
    assert [(row["purpose"], row["outcome"]) for row in accesses][-2:] == [
        ("benefit-eligibility", "refused"),
        ("fraud-investigation", "delivered"),
    ]
    assert {"consent", "refusal", "review", "notification"} <= {row["section"] for row in rows}

    document = await crossroads("audit", "report", JAN, "--since", "1d", "--format", "pdf", *store(world))
    assert document.exit_code == 0, document.output
    assert document.stdout_bytes.startswith(b"%PDF")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(document.stdout_bytes)).pages)
    assert JAN in text and "Who asked for your data" in text

    reports = await world.hub.audit.records(kind="audit", subject=JAN)
    assert [(r.reason, r.outcome, r.status, r.requester.startswith("cli:")) for r in reports] == [
        ("subject-report", "delivered", 200, True)
    ] * 3


async def test_a_period_or_person_it_cannot_read_is_refused(sqlite_world: DemoWorld) -> None:
    for arguments, said in (
        (["--since", "last year"], "RFC 3339"),
        (["--since", "1d", "--until", "2d"], "until must be later than since"),
        (["--since", "1d", "--format", "docx"], "docx"),
        ([], "--since"),
    ):
        refused = await crossroads("audit", "report", JAN, *arguments, *store(sqlite_world))
        assert refused.exit_code != 0 and said in refused.output, (arguments, refused.output)
    stranger = await crossroads("audit", "report", "not a number!", "--since", "1d", *store(sqlite_world))
    assert stranger.exit_code != 0 and "national number" in stranger.output
    assert await sqlite_world.hub.audit.records(kind="audit") == []
