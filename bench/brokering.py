"""Benchmark: what brokering an exchange through the Crossroads hub costs, against asking the holder directly.

One run builds the benchmark world (bench/world.py: 16 requesters, 4 holders, 10 or 10,000 rules, a directory
of a million holdings and relationships, consents), starts the holders' adapters in one process
(bench/holders.py) and the hub as `crossroads serve` in one or two processes of its own, and drives them from
this process, on 127.0.0.1 only, with pre-signed requests (each with its own nonce, signed before the phase so
that signing costs the load generator nothing while it measures):

- direct:   requester -> holder's adapter, `POST /v1/records` signed with the hub's key (the adapter trusts no
            other), as the hub would forward it;
- brokered: requester -> hub -> adapter, `POST /v1/exchanges`, every exchange a different subject the
            requester has a relationship with, under a white rule that needs consent (so the consent check reads
            the store each time), audited; with two hubs the requests alternate between them.

Each phase is bounded by --seconds and --max-requests. Answers are checked after the phase: every status, and
the signatures of a sample (--verify) verified with the hub's or the holder's public key. The hub's own CPU
time per exchange comes from /proc/<pid>/stat of its processes; memory from /proc/<pid>/status (VmRSS).
It prints a table, writes a JSON result (--out) and a PNG plot of latency against throughput (--plot).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import report
from world import HOLDERS, HUB_KEY_ID, REQUESTERS, Exchange, Layout, build, layout, make_keys, publish_rules

from broker.base import eventloop
from broker.base.signing import (
    Request,
    Response,
    SignatureProblem,
    SigningKey,
    load_private_key,
    sign_request,
    verify_response,
)

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 10.0  # bounds a phase's overrun: no request outlives its deadline by more than this
WARMUP_S = 3.0  # before the direct phases, uncounted: opens connections
WARMUP_LIMIT_S = 60.0  # bounds the hubs' warm-up (every distinct policy question once)
HUB_SETTINGS = {
    # Rate limits and per-principal caps are policy, not cost: the load generator is not to be throttled.
    "CROSSROADS_RATE_PER_S": "1000000",
    "CROSSROADS_RATE_BURST": "1000000",
    "CROSSROADS_IN_FLIGHT_PER_PRINCIPAL": "1000",
}


@dataclass(frozen=True)
class Prepared:
    """One signed request, ready to send, and what its answer must be verified with."""

    url: str
    body: bytes
    headers: dict[str, str]
    answer_key_id: str
    answer_key: Any  # Ed25519PublicKey


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)  # of successful requests only
    errors: Counter[str] = field(default_factory=Counter)
    answers: list[tuple[Prepared, int, dict[str, str], bytes]] = field(default_factory=list)  # kept to verify

    @property
    def completed(self) -> int:
        return len(self.latencies_ms) + self.errors.total()


@dataclass(frozen=True)
class Setup:
    """What a phase runs against: the store, the rule set and the hubs (none for the direct mode)."""

    mode: str
    store: str | None = None
    rules: int | None = None
    hubs: int = 0


# --- processes -------------------------------------------------------------------------------------------


class Process:
    """A child process whose output goes to a file (never a pipe that could fill and block it)."""

    def __init__(self, name: str, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.log = name, log
        with log.open("wb") as output:
            self.popen = subprocess.Popen(
                command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check(self) -> None:
        if self.popen.poll() is not None:
            raise SystemExit(f"{self.name} exited with {self.popen.returncode}:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def wait_printed(process: Process, line: bytes) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if line in process.log.read_bytes().splitlines():
            return
        process.check()
        time.sleep(0.1)
    raise SystemExit(f"{process.name} was not ready within {READY_TIMEOUT_S:g} s")


def wait_ready(process: Process, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        process.check()
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:  # noqa: S310 -- our own http URL
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{process.name} was not ready within {READY_TIMEOUT_S:g} s:\n{process.log.read_text()[-3000:]}")


def start_hubs(
    count: int, database_url: str, world: Layout, logs: Path, label: str, env: dict[str, str]
) -> list[tuple[Process, str]]:
    hubs = []
    for number in range(count):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [
            sys.executable,
            "-m",
            "broker",
            "serve",
            "--state-dir",
            world.state_dir,
            "--database-url",
            database_url,
            "--port",
            str(port),
            "--public-url",
            url,
            "--hub-key",
            world.hub_key_path,
            "--hub-key-id",
            HUB_KEY_ID,
        ]
        hubs.append(
            (
                Process(f"hub {number + 1}", command, logs / f"hub-{label}-{number + 1}.log", {**HUB_SETTINGS, **env}),
                url,
            )
        )
    for process, url in hubs:
        wait_ready(process, url)
    return hubs


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


@dataclass(frozen=True)
class CpuSample:
    client: float
    hubs: float
    adapters: float
    machine: float

    @classmethod
    def take(cls, hub_pids: list[int], adapters_pid: int) -> CpuSample:
        return cls(
            time.process_time(),
            sum(process_cpu_seconds(pid) for pid in hub_pids),
            process_cpu_seconds(adapters_pid),
            machine_cpu_seconds(),
        )


# --- load ------------------------------------------------------------------------------------------------


class Signer:
    """Pre-signs requests for a phase: brokered ones with the requesters' keys, direct ones with the hub's."""

    def __init__(self, world: Layout) -> None:
        def key(name: str) -> SigningKey:
            return SigningKey(f"{name}-1", load_private_key(world.key_path(name).read_bytes()))

        self.world = world
        self.requesters = {name: key(name) for name in REQUESTERS}
        self.holders = {name: key(name) for name in HOLDERS}
        self.hub = SigningKey(HUB_KEY_ID, load_private_key(Path(world.hub_key_path).read_bytes()))
        self._next = 0  # each phase asks the next exchanges of the list: subjects recur as seldom as they can

    def questions(self) -> list[Exchange]:
        """One exchange per distinct policy question (requester, category, purpose) the load asks."""
        return list({(e.requester, e.category, e.purpose): e for e in self.world.exchanges}.values())

    def exchanges(self, count: int) -> list[Exchange]:
        chosen = [self.world.exchanges[(self._next + n) % len(self.world.exchanges)] for n in range(count)]
        self._next = (self._next + count) % len(self.world.exchanges)
        return chosen

    def brokered(self, count: int, hub_urls: list[str], asked: list[Exchange] | None = None) -> list[Prepared]:
        prepared = []
        for number, exchange in enumerate(asked or self.exchanges(count)):
            url = hub_urls[number % len(hub_urls)] + "/v1/exchanges"
            document = {"subject": exchange.subject, "category": exchange.category, "purpose": exchange.purpose}
            body = json.dumps(document, separators=(",", ":")).encode()
            headers = sign_request("POST", url, body, self.requesters[exchange.requester])
            prepared.append(Prepared(url, body, headers, HUB_KEY_ID, self.hub.public_key))
        return prepared

    def direct(self, count: int) -> list[Prepared]:
        prepared = []
        for exchange in self.exchanges(count):
            url = self.world.adapter_url(exchange.holder) + "/v1/records"
            document = {
                "exchange": str(uuid.uuid4()),
                "requester": exchange.requester,
                "subject": exchange.subject,
                "category": exchange.category,
                "purpose": exchange.purpose,
                "params": {},
            }
            body = json.dumps(document, separators=(",", ":")).encode()
            headers = sign_request("POST", url, body, self.hub)
            holder = self.holders[exchange.holder]
            prepared.append(Prepared(url, body, headers, holder.key_id, holder.public_key))
        return prepared


async def drive(requests: list[Prepared], concurrency: int, seconds: float, keep: set[int]) -> Tally:
    """`concurrency` workers send the requests in order until the deadline or the list is spent."""
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    queue = iter(enumerate(requests))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            for index, request in queue:
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                try:
                    async with session.post(request.url, data=request.body, headers=request.headers) as answer:
                        body, status = await answer.read(), answer.status
                        headers = dict(answer.headers) if index in keep else {}
                except (aiohttp.ClientError, TimeoutError) as error:
                    tally.errors[type(error).__name__] += 1
                    continue
                if status != 200:
                    tally.errors[f"{status} {problem_name(body)}"] += 1
                    continue
                tally.latencies_ms.append((time.perf_counter() - started) * 1000)
                if index in keep:
                    tally.answers.append((request, status, headers, body))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


def problem_name(body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return "(not JSON)"
    kind = document.get("type") if isinstance(document, dict) else None
    return str(kind).rsplit("/", 1)[-1] if kind else "(no problem type)"


def verify_answers(tally: Tally) -> None:
    """Check the kept answers' signatures and bindings; a failure turns a success into an error."""
    for request, status, headers, body in tally.answers:
        bound = Request("POST", request.url, {"Content-Digest": request.headers["Content-Digest"]})
        try:
            verify_response(Response(status, headers, bound), body, request.answer_key_id, request.answer_key)
        except SignatureProblem as problem:
            tally.errors[f"200 unverified: {problem.kind}"] += 1


