"""Benchmark: the reference directory as a service the agencies keep, against the exchanges it serves meanwhile.

One run builds the benchmark world of bench/brokering.py (bench/world.py) in each store, starts the holders'
adapters in one process (bench/holders.py) and the hub as `crossroads serve` in a process of its own, and
drives them from this process, on 127.0.0.1 only, with requests signed before each phase:

- exchanges:    `POST /v1/exchanges` at each --concurrency, alone: what every other figure is set beside;
- declarations: `PUT /v1/directory/relationships`, each a new reference of one of the 16 requesting agencies;
- import:       an NDJSON file of --import-lines references of one holder (holdings and relationships of
                subjects the world does not have, --bad-share of the lines deliberately bad), written to disk a
                line at a time, sent with `HubClient.import_references`, followed with
                `GET /v1/directory/imports/{id}` until done, while the exchanges of --import-concurrency run
                in windows of --seconds (each window's requests signed just before it); with --import-alone a
                second file of as many lines is imported with nothing else running;
- rows:         exchanges over a directory of each --rows size, which is bench/brokering.py run once per size.

The hub's CPU comes from /proc/<pid>/stat, its memory from /proc/<pid>/status (VmRSS, and VmHWM: the peak).
It prints a table and writes a JSON result (--out).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The repository, for the test suite's PostgreSQL server (tests/postgres.py), as bench/brokering.py uses it. This
# script is not named directory.py: the folder of the script run comes first on the path, and a directory.py there
# would stand for the `directory` package in every script of this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import random
import shlex
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from brokering import (
    HUB_SETTINGS,
    CpuSample,
    Prepared,
    Process,
    Signer,
    Tally,
    drive,
    free_port,
    integers,
    log_warnings,
    percentile,
    problem_name,
    process_cpu_seconds,
    revision,
    start_hubs,
    wait_printed,
)
from world import (
    CATEGORIES,
    HOLDERS,
    HUB_KEY_ID,
    REQUESTERS,
    Layout,
    build,
    holder_of,
    layout,
    make_keys,
    publish_rules,
)

from adapters.client import HubClient, HubProblem, UnverifiedAnswer
from broker.base import eventloop
from broker.base.signing import Request, Response, SignatureProblem, sign_request, verify_response
from broker.config import Config
from broker.hub import open_hub
from directory.registry import Term
from tests import postgres  # the test suite's throwaway PostgreSQL server, as bench/brokering.py uses it

REPO = Path(__file__).resolve().parent.parent
REQUEST_TIMEOUT_S = 10.0  # every request but the import's upload; bounds a phase's overrun
WARMUP_LIMIT_S = 60.0  # every distinct policy question once, and a few declarations: not counted
POLL_S = 0.25  # how often the import's progress is read
STALL_S = 120.0  # an import whose bytes_read does not move this long is given up
ROWS_RUN_TIMEOUT_S = 3 * 3600.0  # one bench/brokering.py run (10,000,000 rows on PostgreSQL builds for minutes)
RULES = 10_000  # the target configuration
CAPACITY = "beneficiary"  # the capacity of the world's relationships, registered for the agencies to declare
FROM = "2024-01-01T00:00:00Z"
IMPORTER = HOLDERS[0]  # the agency whose file is imported: it holds these categories
IMPORTED_CATEGORIES = [category for category in CATEGORIES if holder_of(category) == IMPORTER]
# Subjects of the world are 9xxxxxxxxxx (world.subject_id); those declared here begin otherwise.
IMPORTED, IMPORTED_ALONE, DECLARED = "7", "5", "6"
IMPORT_TARGET = 50_000.0  # references a second
IMPORT_TARGET_LINES = 5_000_000
RSS_TARGET_MB = 250.0
DECLARATION_TARGET = 1_000.0  # a second
LATEST_LINE = 10**18 - 1  # `?after=` past every line: a progress read lists no rejected line
BAD_LINES = (  # one of each, in turn: four refused when read, two by the store when checked against the registry
    '{"kind":"holding","subject":"%s","category":"bench-cat-0","from":\n',
    '{"kind":"ownership","subject":"%s","category":"bench-cat-0","from":"%s"}\n',
    '{"kind":"holding","subject":"%s","category":"bench-cat-0","from":"%s","until":"2000-01-01T00:00:00Z"}\n',
    '{"kind":"relationship","subject":"%s not a subject","capacity":"beneficiary","from":"%s"}\n',
    '{"kind":"holding","subject":"%s","category":"bench-cat-unregistered","from":"%s"}\n',
    '{"kind":"relationship","subject":"%s","capacity":"unregistered-capacity","from":"%s"}\n',
)


@dataclass(frozen=True)
class ImportFile:
    path: Path
    lines: int
    good: int
    bad: int
    size: int
    written_s: float


@dataclass(frozen=True)
class Load:
    """One measured load: its throughput and latency, and the CPU it cost."""

    store: str
    phase: str  # exchanges, declarations, exchanges during import
    concurrency: int
    completed: int
    errors: int
    error_kinds: dict[str, int]
    verified: int
    seconds: float
    throughput: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    hub_cpu_us: float | None  # per success; None where the hub did other work meanwhile (an import)
    hub_cpu_percent: float
    other_cpu_percent: float  # the machine's CPU but the hub's, the adapters' and this process's


@dataclass(frozen=True)
class ImportRun:
    store: str
    phase: str  # import with exchanges, import alone
    status: str
    lines: int
    applied: int
    rejected: int
    expected: dict[str, int]  # lines, applied, rejected the file was written to give
    counts_match: bool
    size_mb: float
    send_s: float  # digest and upload, until the 202
    apply_s: float  # the import's own updated_at - created_at
    wall_s: float  # from the start of the send until the done status was read
    lines_per_s: float  # by the import's own clock
    lines_per_s_wall: float
    hub_cpu_percent: float  # while it applied (the exchanges' CPU included in `import with exchanges`)
    hub_cpu_us_per_line: float | None  # alone only
    hub_rss_before_mb: float
    hub_rss_after_mb: float
    hub_peak_before_mb: float  # VmHWM before the send
    hub_peak_mb: float  # VmHWM after it: the most the hub process held resident at any time
    apart_cpu_s: float  # CPU of the process the hub applies the import in (its children), as last read
    apart_peak_mb: float  # the most that process held resident (VmHWM), as last read
    windows: int  # exchange windows run during the import
    covered: float  # share of the import's application those windows covered
    rejections: dict[str, int]  # the first page of rejected lines, by reason


# --- the import file -------------------------------------------------------------------------------------


def write_import(path: Path, lines: int, bad_share: float, prefix: str) -> ImportFile:
    """`lines` references of IMPORTER, a line at a time: a holding and a relationship of each new subject in
    turn (a twentieth of them with an end), one line in every round(1 / bad_share) one of BAD_LINES instead."""
    started = time.perf_counter()
    every = round(1 / bad_share) if bad_share > 0 else 0
    bad = 0
    with path.open("w", encoding="ascii", buffering=1 << 20) as file:
        for number in range(lines):
            subject = f"{prefix}{number // 2:010d}"
            if every and number % every == (number // every) % 2:  # holdings and relationships alike
                template = BAD_LINES[bad % len(BAD_LINES)]
                file.write(template % ((subject,) if template.count("%s") == 1 else (subject, FROM)))
                bad += 1
            elif number % 2:
                file.write(f'{{"kind":"relationship","subject":"{subject}","capacity":"{CAPACITY}","from":"{FROM}"}}\n')
            else:
                category = IMPORTED_CATEGORIES[(number // 2) % len(IMPORTED_CATEGORIES)]
                until = ',"until":"2030-01-01T00:00:00Z"' if number % 40 == 0 else ""
                file.write(
                    f'{{"kind":"holding","subject":"{subject}","category":"{category}","from":"{FROM}"{until}}}\n'
                )
    return ImportFile(path, lines, lines - bad, bad, path.stat().st_size, round(time.perf_counter() - started, 1))


# --- load ------------------------------------------------------------------------------------------------


class Declarations:
    """Pre-signed declarations, each a new relationship of one of the requesting agencies, in turn."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._next = 0

    def signed(self, count: int, hub_url: str) -> list[Prepared]:
        url = hub_url + "/v1/directory/relationships"
        prepared = []
        for number in range(self._next, self._next + count):
            document = {"subject": f"{DECLARED}{number:010d}", "capacity": CAPACITY, "from": FROM}
            body = json.dumps(document, separators=(",", ":")).encode()
            key = self._signer.requesters[REQUESTERS[number % len(REQUESTERS)]]
            prepared.append(
                Prepared(url, body, sign_request("PUT", url, body, key), HUB_KEY_ID, self._signer.hub.public_key)
            )
        self._next += count
        return prepared


