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
    hub fails closed). A request whose nonce is found claimed before as its record is written (where the handler
    claims it with its first write: broker/http/middleware.py) is answered as the replay it is, and so recorded.
    A cancelled action (the requester went away) is still recorded, as abandoned."""
    started = time.perf_counter()
    try:
        answer = await action()
    except asyncio.CancelledError:
        entry.status, entry.outcome, entry.reason = 499, "abandoned", "requester-gone"
        entry.latency_ms = _since(started)
        try:
            await asyncio.shield(_abandoned(audit, entry))
        except StoreUnavailable:
            log.error("audit.unwritable", kind=entry.kind, exchange=entry.exchange, requester=entry.requester)
        log.info(f"{entry.kind}.abandoned", exchange=entry.exchange, requester=entry.requester, reason=entry.reason)
        raise
    except Exception as error:
        answer = _refused(entry, error, shown)
    try:
        return await _committed(audit, entry, answer, shown, settle, started)
    except StoreUnavailable:
        log.error("audit.unwritable", kind=entry.kind, exchange=entry.exchange, requester=entry.requester)
        return shown(errors.Unavailable("the audit log cannot be written: nothing is answered until it can"))


async def _abandoned(audit: AuditLog, entry: AuditEntry) -> None:
    try:
        await audit.commit(entry)
    except errors.Replay:  # the nonce is no longer to be claimed: this commit is the last
        entry.reason = errors.Replay.name
        await audit.commit(entry)


def _refused(entry: AuditEntry, error: Exception, shown: Callable[[errors.Problem], Answer]) -> Answer:
    problem = problems.problem_for(error, kind=entry.kind, exchange=entry.exchange)
    entry.reason = problem.name if isinstance(error, errors.Replay) else entry.reason or problem.name
    return shown(problem)


async def _committed(
    audit: AuditLog,
    entry: AuditEntry,
    answer: Answer,
    shown: Callable[[errors.Problem], Answer],
    settle: Callable[[AuditEntry, Answer], None],
    started: float,
) -> Answer:
    """The answer whose record is committed: `answer`, or the replay the request turns out to be as its nonce is
    claimed with the record (then nothing else was written)."""
    settle(entry, answer)
    entry.latency_ms = _since(started)
    try:
        await audit.commit(entry)
    except errors.Replay as replay:  # the nonce is no longer to be claimed: this commit is the last
        return await _committed(audit, entry, _refused(entry, replay, shown), shown, settle, started)
    return answer


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
