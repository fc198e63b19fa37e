"""Nonces through group commit, on SQLite and PostgreSQL: concurrent requests share a transaction, each still
learns whether its own nonce was new, a repeat within one batch or across batches is a replay, and no
request goes on before its nonce is stored."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from broker.base.store import Lane, StoreUnavailable, create_engine
from broker.exchange.replay import NonceAlreadySeen, NonceStore, NonceUse, SeenNonce, first_uses
from broker.schema.migrations import upgrade

AT = datetime(2026, 11, 22, 12, tzinfo=UTC)


def test_first_uses_marks_repeats_within_a_batch() -> None:
    batch = [NonceUse("k1", "a", AT), NonceUse("k1", "b", AT), NonceUse("k1", "a", AT), NonceUse("k2", "a", AT)]
    distinct, first = first_uses(batch)
    assert [(use.key_id, use.nonce) for use in distinct] == [("k1", "a"), ("k1", "b"), ("k2", "a")]
    assert first == [True, True, False, True]


async def _outcome(nonces: NonceStore, key_id: str, nonce: str) -> str:
    try:
        await nonces.remember(key_id, nonce, AT)
    except NonceAlreadySeen:
        return "replay"
    return "new"


async def test_concurrent_nonces_share_transactions_and_replays_are_caught(database_url: str) -> None:
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    nonces = NonceStore(sessions, Lane(engine), batch_max=16)
    try:
        async with nonces.writing():
            # 64 requests at once, every nonce sent twice (the copies land in the same batch or in a later one).
            calls = [_outcome(nonces, "agency-1", f"n{n % 32}") for n in range(64)]
            outcomes = await asyncio.gather(*calls)
            assert outcomes.count("new") == 32 and outcomes.count("replay") == 32
            assert await _outcome(nonces, "agency-1", "n0") == "replay"  # stored: a later batch sees it
            assert await _outcome(nonces, "agency-2", "n0") == "new"  # nonces are per key id
            assert nonces.batches < 34  # fewer transactions than requests: concurrent ones shared them
        async with sessions() as session:
            stored = await session.scalar(select(func.count()).select_from(SeenNonce))
        assert stored == 33  # each request had its nonce stored before it was answered
        with pytest.raises(StoreUnavailable):  # the writer is closed: nothing goes on unrecorded
            await nonces.remember("agency-1", "late", AT)
    finally:
        await engine.dispose()
