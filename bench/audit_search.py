"""Benchmark: the audit log at a million records, and what group commit buys.

1. Search: builds a SQLite store of `--records` audit records (default 1,000,000) through the real
   migrations, filled with bulk inserts (indexes created after the load, as a restore would), linked into
   the hash chain with the hub's own code and sealed by a signed checkpoint. Then it times representative
   privacy-officer searches through `AuditLog.search` (the code behind `GET /v1/audit`), a citizen's
   access log, an anomaly report over a week, and a full chain verification.
2. Writes: commits records through `AuditLog` from `--writers` concurrent writers, once with group commit
   (the hub's settings) and once with one transaction per record (batches of one), on a fresh store each,
   and reports records per second.

The table is printed; the JSON (date, command, machine, settings, figures) goes to `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from broker.audit import chain, verify_spans
from broker.audit.anomalies import Thresholds, detect
from broker.audit.log import CHAINED, COLUMNS, AuditEntry, AuditLog, AuditRecord
from broker.audit.queries import AuditQuery, Cursor
from broker.base.signing import SigningKey, generate_key
from broker.base.store import Lane, create_engine
from broker.schema.migrations import upgrade

REPO = Path(__file__).resolve().parent.parent
END = datetime(2026, 11, 23, tzinfo=UTC)
DAYS = 90  # the records span this many days before END
REQUESTERS = [f"agency-{index:02d}" for index in range(40)]
HOLDERS = [f"holder-{index:02d}" for index in range(15)]
CATEGORIES = ["civil-status", "income", "employment-status", "health-record", "child-benefit", "pension"]
PURPOSES = ["benefit-eligibility", "job-placement", "change-notification", "fraud-investigation"]
SUBJECTS = 200_000
INSERT_BATCH = 50_000


def weighted(rng: random.Random, choices: list[tuple[Any, float]]) -> Any:
    return rng.choices([value for value, _ in choices], [weight for _, weight in choices])[0]


def synthetic(count: int, seed: int = 5) -> list[dict[str, Any]]:
    """`count` records in export form, in seq and time order: a few busy agencies, many subjects, mostly
    white deliveries, some refusals and reviews, rare failures and emergencies."""
    rng = random.Random(seed)
    step = timedelta(days=DAYS) / count
    start = END - timedelta(days=DAYS)
    busy = [(requester, 1 / (rank + 1)) for rank, requester in enumerate(REQUESTERS)]
    records = []
    for seq in range(1, count + 1):
        kind = weighted(rng, [("exchange", 0.9), ("consent", 0.05), ("review", 0.03), ("policy", 0.02)])
        zone = weighted(rng, [("white", 0.85), ("grey", 0.1), ("black", 0.05)])
        outcome = (
            "refused"
            if zone == "black"
            else weighted(rng, [("delivered", 0.83), ("refused", 0.12), ("pending", 0.03), ("failed", 0.02)])
        )
        records.append(
            {
                **dict.fromkeys(COLUMNS),
                "seq": seq,
                "at": chain.timestamp(start + step * seq),
                "kind": kind,
                "exchange": f"{seq:08x}-0000-4000-8000-000000000000",
                "requester": weighted(rng, busy),
                "key_id": "key-2026",
                "subject": f"{rng.randrange(SUBJECTS):011d}",
                "category": rng.choice(CATEGORIES),
                "purpose": weighted(
                    rng, [(PURPOSES[0], 0.7), (PURPOSES[1], 0.15), (PURPOSES[2], 0.13), (PURPOSES[3], 0.02)]
                ),
                "holder": rng.choice(HOLDERS),
                "zone": zone,
                "outcome": outcome,
                "status": {"delivered": 200, "refused": 403, "pending": 202, "failed": 502}[outcome],
                "rule_id": f"r-{rng.randrange(30)}",
                "policy_version": 7,
                "emergency": rng.random() < 0.0005,
                "latency_ms": round(rng.uniform(5, 60), 3),
                "request_digest": "sha-256:" + "ab" * 32,
                "response_digest": "sha-256:" + "cd" * 32,
            }
        )
    return records


def sqlite_row(record: dict[str, Any]) -> tuple[Any, ...]:
    """A record as SQLAlchemy stores it in SQLite: naive UTC times with microseconds, JSON text, 0/1."""

    def cell(name: str, value: Any) -> Any:
        if name == "at":
            return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S.%f")
        if name == "fields":
            return None if value is None else json.dumps(value)
        return int(value) if isinstance(value, bool) else value

    return tuple(cell(name, record[name]) for name in COLUMNS)


async def build(path: Path, count: int, key: SigningKey) -> dict[str, float]:
    """A migrated SQLite store holding `count` linked records and a checkpoint; seconds per stage."""
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    records = synthetic(count)
    timings["generate_s"] = time.perf_counter() - started
    started = time.perf_counter()
    records = link(records)
    timings["link_s"] = time.perf_counter() - started
    started = time.perf_counter()
    load(path, records)
    timings["load_s"] = time.perf_counter() - started
    checkpoint = chain.sign_checkpoint(key, chain.Head(count, records[-1]["hash"]), END)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            "INSERT INTO audit_checkpoints (size, head, at, key_id, public_key_pem, signature) VALUES (?,?,?,?,?,?)",
            (
                checkpoint.size,
                checkpoint.head,
                checkpoint.at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f"),
                checkpoint.key_id,
                checkpoint.public_key_pem,
                checkpoint.signature,
            ),
        )
    connection.close()
    return timings


def link(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records linked as the sequencer links them (chain fields set in place)."""
    for record, item in zip(records, chain.link(chain.EMPTY, records), strict=True):
        record.update(position=item.position, prev_hash=item.prev_hash, hash=item.hash)
    return records


