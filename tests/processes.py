"""Real `crossroads` processes for tests: started, awaited until they answer over HTTP, and always stopped."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp


@asynccontextmanager
async def crossroads(
    *args: str, answers: str, log: Path, env: Mapping[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m broker ARGS` with its output in `log` (and `env` added to its environment), once `answers` (a
    URL) answers 200."""
    output = await asyncio.to_thread(open, log, "ab")
    environment = {**os.environ, **(env or {})}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", *args, stdout=output, stderr=output, env=environment
    )
    try:
        await until_answering(answers, process, log)
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        output.close()


async def until_answering(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):  # bounded: about 15 s
            if process.returncode is not None:
                break
            try:
                async with session.get(url) as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    tail = (await asyncio.to_thread(log.read_text, errors="replace"))[-2000:]
    raise AssertionError(f"{url} did not answer; the process said:\n{tail}")
