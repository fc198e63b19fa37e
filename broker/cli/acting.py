"""How a command acts on the hub's store: it opens the hub for the one call (`on_hub`), and makes a change as an
audited call (broker/audit/call.py) by the operator at the keyboard, `cli:<user>`, like the same change through
the API (`change`). A refusal is one line on standard error saying nothing changed."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click

from broker.audit.call import audited
from broker.audit.log import AuditEntry, outcome_for
from broker.base import errors
from broker.config import Config
from broker.hub import Hub, open_hub

T = TypeVar("T")
Store = tuple[Path, str, Path | None]  # the state directory, the database URL, the hub key
Work = Callable[[Hub, AuditEntry], Awaitable[T]]


def actor() -> str:
    return f"cli:{getpass.getuser()}"[:63]


def on_hub(store: Store, work: Callable[[Hub], Awaitable[T]]) -> T:
    """What `work` returns, run on the hub opened on `store`; a problem it raises is a one-line error."""
    state_dir, database_url, hub_key = store

    async def run() -> T:
        config = Config(state_dir=state_dir, database_url=database_url, hub_key_path=hub_key)
        async with open_hub(config, serving=False) as hub:
            return await work(hub)

    try:
        return asyncio.run(run())
    except errors.Problem as problem:
        raise click.ClickException(problem.detail) from problem


def change(store: Store, kind: str, work: Work[T], status: int, outcome: str | None = None, **record: object) -> T:
    """What `work` returns, as an audited call of `kind`: `work` fills in the record it is given (the subject, the
    ids it learns) and acts at its time and as its requester; `status` and `outcome` (by default the status's)
    are recorded when it succeeds. `record` presets other fields, e.g. `requester` for an operator's own."""

    async def act(hub: Hub) -> T:
        entry = AuditEntry(at=datetime.now(UTC), kind=kind, **{"requester": actor(), **record})  # type: ignore[arg-type]

        async def call() -> T | errors.Problem:
            return await work(hub, entry)

        def settle(entry: AuditEntry, answer: T | errors.Problem) -> None:
            refused = isinstance(answer, errors.Problem)
            entry.status = answer.status if isinstance(answer, errors.Problem) else status
            entry.outcome = outcome_for(entry.status) if refused or outcome is None else outcome

        answer = await audited(hub.audit, entry, call, lambda problem: problem, settle)
        if isinstance(answer, errors.Problem):
            raise click.ClickException(f"{answer.detail}; nothing changed")
        return answer

    return on_hub(store, act)