@dataclass(frozen=True)
class Phase:
    mode: str
    store: str | None
    rules: int | None
    hubs: int
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
    hub_cpu_us: float | None  # hub CPU per successful exchange
    floor_ratio: float | None
    hub_cpu_percent: float | None  # of one core, all hub processes together
    adapters_cpu_percent: float
    client_cpu_percent: float
    other_cpu_percent: float
    hub_rss_mb: float | None = None
    # PostgreSQL's CPU per exchange: the machine's CPU outside the hubs, adapters and load generator, which on a
    # quiet machine is the server's processes (None on SQLite, whose work is inside the hub's process).
    store_cpu_us: float | None = None


def percentile(ordered: list[float], rank: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty), rounded to 0.01 ms."""
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(len(ordered) * rank / 100) - 1)], 2)


def measure(
    setup: Setup, requests: list[Prepared], concurrency: int, args: argparse.Namespace, pids: tuple[list[int], int]
) -> Phase:
    hub_pids, adapters_pid = pids
    keep = set(random.Random(concurrency).sample(range(len(requests)), min(args.verify, len(requests))))
    before, started = CpuSample.take(hub_pids, adapters_pid), time.perf_counter()
    tally = eventloop.run(drive(requests, concurrency, args.seconds, keep))
    wall = time.perf_counter() - started
    after = CpuSample.take(hub_pids, adapters_pid)
    verify_answers(tally)
    latencies = sorted(tally.latencies_ms)
    succeeded = len(latencies) - sum(count for kind, count in tally.errors.items() if "unverified" in kind)
    hub_cpu = after.hubs - before.hubs
    others = (after.machine - before.machine) - sum(
        (after.client - before.client, hub_cpu, after.adapters - before.adapters)
    )
    hub_us = round(1e6 * hub_cpu / succeeded, 1) if setup.hubs and succeeded else None
    return Phase(
        mode=setup.mode,
        store=setup.store,
        rules=setup.rules,
        hubs=setup.hubs,
        concurrency=concurrency,
        completed=tally.completed,
        errors=tally.errors.total(),
        error_kinds=dict(tally.errors.most_common()),
        verified=len(tally.answers),
        seconds=round(wall, 3),
        throughput=round(succeeded / wall, 1),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        hub_cpu_us=hub_us,
        floor_ratio=None,  # set once the floor of the same run is known (with_floor)
        hub_cpu_percent=round(100 * hub_cpu / wall, 1) if setup.hubs else None,
        adapters_cpu_percent=round(100 * (after.adapters - before.adapters) / wall, 1),
        client_cpu_percent=round(100 * (after.client - before.client) / wall, 1),
        other_cpu_percent=round(100 * max(0.0, others) / wall, 1),
        store_cpu_us=round(1e6 * max(0.0, others) / succeeded, 1) if setup.store == "postgres" and succeeded else None,
    )


# --- the run ---------------------------------------------------------------------------------------------


def run_direct(signer: Signer, adapters: Process, args: argparse.Namespace) -> list[Phase]:
    setup = Setup("direct")
    eventloop.run(drive(signer.direct(args.warmup_requests), 16, WARMUP_S, set()))
    phases = []
    for concurrency in args.concurrency:
        phases.append(measure(setup, signer.direct(args.max_requests), concurrency, args, ([], adapters.pid)))
        progress(phases[-1])
    return phases


def run_floor(signer: Signer, adapters: Process, args: argparse.Namespace, state: Path) -> list[Phase]:
    """The floor (bench/floor.py) on the same load as the hubs: its CPU per exchange is what theirs is set against."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "bench/floor.py", str(state / "layout.json"), str(port)]
    floor = Process("floor", command, state / "floor.log")
    phases = []
    try:
        wait_printed(floor, b"ready")
        eventloop.run(drive(signer.brokered(args.warmup_requests, [url]), 16, WARMUP_S, set()))
        for concurrency in args.concurrency:
            requests = signer.brokered(args.max_requests, [url])
            phases.append(measure(Setup("floor", hubs=1), requests, concurrency, args, ([floor.pid], adapters.pid)))
            progress(phases[-1])
    finally:
        floor.stop()
    return phases


