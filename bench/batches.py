"""Benchmark: a batch brokered end to end through one hub, against the same lines asked of the holders directly.

One run builds the benchmark world (bench/world.py: a directory of --rows holdings and relationships, the 10 role
rules, every one needing consent, and a consent for each question asked), starts the holders' adapters in one
process (bench/holders.py, answering a chunk at once) and, for each store, the hub as `crossroads serve`. Then:

- direct:  the batch's lines sent straight to the holders' adapters, hub-signed, in chunks of the hub's size, two
           chunks in flight (the hub's own budget): what the holders cost and how fast they answer alone;
- alone:   single exchanges one at a time (`POST /v1/exchanges`) for --probe-seconds: their latency, no batch;
- batch:   one requester's --lines lines submitted as one batch (`HubClient.batch`: streamed up, followed, every
           answer read back and written to a file), each line a question about one of its clients, consent checked
           on every line; single exchanges asked one at a time all along, their latency measured beside.

Figures: lines a second end to end (submission to the last answer written) and as a ratio to the direct phase's;
the hub's CPU time per line (the serving process and the batch's own process, from /proc), the holders' (less what
the single exchanges asked meanwhile cost them, measured alone); single-exchange latency during the batch beside
its latency alone; the peak resident memory of the serving hub and of the batch's process (VmHWM). It prints a
table and writes a JSON result (--out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from brokering import (
    HUB_SETTINGS,
    Process,
    databases,
    free_port,
    process_cpu_seconds,
    revision,
    start_hubs,
    wait_printed,
)
from world import (
    ASKED_PURPOSES,
    HOLDERS,
    HUB_KEY_ID,
    REQUESTERS,
    Exchange,
    build,
    layout,
    make_keys,
    publish_rules,
    questions_of,
)

from adapters.client import HubClient
from broker.base import eventloop
from broker.base.signing import SigningKey, load_private_key, sign_request

BATCH_SETTINGS = {
    "CROSSROADS_BATCH_LINES_PER_DAY": str(10**9),
    "CROSSROADS_MAX_BATCH_LINES": str(10**7),
    "CROSSROADS_MAX_BATCH_BYTES": str(1 << 34),
}
CHUNK = 250  # the hub's default chunk (broker/config.py: batch_chunk)
IN_FLIGHT = 2  # the hub's default chunks in flight (batch_chunks_at_once)


@dataclass(frozen=True)
class Keys:
    hub: SigningKey  # what the direct phase signs with: the holders trust the hub's key alone
    agency: SigningKey  # the batch's requester
    prober: SigningKey  # the requester of the single exchanges

    @classmethod
    def of(cls, world: Any, prober: str) -> Keys:
        def key(agency: str) -> SigningKey:
            return SigningKey(f"{agency}-1", load_private_key(world.key_path(agency).read_bytes()))

        hub = SigningKey(HUB_KEY_ID, load_private_key(Path(world.hub_key_path).read_bytes()))
        return cls(hub, key(REQUESTERS[0]), key(prober))


def memory_mb(pid: int, field: str) -> float:
    """VmRSS (resident now) or VmHWM (the peak) of a process, in MB; 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def family_cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children that have ended (a hub and its batches' processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


class ChildMemory(threading.Thread):
    """The largest resident memory any child of `pid` (a batch's process) reached, sampled until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopping = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.25):
            for child in children(self.pid):
                self.peak = max(self.peak, memory_mb(child, "VmHWM"))


def percentile(values: list[float], rank: float) -> float | None:
    ordered = sorted(values)
    return None if not ordered else round(ordered[min(len(ordered) - 1, int(rank * len(ordered)))], 2)


async def direct(world: Any, hub: SigningKey, lines: list[Exchange]) -> int:
    """The lines asked of their holders in hub-signed chunks, IN_FLIGHT at a time; lines answered 200."""
    by_holder: dict[str, list[dict[str, Any]]] = {}
    for number, line in enumerate(lines):
        payload = {"exchange": f"direct-{number}", "requester": line.requester, "subject": line.subject}
        payload |= {"category": line.category, "purpose": line.purpose, "params": {}}
        by_holder.setdefault(line.holder, []).append(payload)
    chunks = [
        (holder, items[start : start + CHUNK])
        for holder, items in by_holder.items()
        for start in range(0, len(items), CHUNK)
    ]
    turn, delivered = asyncio.Semaphore(IN_FLIGHT), 0
    async with aiohttp.ClientSession() as session:

        async def send(holder: str, items: list[dict[str, Any]]) -> None:
            nonlocal delivered
            url = world.adapter_url(holder) + "/v1/records/batch"
            body = b"".join(json.dumps(item).encode() + b"\n" for item in items)
            async with turn:
                headers = sign_request("POST", url, body, hub, "application/x-ndjson")
                async with session.post(url, data=body, headers=headers) as answer:
                    delivered += sum(json.loads(raw)["status"] == 200 for raw in (await answer.read()).splitlines())

        await asyncio.gather(*(send(holder, items) for holder, items in chunks))
    return delivered


async def probe(client: HubClient, asked: list[Exchange], stop: asyncio.Event, seconds: float | None) -> list[float]:
    """Single exchanges one at a time until `stop` is set (or for `seconds`): each one's latency in ms."""
    latencies: list[float] = []
    ends = None if seconds is None else time.monotonic() + seconds
    number = 0
    while not stop.is_set() and (ends is None or time.monotonic() < ends):
        question = asked[number % len(asked)]
        started = time.perf_counter()
        result = await client.exchange(question.subject, question.category, question.purpose)
        latencies.append((time.perf_counter() - started) * 1000)
        assert result.status == 200, result
        number += 1
    return latencies


async def batch_phase(url: str, keys: Keys, path: Path, results: Path, probes: list[Exchange]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        agency = HubClient(url, keys.agency, HUB_KEY_ID, keys.hub.public_key, session)
        prober = HubClient(url, keys.prober, HUB_KEY_ID, keys.hub.public_key, session)
        stop = asyncio.Event()
        probing = asyncio.ensure_future(probe(prober, probes, stop, None))
        started = time.perf_counter()
        last = await agency.batch(path, results, poll_s=0.2)
        seconds = time.perf_counter() - started
        stop.set()
        return {"last": last, "seconds": seconds, "latencies": await probing}


async def alone_phase(url: str, keys: Keys, probes: list[Exchange], seconds: float) -> list[float]:
    async with aiohttp.ClientSession() as session:
        prober = HubClient(url, keys.prober, HUB_KEY_ID, keys.hub.public_key, session)
        return await probe(prober, probes, asyncio.Event(), seconds)


def write_lines(path: Path, lines: list[Exchange]) -> None:
    with path.open("w") as file:
        for number, line in enumerate(lines):
            ask = {"ref": number, "subject": line.subject, "category": line.category, "purpose": line.purpose}
            file.write(json.dumps(ask) + "\n")


def run_store(
    store: str,
    database_url: str,
    world: Any,
    keys: Keys,
    adapters: Process,
    state: Path,
    args: argparse.Namespace,
    lines: list[Exchange],
    probes: list[Exchange],
) -> dict[str, Any]:
    print(f"{store}: building the world ({args.rows:,} directory rows)", file=sys.stderr, flush=True)
    eventloop.run(build(database_url, world, args.rows))
    eventloop.run(publish_rules(database_url, world, 10))
    window = {"CROSSROADS_BATCH_WINDOW": str(args.window)} if args.window else {}
    [(hub, url)] = start_hubs(1, database_url, world, state, store, {**HUB_SETTINGS, **BATCH_SETTINGS, **window})
    try:
        warm = state / f"warm-{store}.ndjson"
        write_lines(warm, lines[: min(len(lines), 2_000)])
        eventloop.run(batch_phase(url, keys, warm, state / f"warm-{store}.results.ndjson", probes))
        before = process_cpu_seconds(adapters.pid)
        alone = eventloop.run(alone_phase(url, keys, probes, args.probe_seconds))
        per_single = (process_cpu_seconds(adapters.pid) - before) / max(1, len(alone))
        path = state / f"batch-{store}.ndjson"
        write_lines(path, lines)
        hub_cpu, adapters_cpu = family_cpu_seconds(hub.pid), process_cpu_seconds(adapters.pid)
        sampler = ChildMemory(hub.pid)
        sampler.start()
        measured = eventloop.run(batch_phase(url, keys, path, state / f"batch-{store}.results.ndjson", probes))
        sampler.stopping.set()
        sampler.join()
        for _ in range(600):  # the batch's process ends once its last answers are in (and its CPU counts then)
            if not children(hub.pid):
                break
            time.sleep(0.05)
        hub_cpu, adapters_cpu = family_cpu_seconds(hub.pid) - hub_cpu, process_cpu_seconds(adapters.pid) - adapters_cpu
        statuses = Counter(
            json.loads(raw)["status"] for raw in (state / f"batch-{store}.results.ndjson").read_bytes().splitlines()
        )
        peak = memory_mb(hub.pid, "VmHWM")
    finally:
        hub.stop()
    count = len(lines)
    during = measured["latencies"]
    return {
        "store": store,
        "lines": count,
        "seconds": round(measured["seconds"], 2),
        "lines_per_s": round(count / measured["seconds"]),
        "hub_us_per_line": round(hub_cpu / count * 1e6, 1),
        # the holders' CPU less what the single exchanges asked meanwhile cost them (measured alone)
        "holders_us_per_line": round((adapters_cpu - per_single * len(during)) / count * 1e6, 1),
        "statuses": dict(statuses),
        "by_outcome": measured["last"]["by_outcome"],
        "hub_peak_mb": peak,
        "batch_process_peak_mb": sampler.peak,
        "single_alone_ms": {"p50": percentile(alone, 0.5), "p99": percentile(alone, 0.99), "n": len(alone)},
        "single_during_ms": {"p50": percentile(during, 0.5), "p99": percentile(during, 0.99), "n": len(during)},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="crossroads-bench-") as scratch:
        state = args.keep or Path(scratch)
        state.mkdir(parents=True, exist_ok=True)
        make_keys(state)
        lines = list(questions_of(REQUESTERS[0], args.rows, args.lines, ASKED_PURPOSES[0]))
        world = layout(state, {holder: free_port() for holder in HOLDERS}, args.rows, 200)
        prober = next(exchange.requester for exchange in world.exchanges if exchange.requester != REQUESTERS[0])
        probes = [exchange for exchange in world.exchanges if exchange.requester == prober]
        world = type(world)(world.state_dir, world.hub_key_path, world.adapter_ports, [*world.exchanges, *set(lines)])
        (state / "layout.json").write_text(json.dumps(world.as_json()))
        adapters = Process(
            "adapters", [sys.executable, "bench/holders.py", str(state / "layout.json")], state / "a.log"
        )
        stores: list[dict[str, Any]] = []
        notes: list[str] = []
        try:
            wait_printed(adapters, b"ready")
            keys = Keys.of(world, probes[0].requester)
            cpu = process_cpu_seconds(adapters.pid)
            started = time.perf_counter()
            delivered = eventloop.run(direct(world, keys.hub, lines))
            seconds = time.perf_counter() - started
            direct_figures = {
                "lines_per_s": round(len(lines) / seconds),
                "holders_us_per_line": round((process_cpu_seconds(adapters.pid) - cpu) / len(lines) * 1e6, 1),
                "delivered": delivered,
            }
            for store, database_url in databases(args.stores, state, notes):
                figures = run_store(store, database_url, world, keys, adapters, state, args, lines, probes)
                figures["x_direct"] = round(figures["lines_per_s"] / direct_figures["lines_per_s"], 2)
                alone, during = figures["single_alone_ms"], figures["single_during_ms"]
                figures["single_p50_x_alone"] = round(during["p50"] / alone["p50"], 2) if alone["p50"] else None
                stores.append(figures)
        finally:
            adapters.stop()
    return {"direct": direct_figures, "stores": stores, "notes": notes, "revision": revision(), "arguments": vars(args)}


def table(result: dict[str, Any]) -> str:
    direct = result["direct"]
    rows = [
        f"direct to the holders: {direct['lines_per_s']:,} lines/s, holders {direct['holders_us_per_line']} us/line",
        "store     lines  lines/s  x direct  hub us/line  holders us/line  peak MB hub/batch  single p50/p99 alone"
        "  during",
    ]
    for figures in result["stores"]:
        alone, during = figures["single_alone_ms"], figures["single_during_ms"]
        rows.append(
            f"{figures['store']:<8} {figures['lines']:>6} {figures['lines_per_s']:>8,} {figures['x_direct']:>9} "
            f"{figures['hub_us_per_line']:>12} {figures['holders_us_per_line']:>16} "
            f"{figures['hub_peak_mb']:>8}/{figures['batch_process_peak_mb']:<8} "
            f"{alone['p50']}/{alone['p99']} ms  {during['p50']}/{during['p99']} ms"
        )
    return "\n".join(rows + result["notes"])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="directory rows (holdings and relationships)")
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the measured batch")
    parser.add_argument("--stores", type=lambda text: text.split(","), default=["sqlite", "postgres"])
    parser.add_argument("--probe-seconds", type=float, default=5.0, help="single exchanges alone, before the batch")
    parser.add_argument("--window", type=int, default=0, help="the hub's batch window (default: the hub's own)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the world, logs and files in this folder")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    result = run(args)
    print(table(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