async def send(
    method: str,
    requests: list[Prepared],
    concurrency: int,
    seconds: float,
    expected: int,
    stop: asyncio.Event | None = None,
) -> tuple[Tally, float]:
    """`concurrency` workers send the requests in order until the deadline, the list is spent or `stop` is set;
    the tally (only `expected` counts as a success, and every success is kept to be verified) and the seconds it
    took."""
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=concurrency)
    queue = iter(requests)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    ) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            for request in queue:
                if time.perf_counter() >= deadline or (stop is not None and stop.is_set()):
                    return
                sent = time.perf_counter()
                try:
                    async with session.request(
                        method, request.url, data=request.body, headers=request.headers
                    ) as answer:
                        body, status, headers = await answer.read(), answer.status, dict(answer.headers)
                except (aiohttp.ClientError, TimeoutError) as error:
                    tally.errors[type(error).__name__] += 1
                    continue
                if status != expected:
                    tally.errors[f"{status} {problem_name(body)}"] += 1
                    continue
                tally.latencies_ms.append((time.perf_counter() - sent) * 1000)
                tally.answers.append((request, status, headers, body))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return tally, time.perf_counter() - started


def verify(tally: Tally, method: str, count: int, seed: int) -> None:
    """Check the signatures and `;req` bindings of `count` of the successful answers drawn at random, and keep only
    those (brokering.verify_answers binds POST only); a failure turns a success into an error."""
    tally.answers = random.Random(seed).sample(tally.answers, min(count, len(tally.answers)))
    for request, status, headers, body in tally.answers:
        bound = Request(method, request.url, {"Content-Digest": request.headers["Content-Digest"]})
        try:
            verify_response(Response(status, headers, bound), body, request.answer_key_id, request.answer_key)
        except SignatureProblem as problem:
            tally.errors[f"{status} unverified: {problem.kind}"] += 1


