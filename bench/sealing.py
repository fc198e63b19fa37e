"""Benchmark: what a sealed answer costs the holder, the hub and the requester, against a plain one, in one run.

1. In process, per answer (the median of --repeats runs of --iterations calls each), beside what each side does for
   every answer either way (its HTTP signature): the holder's answer (JSON, or `seal`: fields kept, HPKE, the JWS
   signed), the hub's handling of it (parse, `minimise`, reply; or parse, `read_envelope`, `verify_envelope`,
   `check_envelope`, the ciphertext's digest, the holder's key for the reply: nothing decrypted) and the requester's
   (parse; or parse, the holder's key loaded, `open_sealed`: JWS verified, HPKE opened, JSON parsed).
2. End to end, as bench/brokering.py runs it: the benchmark world (bench/world.py, the 10 role rules, white under
   consent) on SQLite, the holders' adapters in one process (bench/holders.py), the hub as `crossroads serve` in
   its own; the requester given a sealing key, an administrator a signing key. --exchanges pre-signed exchanges of
   one question at --concurrency, plain, then the category sealed (`PATCH /v1/categories/{name}`), in --rounds
   rounds ordered plain-sealed, sealed-plain, ...: exchanges a second, p50, and the CPU per exchange of the hub and
   the holders' process (from /proc), each as a ratio sealed/plain. A sample of each phase's answers is verified
   (the hub's signature) and opened (sealed) or read (plain); a failure counts as an error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from brokering import (
    HUB_SETTINGS,
    Process,
    Signer,
    drive,
    free_port,
    machine_cpu_seconds,
    percentile,
    process_cpu_seconds,
    revision,
    start_hubs,
    verify_answers,
    wait_printed,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from world import HOLDERS, HUB_KEY_ID, Layout, build, layout, make_keys, publish_rules, seed_world

from adapters.client import HubClient
from adapters.sealing import Recipient, open_sealed, seal, sealing_public_pem
from broker.base import eventloop
from broker.base.envelopes import EnvelopeInvalid, check_envelope, read_envelope, verify_envelope
from broker.base.signing import (
    Request,
    Response,
    SigningKey,
    generate_key,
    load_public_key,
    public_key_pem,
    sign_response,
    verify_response,
)
from broker.cli.world import load_world
from broker.config import Config
from broker.hub import open_hub
from policies.rules import minimise

ADMIN = "bench-admin"
PHASE_LIMIT_S = 300.0
JSON = {"Content-Type": "application/json"}


def dumps(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def per_call_us(work: Callable[[], object], iterations: int, repeats: int) -> float:
    """The median over `repeats` runs of `iterations` calls of `work`, in µs a call."""
    return round(statistics.median(timeit.repeat(work, number=iterations, repeat=repeats)) / iterations * 1e6, 2)


def in_process(iterations: int, repeats: int) -> dict[str, dict[str, float]]:
    """Each side's plain and sealed work on one answer, and its HTTP signature (made or checked either way)."""
    holder, hub = SigningKey("bench-holder-0-1", generate_key()), SigningKey(HUB_KEY_ID, generate_key())
    sealing = X25519PrivateKey.generate()
    recipient, keys = Recipient("bench-req-00-seal", sealing.public_key()), {"bench-req-00-seal": sealing}
    exchange, url = "0b7f3c1e-5d2a-4f6b-9c8d-1e2f3a4b5c6d", "http://127.0.0.1:9/v1/records"
    record = {"subject": "90000000001", "category": "bench-cat-0", "status": "known", "since": "2020-01-01"}
    asked = Request("POST", url, {"Content-Digest": "sha-256=:" + "A" * 43 + "=:"})
    envelope = seal(record, None, exchange, recipient, holder)
    held = {"plain": dumps({"data": record}), "sealed": dumps({"sealed": envelope})}
    signed = sign_response(200, JSON, held["sealed"], holder, asked)

    audited: dict[str, str] = {}

    def hub_plain() -> bytes:
        data = minimise(json.loads(held["plain"])["data"], None)
        return dumps({"exchange": exchange, "zone": "white", "holder": "bench-holder-0", "data": data})

    def hub_sealed() -> bytes:
        sealed = json.loads(held["sealed"])["sealed"]
        read = read_envelope(sealed)
        verify_envelope(read, holder.public_key)
        check_envelope(read, exchange, None, recipient.key_id)
        audited["sealed_digest"] = "sha-256:" + hashlib.sha256(read.ct).hexdigest()  # the audit record's
        key = {"key_id": holder.key_id, "public_key_pem": public_key_pem(holder.public_key)}
        return dumps(
            {"exchange": exchange, "zone": "white", "holder": "bench-holder-0", "sealed": sealed, "holder_key": key}
        )

    replies = {"plain": hub_plain(), "sealed": hub_sealed()}
    hub_signed = sign_response(200, JSON, replies["sealed"], hub, asked)

    def requester_sealed() -> dict[str, Any]:
        answer = json.loads(replies["sealed"])
        key = load_public_key(answer["holder_key"]["public_key_pem"])
        return open_sealed(answer["sealed"], answer["exchange"], key, keys)[1]

    work = {  # side: its plain answer, its sealed answer, and its HTTP signature (made or checked either way)
        "holder": (
            lambda: dumps({"data": record}),
            lambda: dumps({"sealed": seal(record, None, exchange, recipient, holder)}),
            lambda: sign_response(200, JSON, held["sealed"], holder, asked),
        ),
        "hub": (
            hub_plain,
            hub_sealed,
            lambda: verify_response(Response(200, signed, asked), held["sealed"], holder.key_id, holder.public_key),
        ),
        "requester": (
            lambda: json.loads(replies["plain"])["data"],
            requester_sealed,
            lambda: verify_response(Response(200, hub_signed, asked), replies["sealed"], hub.key_id, hub.public_key),
        ),
    }
    results = {}
    for side, calls in work.items():
        plain, sealed, signature = (per_call_us(call, iterations, repeats) for call in calls)
        results[side] = {"plain_us": plain, "sealed_us": sealed, "signature_us": signature}
        results[side]["added_us"] = round(sealed - plain, 2)
    return results


