"""`crossroads audit`: search the audit log with the API's filters (itself an audited call, as the API's search
is), write a person's subject access report (audited too), verify the chain (in the store with the hub's public
keys it records, or offline in an export with only the hub's public key: never the private key), export it to JSON
Lines or CSV, and report anomalies; long runs show a progress bar.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import async_sessionmaker
from tqdm import tqdm

from broker.audit import verify_spans
from broker.audit.anomalies import Thresholds, detect
from broker.audit.chain import ChainVerifier, Verdict, timestamp
from broker.audit.export import ExportUnreadable, ExportWriter, count_records, format_of, read_checkpoints, read_records
from broker.audit.log import AuditEntry, AuditLog
from broker.audit.queries import FILTERS, Cursor, parse_query, rfc3339
from broker.base import errors
from broker.base.signing import load_public_key
from broker.base.store import Lane, create_engine
from broker.cli.acting import change
from broker.cli.options import hub_key_option, store_options
from broker.config import Config
from broker.hub import Hub
from broker.reports.gather import gather
from broker.reports.render import FORMATS, render
from broker.reports.report import period
from broker.schema.migrations import require_current_schema
from directory.names import SUBJECT

MAX_LOOKUPS = 10_000_000


@asynccontextmanager
async def _audit_log(state_dir: Path, database_url: str) -> AsyncIterator[AuditLog]:
    engine = create_engine(Config(state_dir=state_dir, database_url=database_url).database)
    try:
        await require_current_schema(engine)
        yield AuditLog(async_sessionmaker(engine, expire_on_commit=False), Lane(engine))
    finally:
        await engine.dispose()


def _progress(total: int, what: str) -> tqdm[Any]:
    return tqdm(total=total, unit=" records", desc=what, disable=None, leave=False)


@click.group()
def audit() -> None:
    """The audit log: search it, verify its chain, export it, report anomalies."""


def _filters(command: Any) -> Any:
    for name in reversed(FILTERS):
        command = click.option(f"--{name}", help=f"Only records whose {name} is this.")(command)
    return command


# What the table shows of each record: who, about whom, what, why, the outcome, and on what ground.
TABLE = ("at", "requester", "subject", "category", "purpose", "outcome", "rule", "ground")


@audit.command()
@store_options
@hub_key_option
@_filters
@click.option("--since", help="RFC 3339: records at or after this time, e.g. 2025-01-01T00:00:00Z.")
@click.option("--until", help="RFC 3339: records before this time.")
@click.option("--order", type=click.Choice(["asc", "desc"]), default=None, help="Oldest (default) or newest first.")
@click.option("--limit", help="Records at most, 1 to 1000 (default 100).")
@click.option("--cursor", help="Go on after the last record of a previous search (it prints the cursor).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def search(state_dir: Path, database_url: str, hub_key: Path | None, fmt: str, **parameters: str | None) -> None:
    """Search the log with GET /v1/audit's filters: who asked for what about whom, when, why (purpose), with what
    outcome, and on what ground (the deciding rule's legal basis as it stood). The search is itself recorded."""
    try:
        query = parse_query({name: value for name, value in parameters.items() if value is not None})
    except errors.Invalid as error:
        raise click.BadParameter(error.detail) from error

    async def work(hub: Hub, entry: AuditEntry) -> tuple[list[dict[str, Any]], Cursor | None]:
        subject = query.filters.get("subject")
        entry.subject = subject if subject is not None and SUBJECT.fullmatch(subject) else None
        return await hub.audit.search(query)

    records, after = change((state_dir, database_url, hub_key), "audit", work, 200, "delivered")
    cursor = None if after is None else after.encode()
    if fmt == "json":
        click.echo(json.dumps({"records": records, "next": cursor}, indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo("no record matches")
        return
    rows = [[_cell(record, column) for column in TABLE] for record in records]
    widths = [max(len(column), *(len(row[index]) for row in rows)) for index, column in enumerate(TABLE)]
    for row in [list(TABLE), *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if cursor is not None:
        click.echo(f"more records match: --cursor {cursor}")


@audit.command()
@store_options
@hub_key_option
@click.argument("subject")
@click.option(
    "--since", required=True, help="RFC 3339 (2025-01-01T00:00:00Z), or a duration before now: 365d, 12w, 24h."
)
@click.option("--until", help="RFC 3339 or a duration before now; the period ends before it (default: now).")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="html", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here (default: stdout).")
def report(
    state_dir: Path,
    database_url: str,
    hub_key: Path | None,
    subject: str,
    since: str,
    until: str | None,
    fmt: str,
    out: Path | None,
) -> None:
    """Write SUBJECT's subject access report (GDPR art. 15) for the period: every attempt to reach their data (who,
    what, why, on what ground, the outcome, confidential purposes under embargo marked), their consents and
    refusals, reviews about them, and the agencies told their data changed. Never the data. Itself recorded."""
    if not SUBJECT.fullmatch(subject):
        raise click.BadParameter("a national number is 1 to 64 characters of [0-9A-Za-z.-]", param_hint="SUBJECT")
    now = datetime.now(UTC)
    try:
        start, end = period(since, until, now)
    except errors.Invalid as error:
        raise click.BadParameter(error.detail) from error

    async def work(hub: Hub, entry: AuditEntry) -> bytes:
        entry.subject = subject
        gathered = await gather(hub, subject, start, end, entry.requester or "", now)
        drawn = await asyncio.to_thread(render, gathered, fmt)
        entry.reason = "subject-report"
        return drawn

    drawn = change((state_dir, database_url, hub_key), "audit", work, 200, "delivered")
    if out is None:
        click.echo(drawn, nl=False)  # bytes go to the binary stream as they are
        return
    out.write_bytes(drawn)
    click.echo(f"wrote the {fmt} report on {subject} to {out} ({len(drawn)} bytes)")


def _cell(record: dict[str, Any], column: str) -> str:
    if column == "rule":
        return "-" if record["rule_id"] is None else f"{record['rule_id']} v{record['policy_version']}"
    return "-" if record[column] is None else str(record[column])


@audit.command()
@store_options
@click.option(
    "--export",
    "export_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Verify this export (JSON Lines, or CSV with its .checkpoints.csv) offline instead of the store.",
)
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A trusted hub public key (PEM); repeat for several. Online, the hub keys the store records by default.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify(
    state_dir: Path, database_url: str, export_path: Path | None, public_keys: tuple[Path, ...], as_json: bool
) -> None:
    """Recompute the chain and the checkpoint signatures; exit 1 naming the first record where it breaks."""
    trusted = [_public_key(path) for path in public_keys]
    if export_path is not None:
        if not trusted:
            raise click.UsageError("offline verification needs the hub's public key: --public-key FILE")
        verdict = _verify_export(export_path, trusted)
        unlinked = 0
    else:

        async def run() -> tuple[Verdict, int]:
            async with _audit_log(state_dir, database_url) as log:
                with _progress((await log.head()).size, "verifying") as bar:
                    return await verify_spans.verify(log, trusted or None, bar.update), await log.unlinked()

        verdict, unlinked = asyncio.run(run())
    if as_json:
        click.echo(json.dumps(verdict.as_json(), indent=2))
    else:
        click.echo(_describe(verdict, unlinked, pinned=bool(trusted)))
    if not verdict.ok:
        raise SystemExit(1)


def _public_key(path: Path) -> Ed25519PublicKey:
    try:
        return load_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise click.BadParameter(f"{path} is not a readable Ed25519 public key (PEM): {error}") from error


def _verify_export(path: Path, trusted: list[Ed25519PublicKey]) -> Verdict:
    try:
        verifier = ChainVerifier(read_checkpoints(path), trusted)
        with _progress(count_records(path), "verifying") as bar:
            for records in read_records(path):
                verifier.feed(records)
                bar.update(len(records))
        return verifier.finish()
    except (ExportUnreadable, KeyError, TypeError) as error:
        raise click.ClickException(f"{path} is not a readable audit export: {error}") from error


def _describe(verdict: Verdict, unlinked: int, *, pinned: bool) -> str:
    if verdict.broken is not None:
        broken = verdict.broken
        at = f"position {broken.position}" + ("" if broken.seq is None else f" (seq {broken.seq})")
        return f"BROKEN at {at}: {broken.reason}: {broken.detail}\n{verdict.records} records verified before it"
    lines = [f"ok: {verdict.records} records, head {verdict.head}"]
    if verdict.checkpoint is not None:
        checkpoint = verdict.checkpoint
        lines.append(
            f"newest checkpoint: {checkpoint.size} records, signed by {checkpoint.key_id} at {timestamp(checkpoint.at)}"
        )
        if not pinned:
            lines.append("its key is trusted as the store records it: --public-key checks it against your own copy")
    if verdict.unsigned:
        lines.append(f"{verdict.unsigned} records after the newest checkpoint are not yet signed")
    if unlinked:
        lines.append(f"{unlinked} committed records are not linked yet (a running hub links them)")
    return "\n".join(lines)


@audit.command()
@store_options
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None, help="Default: from PATH's suffix.")
def export(state_dir: Path, database_url: str, path: Path, fmt: str | None) -> None:
    """Export every linked record with its chain fields, and every checkpoint, to PATH."""
    chosen = fmt or format_of(path)

    async def run() -> tuple[int, int]:
        async with _audit_log(state_dir, database_url) as log:
            checkpoints = await log.checkpoints()
            size = (await log.head()).size
            header = {"exported_at": timestamp(datetime.now(UTC)), "records": size}
            writer = await asyncio.to_thread(ExportWriter, path, chosen, checkpoints, header)
            written = 0
            try:
                with _progress(size, "exporting") as bar:
                    async for records in log.linked():
                        await asyncio.to_thread(writer.write, records)
                        written += len(records)
                        bar.update(len(records))
            finally:
                await asyncio.to_thread(writer.close)
            return written, await log.unlinked()

    written, unlinked = asyncio.run(run())
    click.echo(f"exported {written} records to {path} ({chosen})")
    if unlinked:
        click.echo(f"{unlinked} committed records are not linked yet and are not in the export")


@audit.command()
@store_options
@click.option("--since", help="RFC 3339 start of the period (default: 7 days before --until).")
@click.option("--until", help="RFC 3339 end of the period (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def anomalies(state_dir: Path, database_url: str, since: str | None, until: str | None, as_json: bool) -> None:
    """Report agencies looking up far more subjects than usual, refusal bursts, repeated look-ups and
    emergency accesses, each with the seqs of the records behind it."""
    try:
        end = rfc3339(until, "until") or datetime.now(UTC)
        start = rfc3339(since, "since") or end - timedelta(days=7)
    except errors.Invalid as error:
        raise click.BadParameter(error.detail) from error

    async def run() -> list[dict[str, Any]] | None:
        async with _audit_log(state_dir, database_url) as log:
            lookups = await log.lookups(start, end, MAX_LOOKUPS)
        if lookups is None:
            return None
        return [finding.as_json() for finding in await asyncio.to_thread(detect, lookups, start, end, Thresholds())]

    findings = asyncio.run(run())
    if findings is None:
        raise click.ClickException(f"more than {MAX_LOOKUPS} exchange attempts in the period: narrow it")
    if as_json:
        click.echo(json.dumps(findings, indent=2))
        return
    click.echo(f"{len(findings)} findings from {timestamp(start)} until {timestamp(end)}")
    for finding in findings:
        click.echo(f"{finding['kind']:<17} {finding['from']}  {finding['detail']}  records {_seqs(finding['records'])}")


def _seqs(seqs: list[int], shown: int = 10) -> str:
    listed = ", ".join(map(str, seqs[:shown]))
    return listed + (f" and {len(seqs) - shown} more" if len(seqs) > shown else "")
