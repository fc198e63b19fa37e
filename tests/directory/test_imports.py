"""Bulk imports of references: reading a file's lines, applying them a batch at a time, naming every line
rejected, changing nothing when a file comes again, and taking an import up where it stood after its process
stopped. On the demo world's store, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.cli.demo import DemoWorld
from directory.imports import MAX_LINE, Importer, ImportJob, read_batch
from directory.references import Declaration

NEWCOMERS = [f"9901011{index:04d}" for index in range(12)]
FROM = "2026-12-01T00:00:00Z"


def relationship(subject: str, capacity: str = "taxpayer", **more: object) -> str:
    return json.dumps({"kind": "relationship", "subject": subject, "capacity": capacity, "from": FROM, **more})


def holding(subject: str, category: str = "income") -> str:
    return json.dumps({"kind": "holding", "subject": subject, "category": category, "from": FROM})


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_a_batch_names_each_line_it_reads(tmp_path: Path) -> None:
    lines = [
        relationship(NEWCOMERS[0]),
        "",
        "not json",
        holding(NEWCOMERS[1]),
        json.dumps({"kind": "holding", "subject": NEWCOMERS[2], "category": "income"}),  # no from
        json.dumps({"kind": "relationship", "subject": "x" * 2 * MAX_LINE, "capacity": "taxpayer", "from": FROM}),
        relationship(NEWCOMERS[3], until="2026-11-01T00:00:00Z"),  # ends before it starts
        relationship(NEWCOMERS[4]),
    ]
    path = write(tmp_path / "refs.ndjson", lines)
    batch = read_batch(path, 0, 1, 100, "tax-authority")
    assert batch.end == path.stat().st_size and batch.lines == 8
    assert [line for line, _ in batch.declarations] == [1, 4, 8]
    assert batch.declarations[0][1] == Declaration(
        "relationship", "tax-authority", NEWCOMERS[0], "taxpayer", datetime(2026, 12, 1, tzinfo=UTC)
    )
    assert [line for line, _ in batch.rejected] == [3, 5, 6, 7]
    reasons = dict(batch.rejected)
    assert "JSON" in reasons[3] and "from" in reasons[5] and str(MAX_LINE) in reasons[6] and "until" in reasons[7]


def test_batches_go_on_where_the_last_one_ended(tmp_path: Path) -> None:
    path = write(tmp_path / "refs.ndjson", [relationship(subject) for subject in NEWCOMERS])
    first = read_batch(path, 0, 1, 5, "tax-authority")
    second = read_batch(path, first.end, 6, 5, "tax-authority")
    assert [line for line, _ in first.declarations] == [1, 2, 3, 4, 5]
    assert [line for line, _ in second.declarations] == [6, 7, 8, 9, 10]
    assert second.declarations[0][1].subject == NEWCOMERS[5]


async def _imported(world: DemoWorld, path: Path, agency: str = "tax-authority") -> ImportJob:
    importer = world.hub.imports
    size = (await asyncio.to_thread(path.stat)).st_size
    job = await importer.imports.create(agency, "test", "sha-256:-", size, path)
    done = await importer.run(job.id)
    assert done is not None
    return done


async def test_an_import_applies_the_good_lines_and_names_the_bad(world: DemoWorld, tmp_path: Path) -> None:
    lines = [relationship(subject) for subject in NEWCOMERS[:4]]
    lines += [holding(NEWCOMERS[0]), relationship(NEWCOMERS[5], capacity="shoe-seller"), holding(NEWCOMERS[1], "x-ray")]
    job = await _imported(world, write(tmp_path / "refs.ndjson", lines))
    assert (job.status, job.lines, job.applied, job.rejected) == ("done", 7, 5, 2)
    rejected = await world.hub.imports.imports.rejections(job.id, 0, 10)
    assert [line for line, _ in rejected] == [6, 7]
    assert "shoe-seller" in rejected[0][1] and "x-ray" in rejected[1][1]
    now = datetime.now(UTC)
    assert await world.hub.directory.relationship("tax-authority", NEWCOMERS[3], now) == "taxpayer"
    assert [agency.id for agency in await world.hub.directory.holders(NEWCOMERS[0], "income", now)] == ["tax-authority"]


async def test_the_same_file_again_changes_nothing(world: DemoWorld, tmp_path: Path) -> None:
    path = write(tmp_path / "refs.ndjson", [relationship(subject) for subject in NEWCOMERS[:3]])
    await _imported(world, path)
    before = await world.hub.directory.relationships_of(NEWCOMERS[0], datetime.now(UTC), None)
    again = await _imported(world, path)
    assert (again.applied, again.rejected) == (3, 0)
    after = await world.hub.directory.relationships_of(NEWCOMERS[0], datetime.now(UTC), None)
    assert after == before


async def test_an_import_of_another_agencys_references_is_rejected_line_by_line(
    world: DemoWorld, tmp_path: Path
) -> None:
    job = await _imported(world, write(tmp_path / "refs.ndjson", [relationship(NEWCOMERS[0])]), agency="ghost")
    assert (job.applied, job.rejected) == (0, 1)


async def test_an_interrupted_import_is_taken_up_where_it_stood(world: DemoWorld, tmp_path: Path) -> None:
    """The process applying an import stops after its first batch; the next one to start finishes it, and the
    counts and rejected lines come out as if nothing had happened."""
    spool = world.hub.imports.spool_dir
    await asyncio.to_thread(spool.mkdir, parents=True, exist_ok=True)
    lines = [relationship(subject) for subject in NEWCOMERS] + ["not json"]
    path = write(spool / "upload-interrupted.ndjson", lines)
    store = world.hub.imports.imports
    job = await store.create("tax-authority", "test", "sha-256:-", (await asyncio.to_thread(path.stat)).st_size, path)
    first = Importer(store, world.hub.directory, spool, batch=5)
    first_batch = asyncio.Event()
    running = asyncio.create_task(first.run(job.id, lambda _job: first_batch.set()))
    await first_batch.wait()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    stopped = await store.get(job.id)
    assert stopped is not None and stopped.status == "interrupted" and 0 < stopped.lines < len(lines)

    finished = asyncio.Event()

    async def done(_job: ImportJob) -> None:
        finished.set()

    second = Importer(store, world.hub.directory, spool, batch=5, lease=timedelta(seconds=60), finished=done)
    await second.resume()
    await finished.wait()
    job_now = await store.get(job.id)
    assert job_now is not None
    assert (job_now.status, job_now.lines, job_now.applied, job_now.rejected) == ("done", 13, 12, 1)
    assert [line for line, _ in await store.rejections(job.id, 0, 10)] == [13]
    assert not path.exists()  # the hub's own copy goes once applied


async def test_an_import_applied_apart_stops_with_its_importer_and_is_taken_up_by_the_next(
    world: DemoWorld, tmp_path: Path
) -> None:
    """The hub applies an import in a process of its own: stopping the hub stops that process at its last committed
    batch (`interrupted`, exactly what it applied); the next hub takes it up and finishes it."""
    spool = world.hub.imports.spool_dir
    await asyncio.to_thread(spool.mkdir, parents=True, exist_ok=True)
    subjects = [f"9902{index:07d}" for index in range(4000)]
    path = write(spool / "upload-apart.ndjson", [relationship(subject) for subject in subjects])
    store, url = world.hub.imports.imports, world.hub.config.database
    job = await store.create("tax-authority", "test", "sha-256:-", (await asyncio.to_thread(path.stat)).st_size, path)
    first = Importer(store, world.hub.directory, spool, batch=5, apart=url)
    first.start(job)
    for _ in itertools.count():  # until the process's first batch is committed
        if (now := await store.get(job.id)) is not None and now.lines > 0:
            break
        await asyncio.sleep(0.01)
    await first.close()
    stopped = await store.get(job.id)
    assert stopped is not None and stopped.status == "interrupted" and 0 < stopped.lines < len(subjects)
    assert stopped.applied == stopped.lines  # exactly what it applied: every line read was committed

    finished: asyncio.Future[ImportJob] = asyncio.get_running_loop().create_future()

    async def done(job: ImportJob) -> None:
        finished.set_result(job)

    second = Importer(store, world.hub.directory, spool, batch=500, finished=done, apart=url)
    await second.resume()
    ended = await finished
    assert (ended.status, ended.lines, ended.applied, ended.rejected) == ("done", 4000, 4000, 0)
    now_at = datetime.now(UTC)
    assert await world.hub.directory.relationship("tax-authority", subjects[-1], now_at) == "taxpayer"
    assert not path.exists()
