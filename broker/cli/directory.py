"""`crossroads directory`: bulk imports of an agency's references from an NDJSON file, with a progress bar, and
how an import stands. An import here is the same as one sent to `POST /v1/directory/imports`: applied a batch at
a time, every bad line named with its reason, a file applied twice changing nothing."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from broker.audit.log import AuditEntry
from broker.base import errors
from broker.cli.acting import change, on_hub
from broker.cli.options import hub_key_option, store_options
from broker.hub import Hub
from directory.imports import ImportJob

SHOWN = 20  # rejected lines printed after an import; `directory status` lists them all


def _options(command: Any) -> Any:
    return store_options(hub_key_option(command))


@click.group()
def directory() -> None:
    """The reference directory: which agency holds what about whom, and whom it has as a client."""


@directory.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--agency", required=True, help="The agency whose references the file declares.")
@_options
def import_file(path: Path, agency: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Apply PATH, one reference a line ({"kind": "relationship" | "holding", ...}), as AGENCY's declarations."""
    path = path.resolve()

    async def work(hub: Hub, entry: AuditEntry) -> tuple[ImportJob, list[tuple[int, str]]]:
        entry.holder = agency
        if await hub.directory.agency(agency) is None:
            raise errors.NotFound(f"no agency {agency!r}")
        size, digest = await asyncio.to_thread(_size_and_digest, path)
        job = await hub.imports.imports.create(agency, str(entry.requester), digest, size, path)
        entry.exchange, bar.total = job.id, size
        done = await hub.imports.run(job.id, lambda now: bar.update(now.position - bar.n))
        if done is None:
            raise errors.Conflict(f"import {job.id} is being applied by another process")
        return done, await hub.imports.imports.rejections(done.id, 0, SHOWN)

    # Made before the event loop runs: tqdm sets up its lock (and imports multiprocessing) on its first bar.
    with tqdm(unit="B", unit_scale=True, desc=path.name) as bar:
        job, rejected = change((state_dir, database_url, hub_key), "directory", work, 200, "recorded")
    _show(job, rejected)


@directory.command("status")
@click.argument("import_id")
@_options
def status(import_id: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """How the import IMPORT_ID stands, and every line it rejected."""

    async def read(hub: Hub) -> tuple[ImportJob, list[tuple[int, str]]]:
        job = await hub.imports.imports.get(import_id)
        if job is None:
            raise errors.NotFound(f"no import {import_id!r}")
        return job, await hub.imports.imports.rejections(job.id, 0, job.rejected)

    _show(*on_hub((state_dir, database_url, hub_key), read))


def _show(job: ImportJob, rejected: list[tuple[int, str]]) -> None:
    click.echo(f"import {job.id} {job.status}: {job.lines} lines, {job.applied} applied, {job.rejected} rejected")
    for line, detail in rejected:
        click.echo(f"  line {line}: {detail}")
    if job.rejected > len(rejected):
        click.echo(f"  ... and {job.rejected - len(rejected)} more: crossroads directory status {job.id}")


def _size_and_digest(path: Path) -> tuple[int, str]:
    sha256, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            sha256.update(chunk)
            size += len(chunk)
    return size, "sha-256:" + sha256.hexdigest()