# --- end to end ------------------------------------------------------------------------------------------


async def register(url: str, world: Layout, requester: str, sealing: X25519PrivateKey, admin: SigningKey) -> None:
    """The requester's sealing key and an administrator, through the hub's own services (as world.py's world)."""
    config = Config(state_dir=Path(world.state_dir), database_url=url, hub_key_path=Path(world.hub_key_path))
    agency = next(entry for entry in seed_world(world)["agencies"] if entry["id"] == requester)
    key = {"key_id": f"{requester}-seal", "public_key_pem": sealing_public_pem(sealing), "use": "seal"}
    agency = {name: agency[name] for name in ("id", "name", "adapter_url")} | {"keys": [key]}
    signing = {"key_id": admin.key_id, "public_key_pem": public_key_pem(admin.public_key)}
    operator = {"id": ADMIN, "name": ADMIN, "role": "admin", "keys": [signing]}
    async with open_hub(config) as hub:
        await load_world(hub, {"agencies": [agency], "operators": [operator]}, actor="bench", reason="sealing bench")


async def set_sealed(hub_url: str, admin: SigningKey, signer: Signer, category: str, sealed: bool) -> None:
    async with aiohttp.ClientSession() as session:
        client = HubClient(hub_url, admin, HUB_KEY_ID, signer.hub.public_key, session)
        await client.call("PATCH", f"/v1/categories/{category}", {"sealed": sealed, "reason": "sealing benchmark"})


