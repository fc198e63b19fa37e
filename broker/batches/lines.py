"""A batch's file, read a window of lines at a time, and what a line's answer says: pure functions, no I/O but the
file's own reading (run off the event loop)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from broker.base import errors
from broker.base.wire import bounded_line

MAX_LINE = 16 * 1024  # bytes of one request line; a longer line is answered with its problem, alone
MAX_REF = 200  # characters of a line's `ref`
LINE_IDS = uuid.UUID("0f4d7a0e-8a53-4c1f-b4a5-7c3e9b1d2f60")  # the namespace of a line's exchange id


@dataclass(frozen=True)
class Line:
    """One request line of a batch: its number in the file, the bytes sent (their digest goes to its record), its
    `ref`, and the request it asks, or the problem that stops it before any decision."""

    number: int
    raw: bytes
    ref: str | int | None
    document: dict[str, Any] | None
    problem: errors.Problem | None


@dataclass(frozen=True)
class Window:
    """The request lines read from a byte offset to `end` (blank lines are skipped: they ask nothing)."""

    end: int
    lines: list[Line]
    last: int  # the number of the last line read, blank or not


def exchange_id(batch: str, line: int) -> str:
    """A line's exchange id: the same whenever the line is decided, so a restart finds its record."""
    return str(uuid.uuid5(LINE_IDS, f"{batch}:{line}"))


def read_window(path: Path, start: int, after: int, most: int) -> Window:
    """Up to `most` request lines of the file from byte offset `start`, whose line before is number `after`."""
    lines: list[Line] = []
    number = after
    with path.open("rb") as file:
        file.seek(start)
        while len(lines) < most:
            raw, too_long = bounded_line(file, MAX_LINE)
            if not raw:
                break
            number += 1
            if too_long:
                problem = errors.TooLarge(f"the line is longer than {MAX_LINE} bytes")
                lines.append(Line(number, raw, None, None, problem))
            elif raw.strip():
                lines.append(parse_line(number, raw))
        end = file.tell()
    return Window(end, lines, number)


def parse_line(number: int, raw: bytes) -> Line:
    """The request on one line, with its ref; or the problem that line is answered with."""
    try:
        document = orjson.loads(raw)
    except ValueError:  # orjson's JSONDecodeError, invalid UTF-8 included
        return Line(number, raw, None, None, errors.Malformed("the line is not JSON"))
    if not isinstance(document, dict):
        return Line(number, raw, None, None, errors.Invalid("the line must be a JSON object"))
    ref = document.pop("ref", None)
    if not ((isinstance(ref, str) and 0 < len(ref) <= MAX_REF) or type(ref) is int):
        problem = errors.Invalid(f"each line needs its ref: a string of 1 to {MAX_REF} characters, or an integer")
        return Line(number, raw, None, None, problem)
    return Line(number, raw, ref, document, None)


def count_lines(path: Path) -> int:
    """The request lines of a batch's file (lines not blank)."""
    count = 0
    with path.open("rb") as file:
        for raw in file:
            count += bool(raw.strip())
    return count


def result(line: Line, exchange: str | None, status: int, answer: dict[str, Any]) -> bytes:
    """A line's answer as its requester reads it: `{"line", "ref", "exchange", "status", ...}` and the answer's own
    fields (`data`, a grey zone's `review`, or `problem`), one NDJSON line."""
    document = {"line": line.number, "ref": line.ref, "exchange": exchange, "status": status, **answer}
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"
