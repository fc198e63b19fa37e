"""Benchmark: what brokering an exchange through the Crossroads hub costs over asking the holder directly.

This module owns the whole run: it starts the demo world (`crossroads demo --serve`) in its own process,
drives it from this process with signed requests in two modes at each concurrency level, and reports
completed requests, errors, throughput and latency percentiles as a table and as JSON.

- direct:   requester → population-register adapter, `POST /v1/records` signed with the hub's key (the
            adapter trusts no other), the adapter's signed answer verified with its public key.
- brokered: requester → hub → adapter, `POST /v1/exchanges` signed with family-benefits' key, the hub's
            signed answer verified with the hub's public key.

Both modes sign every request and verify every answer here, in the load generator, which shares the
machine's cores with the world it measures; the table shows how much CPU each side used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.signing import (
    Request,
    Response,
    SignatureProblem,
    SigningKey,
    load_private_key,
    load_public_key,
    sign_request,
    verify_response,
)

REPO = Path(__file__).resolve().parent.parent
REQUESTER = "family-benefits"
HOLDER = "population-register"
SUBJECT = "85073003328"  # Anna: family-benefits has her as a beneficiary; the population register holds her
EXCHANGE = {"subject": SUBJECT, "category": "civil-status", "purpose": "benefit-eligibility"}
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 10.0  # bounds a phase's overrun: no request outlives its deadline by more than this
WARMUP_S = 1.0
CAVEAT = (
    "The load generator signs every request and verifies every answer (Ed25519, RFC 9421) on the same "
    "cores as the hub and adapters; the demo world runs the hub and all six adapters in one process, "
    "on the embedded SQLite store, with an audit commit per request."
)


@dataclass(frozen=True)
class Mode:
    """One way of getting Anna's civil status: where to POST what, signed by whom, answered by whom."""

    name: str
    url: str
    document: Callable[[], dict[str, Any]]
    key: SigningKey
    answer_key_id: str
    answer_key: Ed25519PublicKey


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)  # of successful requests only
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def completed(self) -> int:
        return len(self.latencies_ms) + self.errors.total()


@dataclass(frozen=True)
class PhaseResult:
    mode: str
    concurrency: int
    completed: int
    errors: int
    error_kinds: dict[str, int]
    seconds: float
    throughput: float  # successful requests per second
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    # CPU used during the phase, in % of one core (the machine has os.cpu_count() of them); None off Linux.
    client_cpu_percent: float
    world_cpu_percent: float | None
    other_cpu_percent: float | None  # everything else on the machine: other work skews the numbers


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far by this process, by the world's process and by the whole machine."""

    client: float
    world: float | None
    machine: float | None

    @classmethod
    def take(cls, world_pid: int) -> CpuSample:
        return cls(time.process_time(), process_cpu_seconds(world_pid), machine_cpu_seconds())

    def percent_since(self, before: CpuSample, wall: float) -> tuple[float, float | None, float | None]:
        """CPU used since `before` by this process, the world and everything else, in % of one core."""
        client = self.client - before.client
        world = None if self.world is None or before.world is None else self.world - before.world
        machine = None if self.machine is None or before.machine is None else self.machine - before.machine
        other = None if world is None or machine is None else max(0.0, machine - client - world)
        return round(100 * client / wall, 1), percent(world, wall), percent(other, wall)


# --- the world under test --------------------------------------------------------------------------


def start_world(state_dir: Path) -> subprocess.Popen[bytes]:
    # The world's output goes to a file, not a pipe, so nothing it prints under load can block it.
    with (state_dir / "demo.out").open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "broker", "demo", "--serve", "--state-dir", str(state_dir)],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def wait_ready(process: subprocess.Popen[bytes], state_dir: Path) -> None:
    output = state_dir / "demo.out"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if b"ready" in output.read_bytes().splitlines():
            return
        if process.poll() is not None:
            raise SystemExit(f"the demo world exited with {process.returncode}:\n{output.read_text()}")
        time.sleep(0.1)
    raise SystemExit(f"the demo world was not ready within {READY_TIMEOUT_S:g} s:\n{output.read_text()}")


