"""Work in the background (a bulk import, a batch): tasks by id, and work in a process of its own (a new
interpreter, spawned, so the hub's threads and event loop stay behind), waited for without holding a thread."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable, Coroutine
from contextlib import suppress
from functools import partial
from multiprocessing.process import BaseProcess
from typing import Any

SPAWN = multiprocessing.get_context("spawn")


async def ended(process: BaseProcess) -> None:
    """Wait, holding no thread, until `process` has ended (its sentinel reads as closed), and reap it."""
    loop, done = asyncio.get_running_loop(), asyncio.Event()
    loop.add_reader(process.sentinel, done.set)
    try:
        await done.wait()
    finally:
        loop.remove_reader(process.sentinel)
    process.join()  # it has ended: this only reaps it


async def run_apart(target: Callable[..., None], args: tuple[Any, ...], name: str) -> None:
    """Run `target(*args)` in a process of its own until it ends. Cancelled, the process is asked to stop
    (SIGTERM), and waited for."""
    process = SPAWN.Process(target=target, args=args, name=name, daemon=True)
    await asyncio.to_thread(process.start)
    try:
        await ended(process)
    except asyncio.CancelledError:
        process.terminate()
        await asyncio.shield(ended(process))
        raise


class Background:
    """Work running in the background by id (an import, a batch): one task an id at a time, a failure logged
    (`failed`: the id and the error), every task stopped by `close`."""

    def __init__(self, failed: Callable[[str, BaseException], None]) -> None:
        self._failed = failed
        self._running: dict[str, asyncio.Task[Any]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._running

    def start(self, key: str, work: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run `work()` unless the work of `key` runs already."""
        if key not in self._running:
            task = asyncio.create_task(work())
            self._running[key] = task
            task.add_done_callback(partial(self._ended, key))

    def _ended(self, key: str, task: asyncio.Task[Any]) -> None:
        self._running.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            self._failed(key, task.exception())  # type: ignore[arg-type]

    async def close(self) -> None:
        """Stop the work running; each stands where it last committed."""
        for task in list(self._running.values()):
            task.cancel()
        for task in list(self._running.values()):
            with suppress(asyncio.CancelledError):
                await task
