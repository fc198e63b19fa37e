"""The audit sequencer: closes the records left `forwarding` past their lease as abandoned, links committed
audit records into the hash chain and signs checkpoints, at start and in the background of every hub process
(one at a time on a shared PostgreSQL store; see broker/audit/log.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from broker.audit import chain
from broker.audit.log import AuditLog
from broker.base.signing import SigningKey

log = structlog.get_logger("crossroads.audit")


@dataclass(frozen=True)
class SequencerSettings:
    interval_s: float = 0.5  # how often committed records are linked
    batch: int = 1000  # records linked in one transaction
    checkpoint_every: int = 1000  # records between signed checkpoints...
    checkpoint_interval_s: float = 60.0  # ...or seconds, whichever comes first


class Sequencer:
    def __init__(self, audit: AuditLog, key: SigningKey, settings: SequencerSettings) -> None:
        self._audit = audit
        self._key = key
        self._settings = settings
        self._lock = asyncio.Lock()

    async def step(self, *, seal: bool = False) -> chain.Head | None:
        """Link everything committed so far; with `seal`, also sign a checkpoint over it if any record is not
        yet covered. None when another hub process is sequencing."""
        settings = self._settings
        async with self._lock:
            while True:
                done = await self._audit.sequence(
                    self._key,
                    datetime.now(UTC),
                    most=settings.batch,
                    every=settings.checkpoint_every,
                    interval_s=0.0 if seal else settings.checkpoint_interval_s,
                )
                if done is None:
                    return None
                if done.checkpoint is not None:
                    log.info("audit.checkpoint", size=done.checkpoint.size, key_id=done.checkpoint.key_id)
                if done.linked < settings.batch:
                    return done.head

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Link in the background while open: at start (closing what dead processes left `forwarding`, and sealed
        so that a rotated key signs at once) and at the end."""
        await self.step(seal=True)
        task = asyncio.create_task(self._run())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            try:
                await self.step(seal=True)
            except Exception as error:  # the store may be gone at shutdown; the next start links and seals
                log.warning("audit.seal_failed", error=type(error).__name__)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._settings.interval_s)
            try:
                await self.step()
            except Exception as error:  # the store may be briefly unreachable; the next pass tries again
                log.warning("audit.sequence_failed", error=type(error).__name__)
