"""Verifying the audit chain on every core. A record's hash covers its content and the previous record's hash,
which it carries, so a chain cut into spans is verified span by span in processes of their own, each reading its
span from the store; the spans hold together where each begins from the hash the one before ends with.

This proves a whole chain and nothing else: a break anywhere, a seam that does not hold, or anything the end
checks find (a checkpoint beyond the last record, a newest checkpoint signed by an untrusted key) is handed to
the sequential verification (AuditLog.verify), which names the first break and why.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import async_sessionmaker

from broker.audit.chain import EMPTY, ChainVerifier, Checkpoint, Head, Verdict, signers
from broker.audit.log import CHAINED, AuditLog
from broker.base.store import Lane, create_engine

SPAN = 50_000  # records a process verifies at a time
WORTH_IT = 4 * SPAN  # below this, one process is done before others have started


@dataclass(frozen=True)
class SpanVerdict:
    first: int  # the span's first position
    starts_from: str  # the previous hash its first record carries
    head: Head  # where its records end, verified
    checkpoint: Checkpoint | None  # the newest checkpoint inside the span, verified against it
    whole: bool  # every record there, in order, matching its hash and the checkpoints inside the span


def spans(size: int, span: int) -> list[tuple[int, int]]:
    """The chain's positions 1..size cut into (first, last) spans of `span` records."""
    return [(first, min(first + span - 1, size)) for first in range(1, size + 1, span)]


def joined(
    verdicts: Sequence[SpanVerdict], checkpoints: Sequence[Checkpoint], trusted: Collection[Ed25519PublicKey]
) -> Verdict | None:
    """The whole chain's verdict from its spans' (in order), or None where they do not prove it whole."""
    head = EMPTY
    for verdict in verdicts:
        if not verdict.whole or verdict.first != head.size + 1 or verdict.starts_from != head.hash:
            return None
        head = verdict.head
    newest = max((verdict.checkpoint for verdict in verdicts if verdict.checkpoint), key=lambda c: c.size, default=None)
    if any(checkpoint.size > head.size for checkpoint in checkpoints):
        return None  # truncated: the sequential verification says so
    if newest is not None and not newest.signed_by(trusted):
        return None
    return Verdict(head.size, head.hash, newest, None)


async def verify(
    log: AuditLog,
    trusted: Collection[Ed25519PublicKey] | None,
    progress: Callable[[int], object] | None = None,
    workers: int | None = None,
) -> Verdict:
    """AuditLog.verify's verdict, reached on every core (one process a core) when the chain is long enough."""
    workers = workers or os.cpu_count() or 1
    size = (await log.head()).size
    checkpoints = await log.checkpoints()
    keys = signers(checkpoints) if trusted is None else trusted
    if workers > 1 and size >= WORTH_IT:
        loop = asyncio.get_running_loop()

        def report(records: int) -> None:
            if progress is not None:
                loop.call_soon_threadsafe(progress, records)

        documents = [checkpoint.as_json() for checkpoint in checkpoints]
        verdicts = await asyncio.to_thread(_on_every_core, log.store, spans(size, SPAN), documents, workers, report)
        whole = joined(verdicts, checkpoints, keys)
        if whole is not None:
            return whole
    return await log.verify(trusted, progress)


def _on_every_core(
    url: str,
    cuts: list[tuple[int, int]],
    checkpoints: list[dict[str, object]],
    workers: int,
    report: Callable[[int], None],
) -> list[SpanVerdict]:
    """Every span's verdict, in order, from `workers` processes (started afresh: no fork of a process that runs
    threads and an event loop)."""
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = [pool.submit(verify_span, url, first, last, checkpoints) for first, last in cuts]
        for done in as_completed(pending):
            verdict = done.result()
            report(verdict.head.size - verdict.first + 1)
        return [span.result() for span in pending]


def verify_span(url: str, first: int, last: int, checkpoints: list[dict[str, object]]) -> SpanVerdict:
    """Verify positions first..last of the store at `url` (in a process of its own)."""
    return asyncio.run(_verify_span(url, first, last, [Checkpoint.from_json(document) for document in checkpoints]))


async def _verify_span(url: str, first: int, last: int, checkpoints: list[Checkpoint]) -> SpanVerdict:
    inside = [checkpoint for checkpoint in checkpoints if first <= checkpoint.size <= last]
    engine = create_engine(url)
    try:
        log = AuditLog(async_sessionmaker(engine), Lane(engine))
        verifier: ChainVerifier | None = None
        starts_from = ""
        async for records in log.linked(after=first - 1, until=last, names=CHAINED):
            if verifier is None:
                starts_from = records[0]["prev_hash"]
                verifier = ChainVerifier(inside, signers(inside), start=Head(first - 1, starts_from))
            verifier.feed(records)
    finally:
        await engine.dispose()
    if verifier is None:
        return SpanVerdict(first, starts_from, Head(first - 1, starts_from), None, whole=False)
    verdict = verifier.finish()
    whole = verdict.ok and verdict.records == last
    return SpanVerdict(first, starts_from, Head(verdict.records, verdict.head), verdict.checkpoint, whole)
