"""`crossroads notifications`: what waits, fails and is dead-lettered in the outbox per recipient, the dead-letter
list, and replaying it into the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import click

from broker.cli.options import hub_key_option, store_options
from broker.config import Config
from broker.hub import open_hub
from broker.notifications.outbox import Backlog, Delivery


@click.group()
def notifications() -> None:
    """Change notifications waiting, failed or dead-lettered in the outbox."""


@notifications.command("backlog")
@store_options
@hub_key_option
def backlog(state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Per recipient, the deliveries not yet made: waiting for a first attempt, failing, dead-lettered."""

    async def run() -> list[Backlog]:
        config = Config(state_dir=state_dir, database_url=database_url, hub_key_path=hub_key)
        async with open_hub(config, serving=False) as hub:
            return await hub.notifications.outbox.backlog()

    rows = asyncio.run(run())
    if not rows:
        click.echo("nothing waiting, failing or dead: every notification is delivered")
        return
    click.echo(f"{'recipient':<24} {'waiting':>7} {'failing':>7} {'dead':>5}  {'oldest':<16}  next attempt")
    for row in rows:
        due = "-" if row.next_attempt is None else f"{row.next_attempt:%Y-%m-%d %H:%M:%S}"
        click.echo(
            f"{row.recipient:<24} {row.waiting:>7} {row.failing:>7} {row.dead:>5}  {row.oldest:%Y-%m-%d %H:%M}  {due}"
        )


@notifications.command("dead-letters")
@click.option("--replay", "replay_ids", multiple=True, type=int, help="Put this delivery back in the queue.")
@click.option("--replay-all", is_flag=True, help="Put every dead letter back in the queue.")
@store_options
@hub_key_option
def dead_letters(
    replay_ids: tuple[int, ...], replay_all: bool, state_dir: Path, database_url: str, hub_key: Path | None
) -> None:
    """List the deliveries that ran out of attempts; with --replay or --replay-all, queue them again."""

    async def run() -> tuple[list[Delivery], int]:
        config = Config(state_dir=state_dir, database_url=database_url, hub_key_path=hub_key)
        async with open_hub(config, serving=False) as hub:
            outbox = hub.notifications.outbox
            replayed = 0
            if replay_all or replay_ids:
                replayed = await outbox.replay(None if replay_all else list(replay_ids), datetime.now(UTC))
            return await outbox.dead_letters(), replayed

    letters, replayed = asyncio.run(run())
    for letter in letters:
        note = letter.notification
        click.echo(
            f"{letter.id:>6} {note.created_at:%Y-%m-%d %H:%M} {note.sender} → {letter.recipient} "
            f"{note.category} {note.event} after {letter.attempts} attempts: {letter.last_error}"
        )
    if replay_all or replay_ids:
        click.echo(f"{replayed} replayed; a running hub delivers them within its poll interval")
    elif not letters:
        click.echo("no dead letters")
