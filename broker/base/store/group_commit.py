"""Group commit: writes from many concurrent requests go to the store in one transaction, and each request
waits for the commit of the batch that holds its write. One batch commits at a time; the next is flushed
once it holds `max_batch` writes or its first write has waited `max_wait_s` (with 0, as soon as the last
commit is done: writes arriving during a commit form the next batch, so batches grow with the load). A
batch that fails fails every write in it.

Background writes (`submit_all(..., background=True)`: a mass exchange's thousands of records) wait behind the
others: a batch takes every other write first, and at most `background_max` background ones, so a request's
write never queues behind thousands, only behind the batch being committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Generic, TypeVar

Item = TypeVar("Item")

# Commits a batch in one transaction; returns, per item in order, None or the error of that item alone,
# and raises when the whole batch failed.
Flush = Callable[[Sequence[Item]], Awaitable[Sequence[Exception | None]]]


class WriterClosed(Exception):
    """The writer is not running: nothing submitted now can be committed."""


class GroupCommit(Generic[Item]):
    def __init__(
        self,
        flush: Flush[Item],
        max_batch: int,
        max_wait_s: float,
        on_commit: Callable[[int, float], None] | None = None,
        background_max: int = 64,
    ) -> None:
        if max_batch < 1:
            raise ValueError("a batch holds at least one write")
        self._flush = flush
        self._on_commit = on_commit  # (writes in the batch, seconds the transaction took), for metrics
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._pending: list[tuple[Item, asyncio.Future[None]]] = []
        self._background: list[tuple[Item, asyncio.Future[None]]] = []
        self._background_max = background_max
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches = 0  # batches committed or failed, for tests and benchmarks

    @property
    def open(self) -> bool:
        """Whether writes are taken: the writer runs and is not closing."""
        return self._task is not None and not self._task.done() and not self._stopping

    async def submit(self, item: Item) -> None:
        """Wait until the batch holding `item` is committed; raise its error if it failed."""
        if self._task is None or self._stopping:
            raise WriterClosed("the audit writer is not running")
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._wake.set()
        if len(self._pending) >= self._max_batch:
            self._full.set()
        await future

    async def submit_all(self, items: Sequence[Item], *, background: bool = False) -> None:
        """`submit` for many items at once (behind every other write with `background`): wait until every batch
        holding one is committed; raise the first error of those that failed (the others stand)."""
        if self._task is None or self._stopping:
            raise WriterClosed("the audit writer is not running")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        (self._background if background else self._pending).extend(zip(items, futures, strict=True))
        self._wake.set()
        if len(self._pending) >= self._max_batch:
            self._full.set()
        failures = [failure for failure in await asyncio.gather(*futures, return_exceptions=True) if failure]
        if failures:
            raise failures[0]

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Write while the context is open; on exit, commit everything submitted before it closed."""
        self._stopping = False
        self._task = asyncio.create_task(self._run())
        try:
            yield
        finally:
            self._stopping = True
            self._wake.set()
            self._full.set()
            await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._pending and not self._background:
                if self._stopping:
                    return
                self._wake.clear()
                continue
            if self._pending and len(self._pending) < self._max_batch and not self._stopping:
                with suppress(TimeoutError):
                    async with asyncio.timeout(self._max_wait_s):
                        await self._full.wait()
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            room = min(self._max_batch - len(batch), self._background_max)
            batch, self._background = batch + self._background[:room], self._background[room:]
            if len(self._pending) < self._max_batch and not self._stopping:
                self._full.clear()
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[None]]]) -> None:
        self.batches += 1
        results: Sequence[Exception | None]
        started = time.perf_counter()
        try:
            results = await self._flush([item for item, _ in batch])
        except Exception as error:
            results = [error] * len(batch)
        if self._on_commit is not None:
            self._on_commit(len(batch), time.perf_counter() - started)
        for (_, future), failure in zip(batch, results, strict=True):
            if future.done():  # the request was cancelled; its write stands
                continue
            if failure is None:
                future.set_result(None)
            else:
                future.set_exception(failure)
