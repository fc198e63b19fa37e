"""Group commit on its own: concurrent writes share a transaction, each waits for its own batch, a failed
batch fails all its writes, closing commits what is pending, and nothing is accepted once closed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from broker.base.store.group_commit import GroupCommit, WriterClosed


class Store:
    """Stands in for the database: records each flushed batch, and fails the batches it is told to."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.failing = False
        self.release = asyncio.Event()
        self.release.set()
        self.entered = asyncio.Event()  # a flush has begun

    async def flush(self, items: Sequence[int]) -> list[Exception | None]:
        self.entered.set()
        await self.release.wait()
        if self.failing:
            raise OSError("disk full")
        self.batches.append(list(items))
        return [ValueError(f"item {item} refused") if item < 0 else None for item in items]


async def test_concurrent_writes_share_one_batch() -> None:
    store = Store()
    writer = GroupCommit(store.flush, max_batch=100, max_wait_s=0.05)
    async with writer.running():
        await asyncio.gather(*(writer.submit(item) for item in range(20)))
    assert store.batches == [list(range(20))]


async def test_a_full_batch_flushes_without_waiting_and_the_rest_follow() -> None:
    store = Store()
    writer = GroupCommit(store.flush, max_batch=8, max_wait_s=3600)
    async with writer.running():
        await asyncio.gather(*(writer.submit(item) for item in range(16)))
    assert store.batches == [list(range(8)), list(range(8, 16))]


async def test_writes_arriving_during_a_flush_go_to_the_next_batch() -> None:
    store = Store()
    writer = GroupCommit(store.flush, max_batch=100, max_wait_s=0)
    async with writer.running():
        store.release.clear()
        first = asyncio.create_task(writer.submit(1))
        await asyncio.sleep(0.01)  # the first batch is flushing, held by the store
        later = [asyncio.create_task(writer.submit(item)) for item in (2, 3)]
        await asyncio.sleep(0)
        store.release.set()
        await asyncio.gather(first, *later)
    assert store.batches == [[1], [2, 3]]


async def test_a_failed_batch_fails_every_write_in_it_and_the_next_batch_succeeds() -> None:
    store = Store()
    writer = GroupCommit(store.flush, max_batch=100, max_wait_s=0.01)
    async with writer.running():
        store.failing = True
        results = await asyncio.gather(*(writer.submit(item) for item in range(5)), return_exceptions=True)
        assert all(isinstance(result, OSError) for result in results)
        store.failing = False
        await writer.submit(6)
    assert store.batches == [[6]]


async def test_an_item_can_fail_alone() -> None:
    store = Store()
    writer = GroupCommit(store.flush, max_batch=100, max_wait_s=0.01)
    async with writer.running():
        results = await asyncio.gather(writer.submit(1), writer.submit(-1), writer.submit(2), return_exceptions=True)
    assert results[0] is None and results[2] is None and isinstance(results[1], ValueError)


async def test_closing_commits_what_is_pending_and_refuses_later_writes() -> None:
    store = Store()
    writer = GroupCommit(store.flush, max_batch=100, max_wait_s=3600)
    async with writer.running():
        pending = [asyncio.create_task(writer.submit(item)) for item in range(3)]
        await asyncio.sleep(0)
    await asyncio.gather(*pending)
    assert store.batches == [[0, 1, 2]]
    with pytest.raises(WriterClosed):
        await writer.submit(4)


async def test_a_cancelled_request_does_not_disturb_its_batch() -> None:
    store = Store()
    writer = GroupCommit(store.flush, max_batch=100, max_wait_s=0.05)
    async with writer.running():
        gone = asyncio.create_task(writer.submit(1))
        stays = asyncio.create_task(writer.submit(2))
        await asyncio.sleep(0)
        gone.cancel()
        await stays
    assert store.batches == [[1, 2]]


async def test_many_writes_submitted_at_once_fill_batches_and_fail_alone() -> None:
    """`submit_all` waits for every batch holding one of its writes; a write refused alone fails the call with
    its error, and the others stand."""
    store = Store()
    writer = GroupCommit(store.flush, max_batch=8, max_wait_s=0)
    async with writer.running():
        await writer.submit_all(list(range(20)))
        with pytest.raises(ValueError, match="item -1 refused"):
            await writer.submit_all([30, -1, 31])
    assert store.batches == [list(range(8)), list(range(8, 16)), [16, 17, 18, 19], [30, -1, 31]]
    with pytest.raises(WriterClosed):
        await writer.submit_all([1])


async def test_background_writes_wait_behind_the_others_a_few_at_a_time() -> None:
    """A mass of background writes is committed a few a batch, after the requests' writes that arrive meanwhile."""
    store = Store()
    writer = GroupCommit(store.flush, max_batch=8, max_wait_s=0, background_max=3)
    async with writer.running():
        store.release.clear()  # the first batch holds the store while the rest arrive
        first = asyncio.ensure_future(writer.submit(100))
        await store.entered.wait()  # the writer has taken the first batch and waits on the store
        mass = asyncio.ensure_future(writer.submit_all(list(range(7)), background=True))
        requests = asyncio.ensure_future(asyncio.gather(*(writer.submit(item) for item in (200, 201))))
        await asyncio.sleep(0)
        store.release.set()
        await asyncio.gather(first, mass, requests)
    assert store.batches == [[100], [200, 201, 0, 1, 2], [3, 4, 5], [6]]
