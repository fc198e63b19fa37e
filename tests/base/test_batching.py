"""Calls that go to the store together: concurrent callers share a batch, a lone caller goes at once, a failed batch
fails each of its callers and no other, and a caller that gives up leaves the others their results."""

from __future__ import annotations

import asyncio

import pytest

from broker.base.store.batching import Batching


class Store:
    """Doubles each item, one batch at a time, holding each batch until `gate` is set (at once: `released`)."""

    def __init__(self, released: bool = False) -> None:
        self.gate = asyncio.Event()
        if released:
            self.gate.set()
        self.batches: list[list[int]] = []
        self.entered = asyncio.Event()

    async def run(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.entered.set()
        await self.gate.wait()
        if -1 in items:
            raise ValueError("the store refused the batch")
        return [item * 2 for item in items]


async def test_a_lone_call_goes_at_once() -> None:
    store = Store(released=True)
    assert await Batching(store.run)(21) == 42
    assert store.batches == [[21]]


async def test_calls_arriving_while_a_batch_is_in_the_store_go_together_in_the_next() -> None:
    store = Store()
    batching = Batching(store.run)
    first = asyncio.ensure_future(batching(1))
    await store.entered.wait()
    rest = [asyncio.ensure_future(batching(item)) for item in range(2, 12)]
    store.gate.set()
    assert [await first, *await asyncio.gather(*rest)] == [item * 2 for item in range(1, 12)]
    assert store.batches == [[1], list(range(2, 12))]
    assert batching.batches == 2


async def test_a_failed_batch_fails_each_of_its_callers_and_no_other() -> None:
    store = Store()
    batching = Batching(store.run)
    first = asyncio.ensure_future(batching(1))
    await store.entered.wait()
    failing = [asyncio.ensure_future(batching(item)) for item in (-1, 5)]
    store.gate.set()
    assert await first == 2
    for call in failing:
        with pytest.raises(ValueError, match="refused"):
            await call
    assert await batching(7) == 14  # the next batch goes as usual


async def test_a_caller_that_gives_up_leaves_the_others_their_results() -> None:
    store = Store()
    batching = Batching(store.run)
    leaving, staying = asyncio.ensure_future(batching(1)), asyncio.ensure_future(batching(2))
    await store.entered.wait()
    leaving.cancel()
    store.gate.set()
    assert await staying == 4
    assert store.batches == [[1, 2]]  # the cancelled caller's item stayed in its batch