def with_floor(phases: list[Phase]) -> list[Phase]:
    """Each brokered phase's hub CPU per exchange as a ratio to the floor's at the same concurrency."""
    floors = {phase.concurrency: phase.hub_cpu_us for phase in phases if phase.mode == "floor"}

    def ratio(phase: Phase) -> float | None:
        floor = floors.get(phase.concurrency)
        return None if phase.hub_cpu_us is None or not floor else round(phase.hub_cpu_us / floor, 2)

    return [replace(phase, floor_ratio=ratio(phase)) if phase.mode == "brokered" else phase for phase in phases]


def run_hubs(
    setup: Setup, database_url: str, signer: Signer, adapters: Process, args: argparse.Namespace, logs: Path
) -> list[Phase]:
    label = f"{setup.store}-{setup.rules}-{setup.hubs}"
    hubs = start_hubs(setup.hubs, database_url, signer.world, logs, label, args.hub_env)
    urls, pids = [url for _, url in hubs], [process.pid for process, _ in hubs]
    phases = []
    profiler = None
    try:
        # Every policy question once through every hub (a running hub has its decisions cached; the first
        # answer to each question costs a Casbin evaluation), and the connections opened: not counted.
        questions = signer.questions()
        for url in urls:
            eventloop.run(drive(signer.brokered(0, [url], questions), 16, WARMUP_LIMIT_S, set()))
        for concurrency in args.concurrency:
            requests = signer.brokered(args.max_requests, urls)
            if args.profile and (setup.store, setup.rules, setup.hubs, concurrency) == ("sqlite", 10_000, 1, 16):
                profiler = start_profiler(pids[0], args)
            phase = measure(setup, requests, concurrency, args, (pids, adapters.pid))
            phases.append(phase)
            progress(phase)
        rss = max(resident_mb(pid) for pid in pids)
        phases = [Phase(**{**asdict(phase), "hub_rss_mb": rss}) for phase in phases]
    finally:
        if profiler is not None:
            profiler.wait()
        for process, _ in hubs:
            process.stop()
    return phases


