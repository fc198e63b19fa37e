"""Nonces claimed through the audit log's group commit, on SQLite and PostgreSQL: concurrent requests share a
transaction, each still learns whether its own nonce was new, a repeat within one batch or across batches is a
replay, a record and its nonce are written together or not at all, and no request goes on before its nonce is
stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from broker.audit.log import AuditEntry, AuditLog, AuditRecord
from broker.audit.nonces import NonceUse, SeenNonce, first_uses
from broker.base import errors
from broker.base.store import Lane, StoreUnavailable, create_engine
from broker.schema.migrations import upgrade

AT = datetime(2026, 11, 22, 12, tzinfo=UTC)


def test_first_uses_marks_repeats_within_a_batch() -> None:
    batch = [NonceUse("k1", "a", AT), NonceUse("k1", "b", AT), NonceUse("k1", "a", AT), NonceUse("k2", "a", AT)]
    distinct, first = first_uses(batch)
    assert [(use.key_id, use.nonce) for use in distinct] == [("k1", "a"), ("k1", "b"), ("k2", "a")]
    assert first == [True, True, False, True]


def _entry(key_id: str, nonce: str) -> AuditEntry:
    return AuditEntry(AT, "exchange", requester=key_id, claim=NonceUse(key_id, nonce, AT))


async def _claimed(audit: AuditLog, key_id: str, nonce: str) -> str:
    try:
        await audit.claim(_entry(key_id, nonce))
    except errors.Replay:
        return "replay"
    return "new"


async def _recorded(audit: AuditLog, key_id: str, nonce: str) -> str:
    entry = _entry(key_id, nonce)
    entry.outcome, entry.status = "refused", 403
    try:
        await audit.commit(entry)
    except errors.Replay:
        return "replay"
    return "new"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[tuple[AuditLog, async_sessionmaker[AsyncSession]]]:
    """An audit log on a migrated store, with its sessions to count what was written."""
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        yield AuditLog(sessions, Lane(engine), batch_max=16), sessions
    finally:
        await engine.dispose()


async def test_concurrent_claims_share_transactions_and_replays_are_caught(
    store: tuple[AuditLog, async_sessionmaker[AsyncSession]],
) -> None:
    audit, sessions = store
    async with audit.writing():
        # 64 requests at once, every nonce sent twice (the copies land in the same batch or in a later one).
        outcomes = await asyncio.gather(*(_claimed(audit, "agency-1", f"n{n % 32}") for n in range(64)))
        assert outcomes.count("new") == 32 and outcomes.count("replay") == 32
        assert await _claimed(audit, "agency-1", "n0") == "replay"  # stored: a later batch sees it
        assert await _claimed(audit, "agency-2", "n0") == "new"  # nonces are per key id
        assert audit.batches < 34  # fewer transactions than requests: concurrent ones shared them
    async with sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(SeenNonce))
    assert stored == 33  # each request had its nonce stored before it was answered
    with pytest.raises(StoreUnavailable):  # the writer is closed: nothing goes on unrecorded
        await audit.claim(_entry("agency-1", "late"))


async def test_a_record_and_its_nonce_are_written_together(
    store: tuple[AuditLog, async_sessionmaker[AsyncSession]],
) -> None:
    """A record written with its request's nonce (an exchange's reservation or its refusal) claims it in the same
    transaction: of two records with one nonce, in one batch or in two, only the first is written."""
    audit, sessions = store
    async with audit.writing():
        outcomes = await asyncio.gather(*(_recorded(audit, "agency-1", f"n{n % 8}") for n in range(16)))
        assert outcomes.count("new") == 8 and outcomes.count("replay") == 8
        assert await _recorded(audit, "agency-1", "n3") == "replay"
        assert await _claimed(audit, "agency-1", "n5") == "replay"  # a nonce claimed with a record, alone
        batches = audit.batches
        assert await _recorded(audit, "agency-1", "n99") == "new"
        assert audit.batches == batches + 1  # the nonce and the record in one transaction
    async with sessions() as session:
        records = await session.scalar(select(func.count()).select_from(AuditRecord))
        stored = await session.scalar(select(func.count()).select_from(SeenNonce))
    assert records == stored == 9  # a replayed record wrote nothing, not even its nonce