def phase(
    mode: str, hub: Process, url: str, adapters: Process, signer: Signer, args: argparse.Namespace
) -> dict[str, Any]:
    question, keys = signer.world.exchanges[0], {f"{signer.world.exchanges[0].requester}-seal": args.sealing}
    eventloop.run(drive(signer.brokered(0, [url], [question] * args.warmup), args.concurrency, PHASE_LIMIT_S, set()))
    requests = signer.brokered(0, [url], [question] * args.exchanges)
    keep = set(range(0, len(requests), max(1, len(requests) // args.verify)))

    def sample() -> tuple[float, ...]:
        hub_s, holders_s = process_cpu_seconds(hub.pid), process_cpu_seconds(adapters.pid)
        return hub_s, holders_s, time.process_time(), machine_cpu_seconds(), time.perf_counter()

    before = sample()
    tally = eventloop.run(drive(requests, args.concurrency, PHASE_LIMIT_S, keep))
    hub_s, holders_s, client_s, machine_s, wall = (end - start for end, start in zip(sample(), before, strict=True))
    verify_answers(tally)
    for _, _, _, body in tally.answers:
        answer = json.loads(body)
        try:
            if mode == "sealed":
                key = load_public_key(answer["holder_key"]["public_key_pem"])
                open_sealed(answer["sealed"], answer["exchange"], key, keys)
            elif not isinstance(answer.get("data"), dict):
                raise EnvelopeInvalid("no data")
        except (EnvelopeInvalid, KeyError) as error:
            tally.errors[f"200 not {mode}: {error}"] += 1
    done = len(tally.latencies_ms)
    return {
        "mode": mode,
        "done": done,
        "errors": dict(tally.errors),
        "exchanges_per_s": round(done / wall, 1),
        "p50_ms": percentile(sorted(tally.latencies_ms), 50),
        "hub_us": round(hub_s / done * 1e6, 1),
        "holders_us": round(holders_s / done * 1e6, 1),
        "other_percent": round(100 * max(0.0, machine_s - hub_s - holders_s - client_s) / wall, 1),  # others' work
    }


def end_to_end(args: argparse.Namespace) -> list[dict[str, Any]]:
    phases: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="crossroads-sealing-") as scratch:
        state = Path(scratch)
        make_keys(state)
        world = layout(state, {holder: free_port() for holder in HOLDERS}, args.rows, 100)
        (state / "layout.json").write_text(json.dumps(world.as_json()))
        question, admin = world.exchanges[0], SigningKey(f"{ADMIN}-1", generate_key())
        adapters = Process(
            "adapters", [sys.executable, "bench/holders.py", str(state / "layout.json")], state / "adapters.log"
        )
        try:
            wait_printed(adapters, b"ready")
            database_url = f"sqlite+aiosqlite:///{state / 'bench.db'}"
            eventloop.run(build(database_url, world, args.rows))
            eventloop.run(publish_rules(database_url, world, 10))
            eventloop.run(register(database_url, world, question.requester, args.sealing, admin))
            ((hub, url),) = start_hubs(1, database_url, world, state, "sealing", HUB_SETTINGS)
            try:
                signer, sealed = Signer(world), False
                for number in range(args.rounds):
                    for mode in ("plain", "sealed") if number % 2 == 0 else ("sealed", "plain"):
                        if (mode == "sealed") != sealed:
                            sealed = mode == "sealed"
                            eventloop.run(set_sealed(url, admin, signer, question.category, sealed))
                        phases.append({"round": number + 1} | phase(mode, hub, url, adapters, signer, args))
                        print(json.dumps(phases[-1]), file=sys.stderr, flush=True)
            finally:
                hub.stop()
        finally:
            adapters.stop()
    return phases


# --- report ----------------------------------------------------------------------------------------------


def report(micro: dict[str, dict[str, float]], phases: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"in process, us an answer (median of {args.repeats} runs of {args.iterations:,}):"]
    lines.append("side         plain  sealed   added x plain signature added/sig")
    for side, figures in micro.items():
        plain, sealed, added, signature = (
            figures[name] for name in ("plain_us", "sealed_us", "added_us", "signature_us")
        )
        lines.append(
            f"{side:<10} {plain:7.1f} {sealed:7.1f} {added:7.1f} {sealed / plain:7.1f} {signature:9.1f}"
            f" {added / signature:9.2f}"
        )
    lines.append(
        f"\nend to end, {args.exchanges:,} exchanges a phase at c={args.concurrency}, SQLite, one hub process:"
    )
    lines.append("mode    round  done err    ex/s  p50 ms hub us/ex holders us/ex other %")
    for row in phases:
        errors = sum(row["errors"].values())
        lines.append(
            f"{row['mode']:<7} {row['round']:>5} {row['done']:>5} {errors:>3} {row['exchanges_per_s']:7.1f}"
            f" {row['p50_ms']:7.2f} {row['hub_us']:9.0f} {row['holders_us']:13.0f} {row['other_percent']:7.1f}"
        )
    plains, sealeds = ([row for row in phases if row["mode"] == mode] for mode in ("plain", "sealed"))
    for figure in ("exchanges_per_s", "p50_ms", "hub_us", "holders_us"):
        ratios = [after[figure] / before[figure] for before, after in zip(plains, sealeds, strict=True)]
        spread = [row[figure] for row in plains]
        each = ", ".join(f"{ratio:.3f}" for ratio in ratios)
        lines.append(
            f"sealed/plain {figure:<16} {statistics.median(ratios):.3f} (rounds {each};"
            f" plain phases {min(spread):g} to {max(spread):g})"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations, 300 exchanges a phase, one round")
    parser.add_argument("--iterations", type=int, help="calls per in-process run (default 5,000; --quick 500)")
    parser.add_argument("--repeats", type=int, default=5, help="in-process runs, the median kept (5)")
    parser.add_argument("--exchanges", type=int, help="exchanges a phase (default 3,000; --quick 300)")
    parser.add_argument("--rounds", type=int, help="rounds of a plain and a sealed phase (default 3; --quick 1)")
    parser.add_argument("--concurrency", type=int, default=16, help="exchanges at once (16)")
    parser.add_argument("--warmup", type=int, default=300, help="exchanges before each phase, not counted (300)")
    parser.add_argument("--rows", type=int, default=10_000, help="directory rows (10,000)")
    parser.add_argument("--verify", type=int, default=100, help="answers a phase verified and opened (100)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    args.iterations = args.iterations or (500 if args.quick else 5_000)
    args.exchanges = args.exchanges or (300 if args.quick else 3_000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.sealing = X25519PrivateKey.generate()
    load_before = [round(load, 2) for load in os.getloadavg()]
    micro = in_process(args.iterations, args.repeats)
    phases = end_to_end(args)
    print(report(micro, phases, args))
    machine = {"load_average_before": load_before, "load_average_after": [round(load, 2) for load in os.getloadavg()]}
    print(f"load average {load_before} before, {machine['load_average_after']} after; revision {revision()}")
    if args.out:
        settings = {name: value for name, value in vars(args).items() if name not in {"sealing", "out"}}
        document: dict[str, Any] = {"settings": settings, "revision": revision(), "machine": machine}
        document |= {"in_process": micro, "end_to_end": phases}
        args.out.write_text(json.dumps(document, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
