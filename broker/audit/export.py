"""Audit log exports: JSON Lines or CSV files holding every linked record with its chain fields and every
signed checkpoint, so that anyone with the hub's public key can verify the log offline; and reading them
back. CSV cells are safe to open in a spreadsheet (broker/base/csv_cells.py). Blocking file I/O: callers on an
event loop run these in a thread.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from broker.audit.chain import Checkpoint
from broker.audit.log import COLUMNS
from broker.base.csv_cells import neutralised, restored

# Format 2 records carry `ground`, hashed where set (broker/audit/chain.py); a format 1 export reads as format 2 with
# no ground anywhere, and verifies the same.
FORMAT = "crossroads-audit/2"
READABLE = ("crossroads-audit/1", FORMAT)
FORMATS = ("jsonl", "csv")
CHECKPOINT_COLUMNS = ("size", "head", "at", "key_id", "public_key_pem", "signature")
INTEGERS = frozenset({"seq", "status", "policy_version", "position"})
BATCH = 5000


class ExportUnreadable(ValueError):
    """The file is not an audit export this hub writes."""


def format_of(path: Path) -> str:
    """The export format a file name asks for: `.csv` is CSV, anything else JSON Lines."""
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def checkpoints_path(path: Path) -> Path:
    """A CSV export's checkpoints go beside it: audit.csv → audit.checkpoints.csv."""
    return path.with_name(path.stem + ".checkpoints.csv")


class ExportWriter:
    """Writes one export: its checkpoints first, then records in chain order, batch by batch."""

    def __init__(self, path: Path, fmt: str, checkpoints: Sequence[Checkpoint], header: Mapping[str, Any]) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format is one of {', '.join(FORMATS)}")
        self._format = fmt
        self._file: IO[str] = path.open("w", newline="", encoding="utf-8")
        if fmt == "jsonl":
            self._line({"type": "header", "format": FORMAT, **header})
            for checkpoint in checkpoints:
                self._line({"type": "checkpoint", **checkpoint.as_json()})
        else:
            with checkpoints_path(path).open("w", newline="", encoding="utf-8") as sidecar:
                writer = csv.writer(sidecar)
                writer.writerow(CHECKPOINT_COLUMNS)
                for checkpoint in checkpoints:
                    document = checkpoint.as_json()
                    writer.writerow([csv_cell(document[name]) for name in CHECKPOINT_COLUMNS])
            self._csv = csv.writer(self._file)
            self._csv.writerow(COLUMNS)

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        for record in records:
            if self._format == "jsonl":
                self._line({"type": "record", **record})
            else:
                self._csv.writerow([csv_cell(record[name]) for name in COLUMNS])

    def close(self) -> None:
        self._file.close()

    def _line(self, document: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n")


def csv_cell(value: Any) -> str:
    """A value as a CSV cell, for every CSV of audit records the hub writes. Text is neutralised: a key id
    such as `=HYPERLINK(...)` is the caller's choice. Numbers are the hub's own and stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, int | float):
        return repr(value)
    return neutralised(str(value))


def _value(name: str, cell: str) -> Any:
    """A CSV cell back as the record's value; an empty cell is null (the chain hashes "" as null too)."""
    if cell == "":
        return None
    if name in INTEGERS:
        return int(cell)
    if name == "latency_ms":
        return float(cell)
    if name == "emergency":
        return cell == "true"
    if name == "fields":
        return json.loads(cell)
    return restored(cell)


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """The checkpoints of an export (before its records, or beside a CSV)."""
    try:
        if format_of(path) == "csv":
            with checkpoints_path(path).open(newline="", encoding="utf-8") as sidecar:
                rows = csv.DictReader(sidecar)
                return [Checkpoint.from_json({name: restored(text) for name, text in row.items()}) for row in rows]
        checkpoints = []
        with path.open(encoding="utf-8") as lines:
            header = json.loads(next(lines, "{}"))
            if header.get("format") not in READABLE:
                raise ExportUnreadable(f"{path} is not a {' or '.join(READABLE)} export")
            for line in lines:
                document = json.loads(line)
                if document.get("type") != "checkpoint":
                    break
                checkpoints.append(Checkpoint.from_json(document))
        return checkpoints
    except (OSError, ValueError, KeyError) as error:
        raise ExportUnreadable(f"cannot read the checkpoints of {path}: {error}") from error


def read_records(path: Path) -> Iterator[list[dict[str, Any]]]:
    """The records of an export in file order, BATCH at a time."""
    batch: list[dict[str, Any]] = []
    try:
        with path.open(newline="", encoding="utf-8") as file:
            if format_of(path) == "csv":
                rows: Iterator[dict[str, Any]] = (
                    {name: _value(name, cell) for name, cell in row.items()} for row in csv.DictReader(file)
                )
            else:
                rows = (document for document in map(json.loads, file) if document.get("type") == "record")
            for row in rows:
                batch.append(row)
                if len(batch) == BATCH:
                    yield batch
                    batch = []
    except (OSError, ValueError) as error:
        raise ExportUnreadable(f"cannot read the records of {path}: {error}") from error
    if batch:
        yield batch


def count_records(path: Path) -> int:
    """How many records an export holds (for a progress bar's total)."""
    with path.open(newline="", encoding="utf-8") as file:
        lines = sum(1 for _ in file)
    return lines - 1 if format_of(path) == "csv" else lines - 1 - len(read_checkpoints(path))
