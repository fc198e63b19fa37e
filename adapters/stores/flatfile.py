"""The flat-file store: answers a category from an export file (CSV) that the agency's own system writes.
The file is read in a worker thread and read again whenever its modification time or size changes; if a
new version cannot be read, the last good one keeps answering. A chunk of a batch (`fetch_many`) is answered
from one version of the file, a dictionary look-up a request.
"""

from __future__ import annotations

import asyncio
import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from adapters.mapping import Field, MappingError, project
from adapters.server import RecordRequest, UnknownSubject
from adapters.validation import InvalidParams

log = structlog.get_logger("crossroads.adapter.csv")

Version = tuple[int, int]  # (mtime_ns, size)


@dataclass(frozen=True)
class Snapshot:
    version: Version
    rows: dict[str, list[dict[str, str]]]  # key column value → rows


class CsvStore:
    def __init__(
        self,
        path: Path,
        key: str,
        fields: Sequence[Field],
        *,
        filters: dict[str, str] | None = None,
        delimiter: str = ",",
        encoding: str = "utf-8-sig",
    ) -> None:
        self.path = path
        self._key = key
        self._fields = tuple(fields)
        self._filters = dict(filters or {})
        self._delimiter = delimiter
        self._encoding = encoding
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    @property
    def version(self) -> Version | None:
        return None if self._snapshot is None else self._snapshot.version

    async def open(self) -> None:
        self._snapshot = await asyncio.to_thread(self._read)
        log.info("csv.loaded", path=self.path.name, subjects=len(self._snapshot.rows))

    async def close(self) -> None:
        self._snapshot = None

    async def fetch(self, request: RecordRequest) -> dict[str, Any]:
        return self._record(await self._current(), request)

    async def fetch_many(self, requests: Sequence[RecordRequest]) -> list[dict[str, Any] | Exception]:
        """Each request's record, or the exception `fetch` would raise for it."""
        snapshot = await self._current()
        outcomes: list[dict[str, Any] | Exception] = []
        for request in requests:
            try:
                outcomes.append(self._record(snapshot, request))
            except (UnknownSubject, InvalidParams) as error:
                outcomes.append(error)
        return outcomes

    def _record(self, snapshot: Snapshot, request: RecordRequest) -> dict[str, Any]:
        rows = [
            row
            for row in snapshot.rows.get(request.subject, [])
            if all(
                row.get(name) == str(request.params[param])
                for param, name in self._filters.items()
                if param in request.params
            )
        ]
        if not rows:
            raise UnknownSubject(request.subject)
        if len(rows) > 1:
            names = ", ".join(sorted(self._filters)) or "none configured"
            raise InvalidParams(f"several records of this subject match; narrow the question with params ({names})")
        return project(rows[0], self._fields)

    async def _current(self) -> Snapshot:
        """The file's latest readable version: read again when its modification time or size changed."""
        if self._snapshot is None:
            raise RuntimeError("the store is not open")
        try:
            version = await asyncio.to_thread(_version, self.path)
        except OSError as error:
            log.warning("csv.unreadable", path=self.path.name, error=type(error).__name__)
            return self._snapshot
        if version == self._snapshot.version:
            return self._snapshot
        async with self._lock:
            if version != self._snapshot.version:
                try:
                    self._snapshot = await asyncio.to_thread(self._read)
                    log.info("csv.reloaded", path=self.path.name, subjects=len(self._snapshot.rows))
                except (OSError, ValueError, csv.Error) as error:
                    log.warning("csv.reload_failed", path=self.path.name, error=type(error).__name__)
        return self._snapshot

    def _read(self) -> Snapshot:
        with self.path.open(newline="", encoding=self._encoding) as file:
            stat = os.fstat(file.fileno())
            reader = csv.DictReader(file, delimiter=self._delimiter)
            needed = {self._key, *(field.source for field in self._fields), *self._filters.values()}
            absent = sorted(needed - set(reader.fieldnames or []))
            if absent:
                raise MappingError(f"{self.path.name} lacks the columns {', '.join(absent)}")
            rows: dict[str, list[dict[str, str]]] = {}
            for row in reader:
                rows.setdefault(row[self._key].strip(), []).append(row)
        return Snapshot((stat.st_mtime_ns, stat.st_size), rows)


def _version(path: Path) -> Version:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
