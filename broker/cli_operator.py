"""`crossroads operator`: operators' console passwords."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from broker.audit import AuditEntry
from broker.cli_options import hub_key_option, store_options
from broker.config import Config
from broker.console.accounts import CONSOLE_ROLES, hash_password, password_problem
from broker.hub import open_hub


@click.group()
def operator() -> None:
    """Operators: the privacy officers, administrators and tools that run the hub."""


@operator.command("password")
@click.argument("operator_id")
@store_options
@hub_key_option
def password(operator_id: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Set OPERATOR_ID's console password, typed twice at a prompt or, when standard input is not a terminal,
    read from its first line. The operator's open console sessions are closed."""
    if sys.stdin.isatty():
        secret = click.prompt("New console password", hide_input=True, confirmation_prompt=True)
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    problem = password_problem(secret)
    if problem is not None:
        raise click.ClickException(problem)

    async def run() -> None:
        config = Config(state_dir=state_dir, database_url=database_url, hub_key_path=hub_key)
        async with open_hub(config) as hub:
            found = await hub.directory.operator(operator_id)
            if found is None:
                raise click.ClickException(f"no operator {operator_id!r}")
            if found.role not in CONSOLE_ROLES:
                raise click.ClickException(
                    f"{operator_id} is a {found.role}: only {' and '.join(CONSOLE_ROLES)} operators use the console"
                )
            at = datetime.now(UTC)
            await hub.console.set_password(operator_id, await asyncio.to_thread(hash_password, secret), at)
            # The console's records name the operator as requester; `cli` says the change came from here.
            entry = AuditEntry(at=at, kind="console", requester=operator_id, key_id="cli", reason="password-set")
            entry.status, entry.outcome = 200, "recorded"
            await hub.audit.commit(entry)

    asyncio.run(run())
    click.echo(f"console password set for {operator_id}; its console sessions are closed")