def load(path: Path, records: list[dict[str, Any]]) -> None:
    """Bulk insert without the secondary indexes, then create them, in one transaction."""
    indexes = [index for index in AuditRecord.__table__.indexes if index.name]
    connection = sqlite3.connect(path)
    with connection:
        for index in indexes:
            connection.execute(f"DROP INDEX {index.name}")
        placeholders = ",".join("?" * len(COLUMNS))
        statement = f"INSERT INTO audit_records ({','.join(COLUMNS)}) VALUES ({placeholders})"  # noqa: S608 -- our columns
        for start in range(0, len(records), INSERT_BATCH):
            connection.executemany(statement, [sqlite_row(record) for record in records[start : start + INSERT_BATCH]])
        for index in indexes:
            unique = "UNIQUE " if index.unique else ""
            columns = ", ".join(column.name for column in index.columns)
            connection.execute(f"CREATE {unique}INDEX {index.name} ON audit_records ({columns})")
    connection.execute("ANALYZE")
    connection.close()


async def timed(run: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    """The median wall time of `repeat` runs in ms (after one untimed run), and the last result."""
    result = await run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = await run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


async def searches(path: Path, repeat: int, key: SigningKey) -> list[dict[str, Any]]:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    log = AuditLog(async_sessionmaker(engine, expire_on_commit=False), Lane(engine))
    try:
        day = END - timedelta(days=1)
        sample = (await log.search(AuditQuery({"requester": REQUESTERS[3]}, since=day, limit=1)))[0][0]
        subject = sample["subject"]
        deep = await _cursor_after_pages(log, AuditQuery({"requester": REQUESTERS[0]}, limit=100), pages=50)
        cases: list[tuple[str, AuditQuery]] = [
            ("subject", AuditQuery({"subject": subject})),
            ("subject + category", AuditQuery({"subject": subject, "category": sample["category"]})),
            ("busiest requester, first page", AuditQuery({"requester": REQUESTERS[0]})),
            ("busiest requester, newest first", AuditQuery({"requester": REQUESTERS[0]}, newest_first=True)),
            ("busiest requester, page 51 by cursor", AuditQuery({"requester": REQUESTERS[0]}, after=deep)),
            ("requester, one day", AuditQuery({"requester": REQUESTERS[10]}, since=day, until=END)),
            ("requester + purpose (rare)", AuditQuery({"requester": REQUESTERS[5], "purpose": PURPOSES[3]})),
            ("holder + outcome refused", AuditQuery({"holder": HOLDERS[2], "outcome": "refused"})),
            ("purpose fraud-investigation", AuditQuery({"purpose": PURPOSES[3]})),
            ("zone grey, one week", AuditQuery({"zone": "grey"}, since=END - timedelta(days=7), until=END)),
            ("outcome failed, newest first", AuditQuery({"outcome": "failed"}, newest_first=True)),
            ("time range only, one hour", AuditQuery(since=day, until=day + timedelta(hours=1))),
            (
                "citizen access log",
                AuditQuery({"subject": subject, "kind": "exchange", "outcome": "delivered"}, newest_first=True),
            ),
        ]
        results = []
        for name, query in cases:
            ms, (records, _) = await timed(lambda query=query: log.search(query), repeat)
            results.append({"search": name, "ms": round(ms, 2), "records": len(records)})
        week = (END - timedelta(days=7), END)
        ms, lookups = await timed(lambda: log.lookups(*week, 10_000_000), repeat=1)
        started = time.perf_counter()
        findings = await asyncio.to_thread(detect, lookups or [], *week, Thresholds())
        detect_ms = (time.perf_counter() - started) * 1000
        results.append(
            {"search": "anomaly report, one week", "ms": round(ms + detect_ms, 2), "records": len(lookups or [])}
        )
        results.append({"search": f"  (of which {len(findings)} findings detected)", "ms": round(detect_ms, 2)})

        async def read_only() -> int:
            return sum([len(records) async for records in log.linked(names=CHAINED)])

        for name, run in (
            ("read the chain (the floor)", read_only),
            ("verify the whole chain, one process", lambda: log.verify([key.public_key])),
            (f"verify on every core ({os.cpu_count()})", lambda: verify_spans.verify(log, [key.public_key])),
        ):
            started = time.perf_counter()
            outcome = await run()
            seconds = time.perf_counter() - started
            records = outcome if isinstance(outcome, int) else outcome.records
            ok = {} if isinstance(outcome, int) else {"ok": outcome.ok}
            rate = round(records / seconds)
            results.append({"search": name, "ms": round(seconds * 1000, 2), "records": records, "per_s": rate, **ok})
        return results
    finally:
        await engine.dispose()


async def _cursor_after_pages(log: AuditLog, query: AuditQuery, pages: int) -> Cursor | None:
    after = None
    for _ in range(pages):
        _, after = await log.search(AuditQuery(query.filters, limit=query.limit, after=after))
    return after


async def writes(directory: Path, count: int, writers: int, batch_max: int, wait_s: float) -> dict[str, Any]:
    """`count` records committed by `writers` concurrent writers, each waiting for its own commit."""
    path = directory / f"writes-{batch_max}-{wait_s}-{writers}.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    log = AuditLog(async_sessionmaker(engine, expire_on_commit=False), Lane(engine), batch_max, wait_s)
    per_writer = count // writers

    async def writer(number: int) -> None:
        for index in range(per_writer):
            await log.commit(
                AuditEntry(
                    at=datetime.now(UTC),
                    kind="exchange",
                    requester=REQUESTERS[number % len(REQUESTERS)],
                    subject=f"{index:011d}",
                    outcome="delivered",
                    status=200,
                )
            )

    try:
        async with log.writing():
            started = time.perf_counter()
            await asyncio.gather(*(writer(number) for number in range(writers)))
            elapsed = time.perf_counter() - started
        written = await log.count()
    finally:
        await engine.dispose()
    return {
        "mode": "one commit per record" if batch_max == 1 else f"group commit, wait {wait_s * 1000:g} ms",
        "writers": writers,
        "records": written,
        "transactions": log.batches,
        "records_per_s": round(written / elapsed, 1),
    }


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    modified = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=REPO)
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "system": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "commit": commit.stdout.strip(),
        "modified_files": len(modified.stdout.splitlines()),
    }


