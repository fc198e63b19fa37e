"""Every audit record a sharing rule decides carries that rule's ground as it stood, covered by the hash chain where
it is set; records written before records carried one (format 1: no `ground`) still verify, in the store after
migration 0009_audit_ground and in an export made before; the ground is shown in the audit search, in the
subject's access log and on the console's person page."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import rfc8785
import sqlalchemy as sa
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from adapters.examples.demo_agencies import SOFIE
from broker.audit import chain
from broker.audit.export import read_checkpoints, read_records
from broker.audit.log import SEQUENCER_LOCK, AuditLog, AuditRecord
from broker.base.signing import SigningKey, generate_key
from broker.base.store import Lane, create_engine
from broker.cli.demo import DemoWorld
from tests.audit.records import checkpoints, unlinked, verify
from tests.consent.test_consent_migration import migrate

KEY = SigningKey("crossroads-hub", generate_key())
INCOME = (
    "Family Benefits Decree of 27 April 2018, art. 18 (means test); "
    "deliberation 19/115 of the information security committee"
)
CHECKPOINT_COLUMNS = ("size", "head", "at", "key_id", "public_key_pem", "signature")
RECORDS = AuditRecord.__table__


def format_1(count: int) -> list[dict[str, Any]]:
    """Records as a hub before grounds linked them: hashed over CHAIN_FIELDS alone (format 1, computed here
    independently of chain.content), with no `ground` (nor any column added since) at all."""
    records, previous = [], chain.GENESIS
    for position, record in enumerate(unlinked(count), start=1):
        record = {name: value for name, value in record.items() if name not in chain.COVERED_WHEN_SET}
        record |= {"position": position}
        content = rfc8785.dumps({name: record[name] for name in chain.CHAIN_FIELDS})
        digest = hashlib.sha256(bytes.fromhex(previous) + content).hexdigest()
        records.append({**record, "prev_hash": previous, "hash": digest})
        previous = digest
    return records


def test_a_record_without_a_ground_hashes_as_before_grounds() -> None:
    old = format_1(12)
    assert verify(old, checkpoints(old, KEY, 10), KEY).ok
    assert verify([{**record, "ground": None} for record in old], checkpoints(old, KEY, 10), KEY).ok


def test_a_ground_is_covered_where_it_is_set() -> None:
    old = format_1(3)
    new = [{**record, "ground": INCOME} for record in unlinked(3, first_seq=4)]
    links = chain.link(chain.Head(3, old[-1]["hash"]), new)
    log = old + [
        {**record, "position": link.position, "prev_hash": link.prev_hash, "hash": link.hash}
        for record, link in zip(new, links, strict=True)
    ]
    assert verify(log, checkpoints(log, KEY, 6), KEY).ok
    for forged in ({"ground": "Income Tax Code, art. 1"}, {"ground": None}, {"ground": ""}):
        tampered = [*log[:4], {**log[4], **forged}, *log[5:]]
        broken = verify(tampered, [], KEY).broken
        assert broken is not None and (broken.position, broken.reason) == (5, "changed"), forged
    added = [*log[:1], {**log[1], "ground": INCOME}, *log[2:]]  # a ground slipped into a record made before
    broken = verify(added, [], KEY).broken
    assert broken is not None and (broken.position, broken.reason) == (2, "changed")


def test_an_export_made_before_grounds_verifies_offline(tmp_path: Path) -> None:
    old = format_1(8)
    signed = checkpoints(old, KEY, 8)
    path = tmp_path / "audit.csv"
    columns = [name for name in old[0] if name not in chain.COVERED_WHEN_SET]
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for record in old:
            writer.writerow([_cell(record[name]) for name in columns])
    with (tmp_path / "audit.checkpoints.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(CHECKPOINT_COLUMNS)
        for checkpoint in signed:
            document = checkpoint.as_json()
            writer.writerow([document[name] for name in CHECKPOINT_COLUMNS])
    lines = tmp_path / "audit.jsonl"
    with lines.open("w", encoding="utf-8") as file:
        file.write(json.dumps({"type": "header", "format": "crossroads-audit/1", "records": 8}) + "\n")
        file.writelines(json.dumps({"type": "checkpoint", **checkpoint.as_json()}) + "\n" for checkpoint in signed)
        file.writelines(json.dumps({"type": "record", **record}) + "\n" for record in old)
    for export in (path, lines):
        records = [record for batch in read_records(export) for record in batch]
        assert "ground" not in records[0]
        verdict = verify(records, read_checkpoints(export), KEY)
        assert (verdict.ok, verdict.records, verdict.unsigned) == (True, 8, 0), export


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def test_a_chain_linked_before_the_revision_verifies_after_it(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    migrate(f"sqlite:///{path}", "0007_audit_reserve")
    old = format_1(5)
    signed = checkpoints(old, KEY, 5)
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        table = sa.Table("audit_records", sa.MetaData(), autoload_with=connection)
        assert "ground" not in table.c
        for record in old:
            at = datetime.fromisoformat(record["at"]).replace(tzinfo=None)
            connection.execute(table.insert().values({**record, "at": at}))
        for checkpoint in signed:
            values = vars(checkpoint) | {"at": checkpoint.at.replace(tzinfo=None)}
            connection.execute(sa.Table("audit_checkpoints", sa.MetaData(), autoload_with=connection).insert(), values)
    engine.dispose()
    migrate(f"sqlite:///{path}", "heads")

    async def verified() -> chain.Verdict:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            return await AuditLog(async_sessionmaker(engine), Lane(engine)).verify([KEY.public_key])
        finally:
            await engine.dispose()

    verdict = asyncio.run(verified())
    assert (verdict.ok, verdict.records, verdict.unsigned) == (True, 5, 0), verdict


async def test_the_record_carries_the_ground_as_it_stood_and_shows_it(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    agency, officer, admin = (
        world.client(name, session) for name in ("family-benefits", "privacy-office", "admin-desk")
    )
    portal = world.client("citizen-portal", session)
    delivered = await agency.exchange(SOFIE, "income", "benefit-eligibility")
    _, rules = await admin.call("GET", "/v1/policies")
    r_2 = next(rule for rule in rules["rules"] if rule["id"] == "r-2")
    assert r_2["ground"] == INCOME
    await admin.call("DELETE", "/v1/policies/r-2", {"reason": "amended"})
    amended = {**r_2, "ground": "Family Benefits Decree of 27 April 2018, art. 18, as amended on 1 June 2026"}
    await admin.call("POST", "/v1/policies", {"rule": amended, "reason": "the decree was amended"})
    again = await agency.exchange(SOFIE, "income", "benefit-eligibility")

    _, found = await officer.call("GET", f"/v1/audit?subject={SOFIE}&category=income&kind=exchange")
    grounds = {record["exchange"]: (record["rule_id"], record["ground"]) for record in found["records"]}
    assert grounds == {delivered.exchange: ("r-2", INCOME), again.exchange: ("r-2", amended["ground"])}
    _, log = await portal.call("GET", f"/v1/subjects/{SOFIE}/access-log")
    assert [(access["exchange"], access["ground"]) for access in log["accesses"]] == [
        (again.exchange, amended["ground"]),
        (delivered.exchange, INCOME),
    ]
    _, history = await admin.call("GET", "/v1/policies/history")
    assert history["versions"][-1]["diff"]["added"] == [amended]

    _, verdict = await officer.call("GET", "/v1/audit/verify")
    assert verdict["ok"] is True and verdict["records"] >= 4
    async with world.hub.engine.begin() as connection:
        if world.hub.engine.dialect.name == "postgresql":  # the sequencer links nothing while the row changes
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCER_LOCK})
        position = await connection.scalar(select(RECORDS.c.position).where(RECORDS.c.exchange == delivered.exchange))
        await connection.execute(
            update(RECORDS).where(RECORDS.c.exchange == delivered.exchange).values(ground="Royal Decree of nowhere")
        )
    _, broken = await officer.call("GET", "/v1/audit/verify")
    assert broken["ok"] is False and (broken["break"]["position"], broken["break"]["reason"]) == (position, "changed")
