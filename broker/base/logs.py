"""structlog set-up: one JSON event per line, with ids, outcomes, latencies and digests, never payloads."""

from __future__ import annotations

import io
import logging
import sys
from typing import TextIO

import structlog


class StandardError(io.StringIO):
    """Whatever `sys.stderr` is when a line is logged: a command's log lines stay off standard output, which
    carries its answer (JSON, CSV or a table)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(stream: TextIO, level: int = logging.INFO) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
