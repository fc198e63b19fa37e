"""Calls that go to the store together: those that arrive while one batch is in the store make up the next, so many
concurrent callers share one transaction, and a lone caller goes at once. Unlike group commit (group_commit.py)
nothing runs while nobody calls: the first call of a batch starts the task that carries it and any that follow,
and the task ends when none waits. A caller that is cancelled leaves its item in its batch; a batch that fails
fails each of its callers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batching(Generic[Item, Result]):
    def __init__(self, run: Callable[[list[Item]], Awaitable[Sequence[Result]]]) -> None:
        self._run = run  # one batch's items to their results, in order
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._carrier: asyncio.Task[None] | None = None
        self.batches = 0  # batches run, for tests and benchmarks

    async def __call__(self, item: Item) -> Result:
        """`item`'s result, from the batch it went in."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._carrier is None:
            self._carrier = asyncio.create_task(self._carry())
        return await future

    async def _carry(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                self.batches += 1
                try:
                    results = await self._run([item for item, _ in batch])
                except Exception as error:
                    _settle(batch, error)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():
                            future.set_result(result)
        except BaseException as error:  # cancelled (the loop is closing): nobody is left waiting
            _settle([*batch, *self._waiting], error)
            self._waiting = []
            raise
        finally:
            self._carrier = None


def _settle(batch: list[tuple[Item, asyncio.Future[Result]]], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error if isinstance(error, Exception) else asyncio.CancelledError())
