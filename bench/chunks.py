"""Benchmark: what a holder's adapter spends answering a batch's lines in chunks (`POST /v1/records/batch`)
against answering the same lines one request each, side by side in one run. The adapter runs in a process of its
own (its CPU read from /proc); this process plays the hub, signing each request with a hub key the adapter trusts.

Three categories over the same 100,000 subjects: `sql` (the SQL store over a SQLite table, set-based in chunks),
`csv` (the CSV store over an export, one version of the file a chunk) and `code` (a handler without `many`: in a
chunk it is called line by line, 16 at a time). Each line asks for a distinct subject.

    .venv/bin/python bench/chunks.py [--subjects 100000] [--lines 20000] [--chunk 1000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import random
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from brokering import free_port, process_cpu_seconds

from adapters.mapping import parse_fields
from adapters.server import Adapter, RecordRequest, UnknownSubject
from adapters.stores.flatfile import CsvStore
from adapters.stores.sql import SqlStore
from broker.base import eventloop
from broker.base.keyfiles import write_private_key
from broker.base.signing import SigningKey, generate_key, load_private_key, sign_request

HUB_KEY_ID = "bench-hub"
FIELDS = {"taxable_income": "income", "year": "tax_year"}
CATEGORIES = ("sql", "csv", "code")


def subject(number: int) -> str:
    return f"7{number:010d}"


def write_systems(folder: Path, subjects: int) -> None:
    rows = [(subject(n), 2025, 20_000 + n % 50_000) for n in range(subjects)]
    with closing(sqlite3.connect(folder / "register.db")) as connection, connection:
        connection.execute("CREATE TABLE taxes (niss TEXT PRIMARY KEY, tax_year INTEGER, income INTEGER)")
        connection.executemany("INSERT INTO taxes VALUES (?, ?, ?)", rows)
    with (folder / "income.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["niss", "tax_year", "income"])
        writer.writerows(rows)


def serve(folder: Path, port: int, subjects: int) -> None:
    """The adapter process: the three categories on `port`, trusting the hub key in `folder`; warnings logged only
    (as bench/holders.py: the per-request log lines would be most of what is measured)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    hub = load_private_key((folder / "hub.pem").read_bytes())
    url = f"http://127.0.0.1:{port}"
    adapter = Adapter("bench-holder", SigningKey("holder-1", generate_key()), HUB_KEY_ID, hub.public_key(), url)
    fields = parse_fields(FIELDS)
    adapter.serve("sql", SqlStore(f"sqlite:///{folder / 'register.db'}", fields, table_name="taxes", key="niss"))
    adapter.serve("csv", CsvStore(folder / "income.csv", "niss", fields))
    known = {subject(n) for n in range(subjects)}

    @adapter.category("code")
    async def code(request: RecordRequest) -> dict[str, Any]:
        if request.subject not in known:
            raise UnknownSubject(request.subject)
        return {"taxable_income": 20_000, "year": 2025}

    async def run() -> None:
        runner = web.AppRunner(adapter.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    eventloop.run(run())


def line(number: int, category: str, asked: int) -> dict[str, Any]:
    return {
        "exchange": f"x-{category}-{number}",
        "requester": "bench",
        "subject": subject(asked),
        "category": category,
        "purpose": "benefit-eligibility",
        "params": {},
    }


async def singles(url: str, hub: SigningKey, lines: list[dict[str, Any]], concurrency: int) -> int:
    """Each line as a request of its own, `concurrency` at once; how many were answered 200."""
    queue = iter(lines)
    delivered = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal delivered
        for document in queue:
            body = json.dumps(document).encode()
            headers = sign_request("POST", url + "/v1/records", body, hub)
            async with session.post(url + "/v1/records", data=body, headers=headers) as answer:
                await answer.read()
                delivered += answer.status == 200

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return delivered


async def chunks(url: str, hub: SigningKey, lines: list[dict[str, Any]], size: int) -> int:
    """The lines in chunks of `size`, one chunk at a time; how many lines were answered 200."""
    delivered = 0
    async with aiohttp.ClientSession() as session:
        for first in range(0, len(lines), size):
            body = b"".join(json.dumps(document).encode() + b"\n" for document in lines[first : first + size])
            headers = sign_request("POST", url + "/v1/records/batch", body, hub, "application/x-ndjson")
            async with session.post(url + "/v1/records/batch", data=body, headers=headers) as answer:
                answers = (await answer.read()).splitlines()
            delivered += sum(json.loads(raw)["status"] == 200 for raw in answers)
    return delivered


def measure(pid: int, work: Any, lines: int) -> dict[str, float]:
    cpu, wall = process_cpu_seconds(pid), time.perf_counter()
    delivered = eventloop.run(work)
    cpu, wall = process_cpu_seconds(pid) - cpu, time.perf_counter() - wall
    assert delivered == lines, f"{delivered} of {lines} lines answered"
    return {"lines_per_s": lines / wall, "adapter_us_per_line": cpu / lines * 1e6}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=20_000, help="lines asked per category and mode")
    parser.add_argument("--chunk", type=int, default=1_000, help="lines per chunk")
    parser.add_argument("--concurrency", type=int, default=16, help="single requests at once")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]), args.subjects)
        return
    with TemporaryDirectory(prefix="crossroads-chunks-") as scratch:
        folder = Path(scratch)
        write_systems(folder, args.subjects)
        hub = SigningKey(HUB_KEY_ID, write_private_key(folder / "hub.pem"))
        port = free_port()
        command = [sys.executable, __file__, "--subjects", str(args.subjects), "--serve", str(folder), str(port)]
        adapter = subprocess.Popen(command, stdout=subprocess.PIPE)
        try:
            assert adapter.stdout is not None
            while adapter.stdout.readline().strip() != b"ready":  # a line it logged while opening its stores
                pass
            url = f"http://127.0.0.1:{port}"
            picks = random.Random(7).sample(range(args.subjects), args.lines)
            results: dict[str, dict[str, dict[str, float]]] = {}
            for category in CATEGORIES:
                asked = [line(n, category, pick) for n, pick in enumerate(picks)]
                one = measure(
                    adapter.pid, singles(url, hub, asked[: args.lines // 4], args.concurrency), args.lines // 4
                )
                many = measure(adapter.pid, chunks(url, hub, asked, args.chunk), args.lines)
                results[category] = {"single": one, "chunk": many}
                print(
                    f"{category:5} single requests: {one['lines_per_s']:8,.0f} lines/s, adapter"
                    f" {one['adapter_us_per_line']:6,.0f} us a line | chunks of {args.chunk:,}:"
                    f" {many['lines_per_s']:8,.0f} lines/s, adapter {many['adapter_us_per_line']:6,.0f} us a line"
                    f" ({one['adapter_us_per_line'] / many['adapter_us_per_line']:.1f} x less)",
                    flush=True,
                )
        finally:
            adapter.terminate()
            adapter.wait()
    print(json.dumps({"settings": vars(args) | {"serve": None}, "results": results}))


if __name__ == "__main__":
    main(sys.argv[1:])