def start_profiler(pid: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """py-spy records the hub during the phase: a flame graph (SVG), or collapsed stacks if the name ends in .txt."""
    command = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--duration"]
    # --gil: samples of the thread holding the interpreter, i.e. where the hub's Python time goes; the SQLite
    # library's own work in aiosqlite's threads runs without it and is not shown.
    command += [str(math.ceil(args.seconds)), "--rate", "200", "--gil", "--nonblocking", "-o", str(args.profile)]
    if args.profile.suffix == ".txt":
        command += ["--format", "raw"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def progress(phase: Phase) -> None:
    where = phase.mode if phase.mode != "brokered" else f"{phase.store}, {phase.rules} rules, {phase.hubs} hub(s)"
    print(
        f"  {where:<32} c={phase.concurrency:<3} {phase.throughput:8.1f}/s  p50 {phase.p50_ms} ms"
        + ("" if phase.hub_cpu_us is None else f"  hub {phase.hub_cpu_us:.0f} us/exchange"),
        file=sys.stderr,
        flush=True,
    )


def databases(stores: list[str], state: Path, notes: list[str]) -> Iterator[tuple[str, str]]:
    """Each store and its database's URL, in order: SQLite in `state`, or a fresh database on a PostgreSQL server
    started as the tests start theirs (once, and stopped when the iteration ends); a store that cannot run is said
    in `notes` and skipped."""
    sys.path.insert(0, str(REPO))
    from tests import postgres  # the test suite's throwaway PostgreSQL server, reused

    server: postgres.Server | str | None = None
    try:
        for store in stores:
            if store == "sqlite":
                yield store, f"sqlite+aiosqlite:///{state / 'bench.db'}"
                continue
            server = server or postgres.start()
            if isinstance(server, str):
                notes.append(f"PostgreSQL not measured: {server}")
                continue
            yield store, eventloop.run(server.new_database())
    finally:
        if isinstance(server, postgres.Server):
            server.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: list[Phase] = []
    builds: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="crossroads-bench-") as scratch:
        state = args.keep or Path(scratch)
        state.mkdir(parents=True, exist_ok=True)
        make_keys(state)
        world = layout(state, {holder: free_port() for holder in HOLDERS}, args.rows, args.asked)
        (state / "layout.json").write_text(json.dumps(world.as_json()))
        adapters = Process(
            "adapters", [sys.executable, "bench/holders.py", str(state / "layout.json")], state / "adapters.log"
        )
        try:
            wait_printed(adapters, b"ready")
            signer = Signer(world)
            results += run_direct(signer, adapters, args)
            results += run_floor(signer, adapters, args, state)
            for store, database_url in databases(args.stores, state, notes):
                print(f"building the {store} world ({args.rows:,} directory rows)", file=sys.stderr, flush=True)
                builds[store] = eventloop.run(build(database_url, world, args.rows))
                for rules in args.rules:
                    eventloop.run(publish_rules(database_url, world, rules))
                    for hubs in args.hubs:
                        setup = Setup("brokered", store, rules, hubs)
                        results += run_hubs(setup, database_url, signer, adapters, args, state)
            warnings = log_warnings(state)
        finally:
            adapters.stop()
    return {"results": with_floor(results), "builds": builds, "notes": notes, "hub_log_warnings": warnings}


def log_warnings(state: Path) -> dict[str, int]:
    """Warning and error events the hubs logged, by level and event name."""
    counts: Counter[str] = Counter()
    for log in state.glob("hub-*.log"):
        for line in log.read_text().splitlines():
            if line.startswith("listening on "):  # what `crossroads serve` prints once it listens
                continue
            try:
                event = json.loads(line)
            except ValueError:
                counts["unparsed log line"] += 1
                continue
            if isinstance(event, dict) and event.get("level") in {"warning", "error", "critical"}:
                counts[f"{event['level']} {event.get('event')}"] += 1
    return dict(counts)


# --- command line ----------------------------------------------------------------------------------------


def integers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError("a comma-separated list of integers") from error
    if not values:
        raise argparse.ArgumentTypeError("at least one value")
    return values


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s phases, 100,000 directory rows (about 3 minutes)")
    parser.add_argument("--seconds", type=float, help="length of each measured phase (default 5; --quick 2)")
    parser.add_argument("--max-requests", type=int, default=8000, help="request budget of each phase (8000)")
    parser.add_argument("--concurrency", type=integers, default=[1, 16, 64], help="levels (default 1,16,64)")
    parser.add_argument("--hubs", type=integers, default=[1, 2], help="hub process counts (default 1,2)")
    parser.add_argument("--rules", type=integers, default=[10_000, 10], help="rule set sizes (10000,10)")
    parser.add_argument("--stores", default="sqlite,postgres", help="stores to measure (default sqlite,postgres)")
    parser.add_argument("--rows", type=int, help="directory rows (default 1,000,000; --quick 100,000)")
    parser.add_argument("--asked", type=int, default=20_000, help="distinct exchanges asked, each with a consent")
    parser.add_argument("--verify", type=int, default=300, help="answers per phase whose signatures are verified")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results.json", help="the JSON result")
    parser.add_argument("--plot", type=Path, default=REPO / "bench" / "results.png", help="the PNG plot")
    parser.add_argument(
        "--hub-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a CROSSROADS_* setting for the hub processes (repeatable), e.g. CROSSROADS_CACHE_FOLLOW_S=0.1",
    )
    parser.add_argument("--keep", type=Path, help="keep the SQLite store, keys and logs here (not PostgreSQL's data)")
    parser.add_argument("--profile", type=Path, help="py-spy flame graph (SVG) of the hub: sqlite, 10,000 rules, c=16")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (2.0 if args.quick else 5.0)
    args.rows = args.rows or (100_000 if args.quick else 1_000_000)
    args.stores = [store.strip() for store in args.stores.split(",") if store.strip()]
    args.warmup_requests = 1500
    try:
        args.hub_env = dict(item.split("=", 1) for item in args.hub_env)
    except ValueError:
        parser.error("--hub-env takes NAME=VALUE")
    if not 0 < args.seconds <= 60 or args.max_requests < 1 or args.rows < 4:
        parser.error("--seconds must be in (0, 60], --max-requests at least 1, --rows at least 4")
    if any(level < 1 or level > 256 for level in args.concurrency) or any(n not in (1, 2, 3, 4) for n in args.hubs):
        parser.error("concurrency levels must be 1 to 256 and hub counts 1 to 4")
    if set(args.stores) - {"sqlite", "postgres"}:
        parser.error("stores are sqlite and postgres")
    return args


def revision() -> dict[str, Any] | None:
    """The commit measured and how many tracked files differed from it: the numbers belong to that tree."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        status = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit.stdout.strip(), "modified_files": len(status.stdout.splitlines())}


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    load_before = [round(load, 2) for load in os.getloadavg()]
    started = time.monotonic()
    outcome = run(args)
    phases: list[Phase] = outcome["results"]
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
            "hubs": args.hubs,
            "rules": args.rules,
            "stores": args.stores,
            "directory_rows": args.rows,
            "asked_exchanges": args.asked,
            "verified_per_phase": args.verify,
            "warmup_s": WARMUP_S,
            "hub_environment": {**HUB_SETTINGS, **args.hub_env},
        },
        "builds": outcome["builds"],
        "results": [asdict(phase) for phase in phases],
        "summary": report.summary([asdict(phase) for phase in phases]),
        "notes": outcome["notes"],
        "hub_log_warnings": outcome["hub_log_warnings"],
        "wall_s": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(report.table(document))
    report.plot(document, args.plot)
    print(f"results written to {args.out} and {args.plot}")


if __name__ == "__main__":
    main(sys.argv[1:])
