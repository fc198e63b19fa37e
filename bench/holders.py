"""The benchmark's holders: one process serving the four holders' adapters (the agency-side SDK, each on its own
loopback port) with a synthetic record for any subject, so that the hub and the adapters never share a
process. Run by bench/brokering.py as `python bench/holders.py LAYOUT.json`; prints `ready` once serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from world import CATEGORIES, HOLDERS, HUB_KEY_ID, Layout, holder_of

from adapters.server import Adapter, RecordRequest
from broker.base import eventloop
from broker.base.signing import SigningKey, load_private_key


async def record(request: RecordRequest) -> dict[str, object]:
    return {"subject": request.subject, "category": request.category, "status": "known", "since": "2020-01-01"}


async def records(requests: Sequence[RecordRequest]) -> list[dict[str, Any] | Exception]:
    """A chunk of a batch answered at once, as a store answers it set-based (bench/batches.py)."""
    return [await record(request) for request in requests]


def build(layout: Layout, holder: str) -> Adapter:
    hub_key = load_private_key(Path(layout.hub_key_path).read_bytes())
    key = SigningKey(f"{holder}-1", load_private_key(layout.key_path(holder).read_bytes()))
    adapter = Adapter(holder, key, HUB_KEY_ID, hub_key.public_key(), layout.adapter_url(holder))
    for category in CATEGORIES:
        if holder_of(category) == holder:
            adapter.category(category, many=records)(record)
    return adapter


async def serve(layout: Layout) -> None:
    runners = []
    for holder in HOLDERS:
        runner = web.AppRunner(build(layout, holder).app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", layout.adapter_ports[holder]).start()
        runners.append(runner)
    print("ready", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


def main() -> None:
    # The adapters' own per-record log lines are not what is measured: warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    eventloop.run(serve(Layout.from_json(json.loads(Path(sys.argv[1]).read_text()))))


if __name__ == "__main__":
    main()