# --- measuring -------------------------------------------------------------------------------------------

Sample = tuple[CpuSample, float]  # CPU times and the wall clock, at one moment


@dataclass(frozen=True)
class Usage:
    hub_s: float
    wall_s: float
    hub_percent: float  # of one core
    other_percent: float  # the machine's CPU but the hub's, the adapters' and this process's


class Meter:
    """Samples the CPU of the hub, the adapters, this process and the whole machine."""

    def __init__(self, hub_pid: int, adapters_pid: int) -> None:
        self.hub_pid, self.adapters_pid = hub_pid, adapters_pid

    def sample(self) -> Sample:
        return CpuSample.take([self.hub_pid], self.adapters_pid), time.perf_counter()


def usage(start: Sample, end: Sample) -> Usage:
    (before, started), (after, ended) = start, end
    wall = max(ended - started, 1e-9)
    hub = after.hubs - before.hubs
    others = (
        (after.machine - before.machine) - (after.client - before.client) - hub - (after.adapters - before.adapters)
    )
    return Usage(hub, wall, round(100 * hub / wall, 1), round(100 * max(0.0, others) / wall, 1))


def children(pid: int) -> dict[int, tuple[float, float]]:
    """CPU seconds so far and peak resident MB of each child of `pid`: the process the hub applies an import in (and
    multiprocessing's resource tracker beside it), read while they live; a child's CPU counts in the hub's only
    once it is reaped."""
    found = {}
    for thread in Path(f"/proc/{pid}/task").glob("*/children"):  # each thread's children: a worker thread starts it
        with contextlib.suppress(OSError):  # the thread ended
            for child in thread.read_text().split():
                with contextlib.suppress(OSError, IndexError, ValueError):  # the child ended between the two reads
                    found[int(child)] = (process_cpu_seconds(int(child)), memory_mb(int(child))[1])
    return found


