"""How a command acts on the hub's store: it opens the hub for the one call (`on_hub`), and makes a change as an
audited call (broker/audit/call.py) by the operator at the keyboard, `cli:<user>`, like the same change through
the API (`change`). A refusal is one line on standard error saying nothing changed. A command edits the rules
under the hub's four eyes as the serving hubs declared them in the store (or CROSSROADS_POLICY_APPROVALS, where
stricter)."""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click

from broker.audit.call import audited
from broker.audit.log import AuditEntry, outcome_for
from broker.base import errors
from broker.config import ENV_NAMES, ConfigError, load_config
from broker.hub import Hub, open_hub

T = TypeVar("T")
Store = tuple[Path, str, Path | None]  # the state directory, the database URL, the hub key
Work = Callable[[Hub, AuditEntry], Awaitable[T]]


def actor() -> str:
    return f"cli:{getpass.getuser()}"[:63]


def on_hub(store: Store, work: Callable[[Hub], Awaitable[T]]) -> T:
    """What `work` returns, run on the hub opened on `store`; a problem it raises is a one-line error."""
    state_dir, database_url, hub_key = store
    approvals = ENV_NAMES["policy_approvals"]
    try:
        config, _ = load_config(
            {"state_dir": state_dir, "database_url": database_url, "hub_key_path": hub_key},
            {approvals: os.environ[approvals]} if approvals in os.environ else {},
            None,
        )
    except ConfigError as error:
        raise click.ClickException(str(error)) from error

    async def run() -> T:
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
            if isinstance(answer, errors.Problem):
                entry.status, entry.outcome = answer.status, outcome_for(answer.status)
            elif entry.status:  # `work` said how it ended, e.g. 202: held for another administrator's approval
                entry.outcome = outcome_for(entry.status)
            else:
                entry.status, entry.outcome = status, outcome or outcome_for(status)

        answer = await audited(hub.audit, entry, call, lambda problem: problem, settle)
        if isinstance(answer, errors.Problem):
            raise click.ClickException(f"{answer.detail}; nothing changed")
        return answer

    return on_hub(store, act)