async def main(arguments: argparse.Namespace) -> dict[str, Any]:
    key = SigningKey("crossroads-hub", generate_key())
    with tempfile.TemporaryDirectory(prefix="crossroads-audit-bench-") as scratch:
        directory = Path(arguments.dir or scratch)
        directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 -- once, before anything is measured
        store = directory / "audit.db"
        store.unlink(missing_ok=True)
        print(f"building {arguments.records:,} records in {store} ...", file=sys.stderr)
        build_timings = await build(store, arguments.records, key)
        size_mb = store.stat().st_size / 1e6
        print(f"built in {sum(build_timings.values()):.1f} s ({size_mb:.0f} MB); searching ...", file=sys.stderr)
        found = await searches(store, arguments.repeat, key)
        written = []
        for writers in arguments.writers:
            for batch_max, wait_s in ((256, 0.0), (256, 0.002), (1, 0.0)):
                written.append(await writes(directory, arguments.write_records, writers, batch_max, wait_s))
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "machine": machine(),
        "settings": {
            "records": arguments.records,
            "repeat": arguments.repeat,
            "write_records": arguments.write_records,
            "writers": arguments.writers,
        },
        "build": {**{name: round(value, 1) for name, value in build_timings.items()}, "size_mb": round(size_mb)},
        "searches": found,
        "writes": written,
    }


def report(result: dict[str, Any]) -> str:
    lines = [f"{'search over ' + format(result['settings']['records'], ',') + ' records':<44} {'ms':>9} {'found':>8}"]
    for row in result["searches"]:
        rate = f" {row['per_s']:>9,}/s" if "per_s" in row else ""
        lines.append(f"{row['search']:<44} {row['ms']:>9.2f} {row.get('records', ''):>8}{rate}")
    lines += ["", f"{'writes':<28} {'writers':>7} {'records':>8} {'commits':>8} {'records/s':>10}"]
    for row in result["writes"]:
        lines.append(
            f"{row['mode']:<28} {row['writers']:>7} {row['records']:>8} {row['transactions']:>8} "
            f"{row['records_per_s']:>10.1f}"
        )
    build = result["build"]
    lines.append(
        f"\nbuild: generate {build['generate_s']} s, link {build['link_s']} s, load and index {build['load_s']} s, "
        f"{build['size_mb']} MB"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records in the searched store")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per search (the median is reported)")
    parser.add_argument("--write-records", type=int, default=8192, help="records committed per write run")
    parser.add_argument("--writers", type=lambda text: [int(part) for part in text.split(",")], default=[1, 16, 64])
    parser.add_argument("--dir", help="keep the stores here instead of a temporary directory")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "audit_results.json")
    options = parser.parse_args()
    outcome = asyncio.run(main(options))
    print(report(outcome))
    options.out.write_text(json.dumps(outcome, indent=2) + "\n")
