"""`crossroads operator`: operators' console passwords and sign-in locks."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from broker.accounts.credentials import CONSOLE_ROLES, hash_password, password_problem
from broker.audit.log import AuditEntry
from broker.base import errors
from broker.cli.acting import change
from broker.cli.options import hub_key_option, store_options
from broker.hub import Hub
from directory.names import NAME


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

    async def work(hub: Hub, entry: AuditEntry) -> None:
        found = await hub.directory.operator(operator_id)
        if found is None:
            raise errors.NotFound(f"no operator {operator_id!r}")
        if found.role not in CONSOLE_ROLES:
            raise errors.Invalid(
                f"{operator_id} is a {found.role}: only {' and '.join(CONSOLE_ROLES)} operators use the console"
            )
        await hub.console.set_password(operator_id, await asyncio.to_thread(hash_password, secret), entry.at)
        entry.reason = "password-set"

    # The console's records name the operator as requester; the key id `cli` says the change came from here.
    change((state_dir, database_url, hub_key), "console", work, 200, "recorded", requester=operator_id, key_id="cli")
    click.echo(f"console password set for {operator_id}; its console sessions are closed")


@operator.command("unlock")
@click.argument("operator_id")
@click.option(
    "--address",
    default=None,
    help="Lift only the lock on sign-ins from this address (an IPv6 one as its /64, as the console's sign-in "
    "locks page shows it); by default from every address.",
)
@store_options
@hub_key_option
def unlock(operator_id: str, address: str | None, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Lift the console sign-in locks of OPERATOR_ID: its failed sign-ins are forgotten, from ADDRESS or from
    every address. Recorded with the operator id as the record's holder."""

    async def work(hub: Hub, entry: AuditEntry) -> int:
        if not NAME.fullmatch(operator_id):
            raise errors.Invalid("an operator id is made of [a-z0-9-]")
        entry.holder, entry.reason = operator_id, "sign-in-unlock"
        return await hub.console.unlock(operator_id, address)

    forgotten = change((state_dir, database_url, hub_key), "console", work, 200, "recorded", key_id="cli")
    where = f"from {address}" if address else "from every address"
    plural = "" if forgotten == 1 else "s"
    click.echo(f"{forgotten} failed sign-in{plural} of {operator_id} {where} forgotten: it may sign in {where}")
