"""The chain verified on every core: spans verified in processes of their own prove a whole chain, with the same
verdict as the sequential verification; anything else (a changed, deleted or reordered record, a seam that does
not hold, a truncated log) gets the sequential verification's verdict, which names the first break."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from broker.audit import chain, verify_spans
from broker.audit.log import AuditCheckpoint, AuditLog, AuditRecord
from broker.audit.verify_spans import SpanVerdict, joined, spans
from broker.base.signing import SigningKey, generate_key
from broker.base.store import Lane, create_engine
from broker.schema.migrations import upgrade
from tests.audit.records import checkpoints, linked, rehashed

KEY = SigningKey("crossroads-hub", generate_key())
RECORDS = AuditRecord.__table__


def test_spans_cut_the_chain_in_order() -> None:
    assert spans(10, 4) == [(1, 4), (5, 8), (9, 10)]
    assert spans(8, 4) == [(1, 4), (5, 8)] and spans(0, 4) == []


def test_spans_join_only_where_every_seam_holds() -> None:
    records = linked(9)
    signed = checkpoints(records, KEY, 6)
    whole = [
        SpanVerdict(1, chain.GENESIS, chain.Head(3, records[2]["hash"]), None, whole=True),
        SpanVerdict(4, records[2]["hash"], chain.Head(6, records[5]["hash"]), signed[0], whole=True),
        SpanVerdict(7, records[5]["hash"], chain.Head(9, records[8]["hash"]), None, whole=True),
    ]
    assert joined(whole, signed, [KEY.public_key]) == chain.Verdict(9, records[8]["hash"], signed[0], None)
    broken = [whole[0], SpanVerdict(4, records[2]["hash"], chain.Head(5, records[4]["hash"]), None, False), whole[2]]
    unsewn = [whole[0], SpanVerdict(4, records[1]["hash"], whole[1].head, signed[0], True), whole[2]]
    assert joined(broken, signed, [KEY.public_key]) is None and joined(unsewn, signed, [KEY.public_key]) is None
    assert joined(whole[:2], checkpoints(records, KEY, 6, 9), [KEY.public_key]) is None  # truncated
    assert joined(whole, signed, [SigningKey("other", generate_key()).public_key]) is None  # untrusted


async def _store(engine: AsyncEngine, records: list[dict[str, Any]], signed: list[chain.Checkpoint]) -> AuditLog:
    await upgrade(engine)
    async with engine.begin() as connection:
        await connection.execute(
            insert(RECORDS), [{**record, "at": datetime.fromisoformat(record["at"])} for record in records]
        )
        for checkpoint in signed:
            await connection.execute(insert(AuditCheckpoint.__table__).values(vars(checkpoint)))
    return AuditLog(async_sessionmaker(engine), Lane(engine))


@pytest.fixture
def short_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_spans, "SPAN", 7)
    monkeypatch.setattr(verify_spans, "WORTH_IT", 10)


@pytest.mark.usefixtures("short_spans")
async def test_spans_on_every_core_give_the_sequential_verdict(database_url: str) -> None:
    records = linked(40)
    signed = checkpoints(records, KEY, 12, 30)
    engine = create_engine(database_url)
    try:
        await _verify(engine, records, signed)
    finally:
        await engine.dispose()


async def _verify(engine: AsyncEngine, records: list[dict[str, Any]], signed: list[chain.Checkpoint]) -> None:
    log = await _store(engine, records, signed)
    seen: list[int] = []
    verdict = await verify_spans.verify(log, [KEY.public_key], seen.append, workers=2)
    assert verdict == await log.verify([KEY.public_key]) == chain.Verdict(40, records[-1]["hash"], signed[1], None)
    assert sum(seen) == 40 and len(seen) == len(spans(40, 7))

    async with engine.begin() as connection:
        await connection.execute(update(RECORDS).where(RECORDS.c.position == 17).values(subject="00000000097"))
    changed = await verify_spans.verify(log, [KEY.public_key], workers=2)
    assert changed == await log.verify([KEY.public_key]) and changed.broken is not None
    assert (changed.broken.position, changed.broken.reason) == (17, "changed")

    async with engine.begin() as connection:  # the change covered by rehashing: the next seam breaks
        await connection.execute(
            update(RECORDS)
            .where(RECORDS.c.position == 17)
            .values(hash=rehashed({**records[16], "subject": "00000000097"})["hash"])
        )
        await connection.execute(delete(RECORDS).where(RECORDS.c.position == 40))
    unsewn = await verify_spans.verify(log, [KEY.public_key], workers=2)
    assert unsewn == await log.verify([KEY.public_key]) and unsewn.broken is not None
    assert unsewn.broken.reason in {"changed", "checkpoint-mismatch"}
