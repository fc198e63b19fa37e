"""One audited call, the same for every front end: run an action under its audit record, map what stopped it to
a problem (broker/problems.py), settle the record from the answer, and commit the record before the answer is
given. The API's middleware, the console's gate, the CLI's commands and the notification worker all use it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from broker import problems
from broker.audit.log import AuditEntry, AuditLog
from broker.base import errors
from broker.base.store import StoreUnavailable

log = structlog.get_logger("crossroads.audit")

Answer = TypeVar("Answer")


async def audited(
    audit: AuditLog,
    entry: AuditEntry,
    action: Callable[[], Awaitable[Answer]],
    shown: Callable[[errors.Problem], Answer],
    settle: Callable[[AuditEntry, Answer], None],
) -> Answer:
    """The answer to give: the action's, or the problem that stopped it as `shown`, once `entry` is committed with
    what `settle` read from that answer; a problem `unavailable` instead when the record cannot be committed (the
    hub fails closed). A cancelled action (the requester went away) is still recorded, as abandoned."""
    started = time.perf_counter()
    try:
        answer = await action()
    except asyncio.CancelledError:
        entry.status, entry.outcome, entry.reason = 499, "abandoned", "requester-gone"
        entry.latency_ms = _since(started)
        try:
            await asyncio.shield(audit.commit(entry))
        except StoreUnavailable:
            log.error("audit.unwritable", kind=entry.kind, exchange=entry.exchange, requester=entry.requester)
        log.info(f"{entry.kind}.abandoned", exchange=entry.exchange, requester=entry.requester, reason=entry.reason)
        raise
    except Exception as error:
        problem = problems.problem_for(error, kind=entry.kind, exchange=entry.exchange)
        entry.reason = entry.reason or problem.name
        answer = shown(problem)
    settle(entry, answer)
    entry.latency_ms = _since(started)
    try:
        await audit.commit(entry)
    except StoreUnavailable:
        log.error("audit.unwritable", kind=entry.kind, exchange=entry.exchange, requester=entry.requester)
        return shown(errors.Unavailable("the audit log cannot be written: nothing is answered until it can"))
    return answer


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