def memory_mb(pid: int) -> tuple[float, float]:
    """The process's resident memory now (VmRSS) and at its peak so far (VmHWM), in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = round(int(value.split()[0]) / 1024, 1)
    return found.get("VmRSS", 0.0), found.get("VmHWM", 0.0)


def figures(
    store: str, phase: str, concurrency: int, runs: list[tuple[Tally, float]], used: Usage, per_op: bool
) -> Load:
    """One Load of one or more runs (an import's windows): their successes over their summed seconds."""
    latencies = sorted(latency for tally, _ in runs for latency in tally.latencies_ms)
    errors: Counter[str] = Counter()
    for tally, _ in runs:
        errors.update(tally.errors)
    unverified = sum(count for kind, count in errors.items() if "unverified" in kind)
    succeeded = len(latencies) - unverified
    seconds = sum(wall for _, wall in runs)
    return Load(
        store=store,
        phase=phase,
        concurrency=concurrency,
        completed=len(latencies) + errors.total() - unverified,
        errors=errors.total(),
        error_kinds=dict(errors.most_common()),
        verified=sum(len(tally.answers) for tally, _ in runs),
        seconds=round(seconds, 3),
        throughput=round(succeeded / seconds, 1) if seconds else 0.0,
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        hub_cpu_us=round(1e6 * used.hub_s / succeeded, 1) if per_op and succeeded else None,
        hub_cpu_percent=used.hub_percent,
        other_cpu_percent=used.other_percent,
    )


def measure(
    store: str,
    phase: str,
    method: str,
    requests: list[Prepared],
    concurrency: int,
    expected: int,
    meter: Meter,
    args: argparse.Namespace,
) -> Load:
    start = meter.sample()
    tally, wall = eventloop.run(send(method, requests, concurrency, args.seconds, expected))
    end = meter.sample()
    verify(tally, method, args.verify, concurrency)
    load = figures(store, phase, concurrency, [(tally, wall)], usage(start, end), per_op=True)
    progress(load)
    return load


def progress(load: Load) -> None:
    print(
        f"  {load.store:<8} {load.phase:<24} c={load.concurrency:<3} {load.throughput:8.1f}/s  p50 {load.p50_ms} ms"
        f"  p99 {load.p99_ms} ms  errors {load.errors}",
        file=sys.stderr,
        flush=True,
    )


# --- the import ------------------------------------------------------------------------------------------


async def follow(
    client: HubClient,
    import_id: str,
    hub: Process,
    done: asyncio.Event,
    deadline: float,
    meter: Meter,
    apart: dict[int, tuple[float, float]],
) -> tuple[dict[str, Any], Sample]:
    """Read the import's progress until it is done (or the hub exits, it stalls, the deadline passes); its last
    state and the moment it was read done; the hub's children as last read at each poll, into `apart`. Sets `done`
    on the way out, which ends the exchange windows."""
    path = f"/v1/directory/imports/{import_id}?after={LATEST_LINE}"  # no rejected line listed: a cheap read
    state: dict[str, Any] = {"status": "unread"}
    position, moved = -1, time.monotonic()
    try:
        while True:
            if time.monotonic() >= deadline:
                state = {**state, "status": f"timed out ({state['status']})"}
                break
            if hub.popen.poll() is not None:
                state = {**state, "status": f"hub exited ({hub.popen.returncode})"}
                break
            apart.update(children(hub.pid))
            try:
                _, state = await client.call("GET", path)
            except (HubProblem, UnverifiedAnswer, aiohttp.ClientError, TimeoutError) as error:
                state = {**state, "last_poll_error": type(error).__name__}
            else:
                if state["status"] == "done":
                    break
                if state["bytes_read"] != position:
                    position, moved = state["bytes_read"], time.monotonic()
            if time.monotonic() - moved > STALL_S:
                state = {**state, "status": f"stalled ({state['status']})"}
                break
            await asyncio.sleep(POLL_S)
        return state, meter.sample()
    finally:
        done.set()


async def rejection_reasons(client: HubClient, import_id: str) -> dict[str, int]:
    """The first page of the import's rejected lines (up to 1,000), counted by reason."""
    try:
        _, state = await client.call("GET", f"/v1/directory/imports/{import_id}?after=0")
    except (HubProblem, UnverifiedAnswer, aiohttp.ClientError, TimeoutError) as error:
        return {f"(not read: {type(error).__name__})": 0}
    return dict(Counter(str(item["detail"]) for item in state.get("errors", [])).most_common())


async def import_file(
    store: str,
    url: str,
    hub: Process,
    signer: Signer,
    meter: Meter,
    file: ImportFile,
    phase: str,
    exchanges_per_window: int,
    args: argparse.Namespace,
) -> tuple[ImportRun, Load | None]:
    """Send the file, follow it to the end and, when `exchanges_per_window`, run the exchange load meanwhile."""
    key, hub_key = signer.holders[IMPORTER], signer.hub.public_key
    deadline = time.monotonic() + args.import_timeout
    upload = aiohttp.ClientTimeout(total=args.import_timeout)
    runs: list[tuple[Tally, float]] = []
    async with (
        aiohttp.ClientSession(timeout=upload) as long_session,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as short_session,
    ):
        sender = HubClient(url, key, HUB_KEY_ID, hub_key, long_session)
        follower = HubClient(url, key, HUB_KEY_ID, hub_key, short_session)
        rss_before, peak_before = memory_mb(hub.pid)
        started = meter.sample()
        accepted = await sender.import_references(file.path)
        sent = meter.sample()
        done = asyncio.Event()
        apart: dict[int, tuple[float, float]] = {}
        following = asyncio.create_task(follow(follower, accepted["import"], hub, done, deadline, meter, apart))
        while exchanges_per_window and not done.is_set():
            requests = signer.brokered(exchanges_per_window, [url])
            tally, seconds = await send("POST", requests, args.import_concurrency, args.seconds, 200, done)
            verify(tally, "POST", max(10, args.verify // 10), len(runs))  # now: the answers are not kept for long
            runs.append((tally, seconds))
        state, ended = await following
        reasons = await rejection_reasons(follower, accepted["import"])
    rss_after, peak = memory_mb(hub.pid)
    applying, sending = usage(sent, ended), usage(started, sent)
    apart_cpu = sum(cpu for cpu, _ in apart.values())
    lines = int(state.get("lines", 0))
    apply_s = 0.0
    if "created_at" in state:
        apply_s = (
            datetime.fromisoformat(state["updated_at"]) - datetime.fromisoformat(state["created_at"])
        ).total_seconds()
    wall = ended[1] - started[1]
    expected = {"lines": file.lines, "applied": file.good, "rejected": file.bad}
    run = ImportRun(
        store=store,
        phase=phase,
        status=str(state["status"]),
        lines=lines,
        applied=int(state.get("applied", 0)),
        rejected=int(state.get("rejected", 0)),
        expected=expected,
        counts_match=all(state.get(name) == value for name, value in expected.items()),
        size_mb=round(file.size / 1e6, 1),
        send_s=round(sending.wall_s, 2),
        apply_s=round(apply_s, 2),
        wall_s=round(wall, 2),
        lines_per_s=round(lines / apply_s, 1) if apply_s > 0 else 0.0,
        lines_per_s_wall=round(lines / wall, 1),
        hub_cpu_percent=applying.hub_percent,
        hub_cpu_us_per_line=None if runs or not lines else round(1e6 * (applying.hub_s + apart_cpu) / lines, 1),
        hub_rss_before_mb=rss_before,
        hub_rss_after_mb=rss_after,
        hub_peak_before_mb=peak_before,
        hub_peak_mb=peak,
        apart_cpu_s=round(apart_cpu, 2),
        apart_peak_mb=max((peak_mb for _, peak_mb in apart.values()), default=0.0),
        windows=len(runs),
        covered=round(sum(seconds for _, seconds in runs) / applying.wall_s, 3) if runs else 0.0,
        rejections=reasons,
    )
    print(
        f"  {run.store:<8} {phase:<24} {run.status}: {lines:,} lines, {run.lines_per_s:,.0f}/s by the import's clock,"
        f" {run.lines_per_s_wall:,.0f}/s wall; hub peak {peak} MB",
        file=sys.stderr,
        flush=True,
    )
    load = None
    if runs:
        load = figures(store, "exchanges during import", args.import_concurrency, runs, applying, per_op=False)
        progress(load)
    return run, load


# --- one store -------------------------------------------------------------------------------------------


async def register_capacity(database_url: str, world: Layout) -> None:
    """The capacity the world's relationships name, registered so that the agencies may declare more."""
    config = Config(state_dir=Path(world.state_dir), database_url=database_url, hub_key_path=Path(world.hub_key_path))
    async with open_hub(config) as hub:
        await hub.registry.add_capacity(Term(CAPACITY, "the subject receives a benefit from the agency"))


def run_store(
    store: str,
    database_url: str,
    signer: Signer,
    adapters: Process,
    files: dict[str, ImportFile],
    args: argparse.Namespace,
) -> tuple[list[Load], list[ImportRun]]:
    world = signer.world
    print(f"building the {store} world ({args.directory_rows:,} directory rows)", file=sys.stderr, flush=True)
    eventloop.run(build(database_url, world, args.directory_rows))
    eventloop.run(publish_rules(database_url, world, RULES))
    eventloop.run(register_capacity(database_url, world))
    [(hub, url)] = start_hubs(1, database_url, world, Path(world.state_dir), f"directory-{store}", args.hub_env)
    meter = Meter(hub.pid, adapters.pid)
    declarations = Declarations(signer)
    loads: list[Load] = []
    imports: list[ImportRun] = []
    try:
        # Every policy question once (a running hub has its decisions cached) and a few declarations, the
        # connections opened: not counted.
        eventloop.run(drive(signer.brokered(0, [url], signer.questions()), 16, WARMUP_LIMIT_S, set()))
        eventloop.run(send("PUT", declarations.signed(200, url), 16, WARMUP_LIMIT_S, 201))
        for concurrency in sorted({*args.concurrency, args.import_concurrency}):
            requests = signer.brokered(args.max_requests, [url])
            loads.append(measure(store, "exchanges", "POST", requests, concurrency, 200, meter, args))
        if "declarations" in args.phases:
            for concurrency in args.concurrency:
                requests = declarations.signed(args.max_requests, url)
                loads.append(measure(store, "declarations", "PUT", requests, concurrency, 201, meter, args))
        if "import" in args.phases:
            alone = next(
                load for load in loads if (load.phase, load.concurrency) == ("exchanges", args.import_concurrency)
            )
            # Enough requests for a window at half again the rate measured alone; a window that spends them
            # sooner ends sooner, and the next one is signed.
            per_window = min(args.max_requests, math.ceil(alone.throughput * args.seconds * 1.5) + 100)
            run, load = eventloop.run(
                import_file(
                    store, url, hub, signer, meter, files["with exchanges"], "import with exchanges", per_window, args
                )
            )
            imports.append(run)
            loads += [load] if load is not None else []
            if "alone" in files:
                run, _ = eventloop.run(
                    import_file(store, url, hub, signer, meter, files["alone"], "import alone", 0, args)
                )
                imports.append(run)
    finally:
        hub.stop()
    return loads, imports


def postgres_server(notes: list[str]) -> postgres.Server | None:
    """CROSSROADS_BENCH_POSTGRES_URL's server, or one started as the tests start theirs."""
    url = os.environ.get("CROSSROADS_BENCH_POSTGRES_URL")
    if url:
        return postgres.Server(url)
    server = postgres.start()
    if isinstance(server, str):
        notes.append(f"PostgreSQL not measured: {server}")
        return None
    return server


def run_directory(args: argparse.Namespace, notes: list[str]) -> tuple[list[Load], list[ImportRun], dict[str, Any]]:
    loads: list[Load] = []
    imports: list[ImportRun] = []
    files: dict[str, ImportFile] = {}
    with tempfile.TemporaryDirectory(prefix="crossroads-bench-directory-") as scratch:
        state = args.keep or Path(scratch)
        state.mkdir(parents=True, exist_ok=True)
        if "import" in args.phases:
            print(f"writing the import file ({args.import_lines:,} lines)", file=sys.stderr, flush=True)
            files["with exchanges"] = write_import(state / "import.ndjson", args.import_lines, args.bad_share, IMPORTED)
            if args.import_alone:
                files["alone"] = write_import(state / "alone.ndjson", args.import_lines, args.bad_share, IMPORTED_ALONE)
        make_keys(state)
        world = layout(state, {holder: free_port() for holder in HOLDERS}, args.directory_rows, args.asked)
        (state / "layout.json").write_text(json.dumps(world.as_json()))
        adapters = Process(
            "adapters", [sys.executable, "bench/holders.py", str(state / "layout.json")], state / "adapters.log"
        )
        server: postgres.Server | None = None
        try:
            wait_printed(adapters, b"ready")
            signer = Signer(world)
            for store in args.stores:
                if store == "sqlite":
                    database_url = f"sqlite+aiosqlite:///{state / 'bench.db'}"
                else:
                    server = server or postgres_server(notes)
                    if server is None:
                        continue
                    database_url = eventloop.run(server.new_database())
                store_loads, store_imports = run_store(store, database_url, signer, adapters, files, args)
                loads += store_loads
                imports += store_imports
            warnings = log_warnings(state)
        finally:
            adapters.stop()
            if server is not None:
                server.close()
    written = {
        name: {"lines": f.lines, "bad": f.bad, "bytes": f.size, "written_s": f.written_s} for name, f in files.items()
    }
    return loads, imports, {"import_files": written, "hub_log_warnings": warnings}


# --- exchanges over more directory rows: bench/brokering.py, once per size -------------------------------


def rows_command(rows: int, out: Path, args: argparse.Namespace) -> list[str]:
    command = ["bench/brokering.py", "--stores", ",".join(args.stores), "--rows", str(rows), "--hubs", "1"]
    command += ["--rules", str(RULES), "--seconds", f"{args.seconds:g}", "--out", str(out)]
    command += ["--plot", str(out.with_suffix(".png"))]
    for name, value in args.hub_env.items():
        command += ["--hub-env", f"{name}={value}"]
    return command


def run_rows(args: argparse.Namespace, notes: list[str]) -> list[dict[str, Any]]:
    """bench/brokering.py --rows N for each N (it takes one size a run); its brokered phases, as it wrote them."""
    env = dict(os.environ)
    if "CROSSROADS_BENCH_POSTGRES_URL" in env:
        env["CROSSROADS_TEST_POSTGRES_URL"] = env["CROSSROADS_BENCH_POSTGRES_URL"]  # what brokering.py honours
    found = []
    for rows in args.rows:
        out = args.out.with_name(f"{args.out.stem}-rows-{rows}.json")
        command = rows_command(rows, out, args)
        print(f"exchanges over {rows:,} directory rows: {shlex.join(command)}", file=sys.stderr, flush=True)
        started = time.time()
        try:
            ran = subprocess.run([sys.executable, *command], cwd=REPO, env=env, timeout=ROWS_RUN_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            notes.append(f"bench/brokering.py --rows {rows} did not finish within {ROWS_RUN_TIMEOUT_S:g} s")
            continue
        if ran.returncode != 0 or not out.exists() or out.stat().st_mtime < started:
            notes.append(f"bench/brokering.py --rows {rows} failed (exit {ran.returncode})")
            continue
        document = json.loads(out.read_text())
        for phase in document["results"]:
            if phase["mode"] == "brokered":
                found.append(
                    {
                        "rows": rows,
                        "command": shlex.join(command),
                        "build": document["builds"].get(phase["store"]),
                        **phase,
                    }
                )
    return found


# --- the report ------------------------------------------------------------------------------------------


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def targets(loads: list[Load], imports: list[ImportRun], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of the issue's section "Speed", by store, against what was measured beside it."""
    found: list[dict[str, Any]] = []
    for store in dict.fromkeys([load.store for load in loads]):
        alone = {load.concurrency: load for load in loads if (load.store, load.phase) == (store, "exchanges")}
        declared = [load for load in loads if (load.store, load.phase) == (store, "declarations")]
        if declared:
            best = max(declared, key=lambda load: load.throughput)
            found.append(
                {
                    "store": store,
                    "target": f"declarations >= {DECLARATION_TARGET:,.0f}/s",
                    "measured": best.throughput,
                    "met": best.throughput >= DECLARATION_TARGET,
                    "beside": f"exchanges alone {alone[best.concurrency].throughput}/s at c={best.concurrency}",
                }
            )
        for run in imports:
            if run.store != store or run.phase != "import with exchanges":
                continue
            during = next(
                (load for load in loads if (load.store, load.phase) == (store, "exchanges during import")), None
            )
            base = alone.get(during.concurrency) if during else None
            ratio = round(during.throughput / base.throughput, 2) if during and base and base.throughput else None
            found.append(
                {
                    "store": store,
                    "target": f"import >= {IMPORT_TARGET:,.0f} references/s while serving exchanges",
                    "measured": run.lines_per_s,
                    "met": run.lines_per_s >= IMPORT_TARGET and run.counts_match,
                    "beside": f"exchanges during / alone = {ratio}"
                    + (f" (p99 {during.p99_ms} ms against {base.p99_ms} ms)" if during and base else ""),
                }
            )
            judged = run.lines >= IMPORT_TARGET_LINES
            found.append(
                {
                    "store": store,
                    "target": f"hub peak RSS < {RSS_TARGET_MB:.0f} MB for a {IMPORT_TARGET_LINES:,}-line file",
                    "measured": max(run.hub_peak_mb, run.apart_peak_mb),
                    "met": max(run.hub_peak_mb, run.apart_peak_mb) < RSS_TARGET_MB if judged else None,
                    "beside": f"{run.lines:,} lines; the hub's peak {run.hub_peak_mb} MB (before the import"
                    f" {run.hub_peak_before_mb} MB), the import's own process {run.apart_peak_mb} MB",
                }
            )
    by = {(row["rows"], row["store"], row["concurrency"]): row for row in rows}
    smallest = min((row["rows"] for row in rows), default=None)
    for (size, store, concurrency), row in by.items():
        base = by.get((smallest, store, concurrency))
        if size == smallest or base is None or not base["throughput"]:
            continue
        found.append(
            {
                "store": store,
                "target": f"exchanges with {size:,} directory rows, c={concurrency}",
                "measured": row["throughput"],
                "met": None,
                "beside": f"{size:,} / {smallest:,} rows = {round(row['throughput'] / base['throughput'], 2)}"
                f" (p99 {row['p99_ms']} ms against {base['p99_ms']} ms)",
            }
        )
    return found


def table(loads: list[Load], imports: list[ImportRun], rows: list[dict[str, Any]], goals: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    if loads:
        lines.append(
            f"{'store':<8} {'phase':<24} {'conc':>4} {'done':>6} {'err':>4} {'/s':>8} {'p50 ms':>7} {'p95 ms':>7}"
            f" {'p99 ms':>7} {'hub us/op':>9} {'hub cpu%':>8} {'other%':>6}"
        )
    for load in loads:
        lines.append(
            f"{load.store:<8} {load.phase:<24} {load.concurrency:>4} {load.completed:>6} {load.errors:>4}"
            f" {load.throughput:>8.1f} {_number(load.p50_ms):>7} {_number(load.p95_ms):>7} {_number(load.p99_ms):>7}"
            f" {_number(load.hub_cpu_us, 0):>9} {load.hub_cpu_percent:>8.0f} {load.other_cpu_percent:>6.0f}"
        )
    if imports:
        lines += [
            "",
            f"{'store':<8} {'import':<22} {'status':<6} {'lines':>9} {'rejected':>8} {'MB':>6} {'send s':>6}"
            f" {'apply s':>7} {'lines/s':>8} {'wall/s':>8} {'hub cpu%':>8} {'us/line':>7} {'peak MB':>7} {'RSS MB':>6}"
            f" {'apart MB':>8}",
        ]
    for run in imports:
        lines.append(
            f"{run.store:<8} {run.phase:<22} {run.status[:6]:<6} {run.lines:>9} {run.rejected:>8}"
            f" {run.size_mb:>6.0f} {run.send_s:>6.1f} {run.apply_s:>7.1f} {run.lines_per_s:>8.0f}"
            f" {run.lines_per_s_wall:>8.0f} {run.hub_cpu_percent:>8.0f} {_number(run.hub_cpu_us_per_line, 0):>7}"
            f" {run.hub_peak_mb:>7.0f} {run.hub_rss_after_mb:>6.0f} {run.apart_peak_mb:>8.0f}"
            + ("" if run.counts_match else f"  counts differ from {run.expected}")
        )
    if rows:
        lines += [
            "",
            f"{'rows':>10} {'store':<8} {'conc':>4} {'/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'hub us/ex':>9}"
            f" {'RSS MB':>6} {'build s':>7}",
        ]
    for row in rows:
        lines.append(
            f"{row['rows']:>10} {row['store']:<8} {row['concurrency']:>4} {row['throughput']:>8.1f}"
            f" {_number(row['p50_ms']):>7} {_number(row['p99_ms']):>7} {_number(row['hub_cpu_us'], 0):>9}"
            f" {_number(row['hub_rss_mb'], 0):>6} {_number((row['build'] or {}).get('bulk_rows_s'), 0):>7}"
        )
    lines.append("")
    for goal in goals:
        verdict = {True: "met", False: "not met", None: "not judged"}[goal["met"]]
        lines.append(f"{goal['store']}: {goal['target']}: {goal['measured']:,} ({verdict}); {goal['beside']}")
    return "\n".join(lines)


# --- command line ----------------------------------------------------------------------------------------

PHASES = ("declarations", "import", "rows")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200,000 import lines, 4 s phases, 100,000 rows")
    parser.add_argument("--stores", default="sqlite,postgres", help="stores to measure (default sqlite,postgres)")
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"what to run besides the exchanges ({','.join(PHASES)})"
    )
    parser.add_argument("--seconds", type=float, help="length of each measured phase and import window (5; --quick 4)")
    parser.add_argument("--max-requests", type=int, default=8000, help="request budget of each phase (8000)")
    parser.add_argument("--concurrency", type=integers, default=[16, 64], help="of exchanges and declarations (16,64)")
    parser.add_argument("--import-concurrency", type=int, default=16, help="of the exchanges during the import (16)")
    parser.add_argument("--import-lines", type=int, help="lines of the import file (5,000,000; --quick 200,000)")
    parser.add_argument("--bad-share", type=float, default=0.1, help="share of deliberately bad lines (0.1)")
    parser.add_argument(
        "--import-alone", action="store_true", help="also import as many lines with nothing else running"
    )
    parser.add_argument("--import-timeout", type=float, help="bound of one import, send included (1800 s; --quick 300)")
    parser.add_argument("--directory-rows", type=int, help="the world's directory rows (1,000,000; --quick 100,000)")
    parser.add_argument(
        "--rows", type=integers, help="directory rows of the rows phase (1000000,10000000; --quick 100000,1000000)"
    )
    parser.add_argument("--asked", type=int, default=20_000, help="distinct exchanges asked, each with a consent")
    parser.add_argument("--verify", type=int, default=300, help="answers per phase whose signatures are verified")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "references_results.json", help="the JSON result")
    parser.add_argument(
        "--hub-env", action="append", default=[], metavar="NAME=VALUE", help="a CROSSROADS_* setting for the hub"
    )
    parser.add_argument("--keep", type=Path, help="keep the store, keys, files and processes' logs in this directory")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (4.0 if args.quick else 5.0)
    args.import_lines = args.import_lines or (200_000 if args.quick else IMPORT_TARGET_LINES)
    args.import_timeout = args.import_timeout or (300.0 if args.quick else 1800.0)
    args.directory_rows = args.directory_rows or (100_000 if args.quick else 1_000_000)
    args.rows = args.rows or ([100_000, 1_000_000] if args.quick else [1_000_000, 10_000_000])
    args.stores = [store.strip() for store in args.stores.split(",") if store.strip()]
    args.phases = [phase.strip() for phase in args.phases.split(",") if phase.strip()]
    try:
        args.hub_env = dict(item.split("=", 1) for item in args.hub_env)
    except ValueError:
        parser.error("--hub-env takes NAME=VALUE")
    if not 0 < args.seconds <= 60 or args.max_requests < 1 or not 0 < args.import_timeout <= 6 * 3600:
        parser.error("--seconds must be in (0, 60], --max-requests at least 1, --import-timeout in (0, 21600]")
    if args.import_lines < 1 or not 0 <= args.bad_share < 1 or args.directory_rows < 4 or min(args.rows) < 4:
        parser.error("--import-lines at least 1, --bad-share in [0, 1), --directory-rows and --rows at least 4")
    if any(not 1 <= level <= 256 for level in [*args.concurrency, args.import_concurrency]):
        parser.error("concurrency levels must be 1 to 256")
    if set(args.stores) - {"sqlite", "postgres"} or set(args.phases) - set(PHASES):
        parser.error(f"stores are sqlite and postgres; phases are {', '.join(PHASES)}")
    if "rows" in args.phases and importlib.util.find_spec("matplotlib") is None:
        parser.error("the rows phase runs bench/brokering.py, which plots with matplotlib: `make bench-directory`")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    load_before = [round(load, 2) for load in os.getloadavg()]
    started = time.monotonic()
    notes: list[str] = []
    loads, imports, details = run_directory(args, notes)
    rows = run_rows(args, notes) if "rows" in args.phases else []
    goals = targets(loads, imports, rows)
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", *sys.argv]),
        "revision": revision(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "load_average_before": load_before,
            "load_average_after": [round(load, 2) for load in os.getloadavg()],
        },
        "settings": {
            "seconds": args.seconds,
            "max_requests": args.max_requests,
            "concurrency": args.concurrency,
            "import_concurrency": args.import_concurrency,
            "import_lines": args.import_lines,
            "bad_share": args.bad_share,
            "stores": args.stores,
            "phases": args.phases,
            "directory_rows": args.directory_rows,
            "rows": args.rows if "rows" in args.phases else None,
            "rules": RULES,
            "asked_exchanges": args.asked,
            "hub_environment": {**HUB_SETTINGS, **args.hub_env},
        },
        "loads": [asdict(load) for load in loads],
        "imports": [asdict(run) for run in imports],
        "rows": rows,
        "targets": goals,
        "notes": notes,
        **details,
        "wall_s": round(time.monotonic() - started, 1),
    }
    print(table(loads, imports, rows, goals))
    for note in notes:
        print(f"note: {note}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