def stop_world(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def load_modes(state_dir: Path) -> list[Mode]:
    """The two modes, from world.json and the key files it names."""
    world = json.loads((state_dir / "world.json").read_text())
    holder = next(agency for agency in world["agencies"] if agency["id"] == HOLDER)
    requester = next(agency for agency in world["agencies"] if agency["id"] == REQUESTER)
    hub_key = SigningKey(world["hub"]["key_id"], load_private_key((state_dir / "keys" / "hub.pem").read_bytes()))
    holder_key = load_private_key((state_dir / holder["private_key_path"]).read_bytes())
    requester_key = load_private_key((state_dir / requester["private_key_path"]).read_bytes())
    return [
        Mode(
            "direct",
            holder["adapter_url"].rstrip("/") + "/v1/records",
            # What the hub would forward: a fresh exchange id each time, as the hub allocates one.
            lambda: {"exchange": str(uuid.uuid4()), "requester": REQUESTER, **EXCHANGE, "params": {}},
            hub_key,
            holder["key_id"],
            holder_key.public_key(),
        ),
        Mode(
            "brokered",
            world["hub"]["url"].rstrip("/") + "/v1/exchanges",
            lambda: dict(EXCHANGE),
            SigningKey(requester["key_id"], requester_key),
            world["hub"]["key_id"],
            load_public_key(world["hub"]["public_key_pem"]),
        ),
    ]


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of another process, from /proc (Linux only)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime and stime are fields 14 and 15 of proc(5).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float | None:
    """CPU time all cores have spent busy since boot, from /proc/stat (Linux only)."""
    try:
        ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    idle, iowait = ticks[3], ticks[4]
    # Guest time is already counted in user time, so only the first eight columns add up to the total.
    return (sum(ticks[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def percent(cpu_seconds: float | None, wall: float) -> float | None:
    return None if cpu_seconds is None else round(100 * cpu_seconds / wall, 1)


def log_warnings(log_path: Path) -> dict[str, int]:
    """Warning and error events the world logged, by level and event name."""
    counts: Counter[str] = Counter()
    if not log_path.exists():
        return {}
    with log_path.open() as log:
        for line in log:
            try:
                event = json.loads(line)
            except ValueError:
                counts["unparsed log line"] += 1
                continue
            if event.get("level") in {"warning", "error", "critical"}:
                counts[f"{event['level']} {event.get('event')}"] += 1
    return dict(counts)


# --- load ------------------------------------------------------------------------------------------


async def attempt(mode: Mode, session: aiohttp.ClientSession) -> str | None:
    """One signed request and the check of its signed answer: None if it succeeded, else what went wrong."""
    body = json.dumps(mode.document(), separators=(",", ":")).encode()
    headers = sign_request("POST", mode.url, body, mode.key)
    try:
        async with session.post(mode.url, data=body, headers=headers) as answer:
            answer_body = await answer.read()
            status, answer_headers = answer.status, dict(answer.headers)
    except (aiohttp.ClientError, TimeoutError) as error:
        return type(error).__name__
    if status != 200:
        return f"{status} {problem_name(answer_body)}"
    request = Request("POST", mode.url, {"Content-Digest": headers["Content-Digest"]})
    try:
        verify_response(Response(status, answer_headers, request), answer_body, mode.answer_key_id, mode.answer_key)
    except SignatureProblem as problem:
        return f"200 unverified: {problem.kind}"
    return None


def problem_name(body: bytes) -> str:
    """The last segment of an RFC 9457 problem type, or a note that the body is no problem document."""
    try:
        document = json.loads(body)
    except ValueError:
        return "(not JSON)"
    kind = document.get("type") if isinstance(document, dict) else None
    return str(kind).rsplit("/", 1)[-1] if kind else "(no problem type)"


async def drive(
    mode: Mode, session: aiohttp.ClientSession, concurrency: int, seconds: float, max_requests: int
) -> Tally:
    """`concurrency` workers send requests back to back until the deadline or the request budget is spent."""
    tally = Tally()
    deadline = time.perf_counter() + seconds
    budget = iter(range(max_requests))  # shared: each worker claims the next request before sending it

    async def worker() -> None:
        while time.perf_counter() < deadline and next(budget, None) is not None:
            started = time.perf_counter()
            error = await attempt(mode, session)
            if error is None:
                tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                tally.errors[error] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


async def measure(mode: Mode, concurrency: int, seconds: float, max_requests: int, world_pid: int) -> PhaseResult:
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Opens the pool's connections and warms both processes' code paths; not counted.
        await drive(mode, session, concurrency, min(WARMUP_S, seconds), 10 * concurrency)
        cpu_before, started = CpuSample.take(world_pid), time.perf_counter()
        tally = await drive(mode, session, concurrency, seconds, max_requests)
        wall = time.perf_counter() - started
        client_cpu, world_cpu, other_cpu = CpuSample.take(world_pid).percent_since(cpu_before, wall)
    latencies = sorted(tally.latencies_ms)
    return PhaseResult(
        mode=mode.name,
        concurrency=concurrency,
        completed=tally.completed,
        errors=tally.errors.total(),
        error_kinds=dict(tally.errors.most_common()),
        seconds=round(wall, 3),
        throughput=round(len(latencies) / wall, 1),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        client_cpu_percent=client_cpu,
        world_cpu_percent=world_cpu,
        other_cpu_percent=other_cpu,
    )


def percentile(ordered: list[float], rank: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty), in ms rounded to 0.01."""
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(len(ordered) * rank / 100) - 1)], 2)


async def run_all(
    modes: list[Mode], levels: list[int], seconds: float, max_requests: int, world_pid: int
) -> list[PhaseResult]:
    results = []
    for concurrency in levels:
        for mode in modes:
            results.append(await measure(mode, concurrency, seconds, max_requests, world_pid))
            print(f"  {mode.name:<8} c={concurrency:<3} done", file=sys.stderr, flush=True)
    return results


# --- report ----------------------------------------------------------------------------------------


def comparisons(results: list[PhaseResult]) -> list[dict[str, Any]]:
    """Per concurrency: brokered/direct throughput and the latency the hub adds at p50 and p99."""
    by_key = {(result.mode, result.concurrency): result for result in results}
    rows = []
    for concurrency in sorted({result.concurrency for result in results}):
        direct, brokered = by_key[("direct", concurrency)], by_key[("brokered", concurrency)]
        rows.append(
            {
                "concurrency": concurrency,
                "throughput_ratio": round(brokered.throughput / direct.throughput, 3) if direct.throughput else None,
                "added_p50_ms": difference(brokered.p50_ms, direct.p50_ms),
                "added_p99_ms": difference(brokered.p99_ms, direct.p99_ms),
            }
        )
    return rows


def difference(brokered: float | None, direct: float | None) -> float | None:
    return None if brokered is None or direct is None else round(brokered - direct, 2)


def table(results: list[PhaseResult], compared: list[dict[str, Any]]) -> str:
    lines = [
        f"{'mode':<9} {'conc':>4} {'completed':>9} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'cpu: client':>11} {'world':>6} {'other':>6}"
    ]
    for r in results:
        lines.append(
            f"{r.mode:<9} {r.concurrency:>4} {r.completed:>9} {r.errors:>6} {r.throughput:>8.1f} "
            f"{number(r.p50_ms):>8} {number(r.p95_ms):>8} {number(r.p99_ms):>8} "
            f"{share(r.client_cpu_percent):>11} {share(r.world_cpu_percent):>6} {share(r.other_cpu_percent):>6}"
        )
    lines.append("")
    for row in compared:
        ratio = "-" if row["throughput_ratio"] is None else f"{row['throughput_ratio']:.3f}"
        lines.append(
            f"concurrency {row['concurrency']}: brokered/direct throughput {ratio}; the hub adds "
            f"{number(row['added_p50_ms'])} ms at p50, {number(row['added_p99_ms'])} ms at p99"
        )
    for r in results:
        if r.error_kinds:
            kinds = ", ".join(f"{kind}: {count}" for kind, count in r.error_kinds.items())
            lines.append(f"errors, {r.mode} c={r.concurrency}: {kinds}")
    return "\n".join(lines)


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def share(cpu_percent: float | None) -> str:
    return "-" if cpu_percent is None else f"{cpu_percent:.0f}%"


# --- command line ----------------------------------------------------------------------------------


def concurrency_levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError("a comma-separated list of integers, e.g. 1,16") from error
    if not levels or any(level < 1 or level > 256 for level in levels):
        raise argparse.ArgumentTypeError("each concurrency level must be between 1 and 256")
    return levels


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase (default 5)")
    parser.add_argument(
        "--concurrency",
        type=concurrency_levels,
        default=[1, 16],
        help="comma-separated concurrency levels (default 1,16)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=20_000,
        help="request budget of each phase, whichever comes first with --seconds (default 20000)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "results.json",
        help="where the JSON results go (default bench/results.json)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 600 or args.max_requests < 1:
        parser.error("--seconds must be in (0, 600] and --max-requests at least 1")
    return args


def run(args: argparse.Namespace) -> tuple[list[PhaseResult], dict[str, int]]:
    """Start a fresh world, measure every phase, stop the world; the results and the world's log warnings."""
    with tempfile.TemporaryDirectory(prefix="crossroads-bench-") as scratch:
        state_dir = Path(scratch)
        world = start_world(state_dir)
        try:
            wait_ready(world, state_dir)
            modes = load_modes(state_dir)
            print(f"demo world ready (pid {world.pid}); measuring {args.seconds:g} s per phase", file=sys.stderr)
            results = asyncio.run(run_all(modes, args.concurrency, args.seconds, args.max_requests, world.pid))
        finally:
            stop_world(world)
        return results, log_warnings(state_dir / "hub.log")


def revision() -> dict[str, Any] | None:
    """The commit measured and how many tracked files differed from it: the numbers belong to that tree."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        # --no-optional-locks: read-only, never takes the index lock others may be holding.
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


def write_report(
    args: argparse.Namespace,
    load_before: list[float],
    results: list[PhaseResult],
    compared: list[dict[str, Any]],
    warnings: dict[str, int],
) -> None:
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", *sys.argv]),
        "revision": revision(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": sys.platform,
            # Other work on the machine skews every number: the load average before the run shows it.
            "load_average_before": load_before,
        },
        "settings": {
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "max_requests": args.max_requests,
            "warmup_s": WARMUP_S,
            "request_timeout_s": REQUEST_TIMEOUT_S,
        },
        "caveat": CAVEAT,
        "results": [asdict(result) for result in results],
        "comparison": compared,
        "world_log_warnings": warnings,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    load_before = [round(load, 2) for load in os.getloadavg()]
    results, warnings = run(args)
    compared = comparisons(results)
    print(table(results, compared))
    if warnings:
        print("world log warnings/errors: " + ", ".join(f"{event}: {n}" for event, n in warnings.items()))
    print(f"\nnote: {CAVEAT}")
    write_report(args, load_before, results, compared, warnings)
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
