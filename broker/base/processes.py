"""Work in a process of its own (a bulk import, a batch): a new interpreter, spawned, so the hub's threads and event
loop stay behind; and waiting for one to end without holding a thread."""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.process import BaseProcess

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
