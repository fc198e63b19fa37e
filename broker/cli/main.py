"""The `crossroads` command: serve the hub, make keys, migrate the store, load a world, run the demo."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from adapters.sealing import load_or_create_sealing_key, sealing_public_pem
from broker.base import eventloop, logs
from broker.base.keyfiles import write_private_key
from broker.base.signing import public_key_pem
from broker.base.store import create_engine
from broker.cli.adapter import adapter
from broker.cli.audit import audit
from broker.cli.batch import batch
from broker.cli.consent import consent
from broker.cli.demo import run_demo, serve_demo
from broker.cli.directory import directory
from broker.cli.keys import keys
from broker.cli.notifications import notifications
from broker.cli.operator import operator
from broker.cli.options import store_options
from broker.cli.policy import policy
from broker.cli.registry import agencies, capacities, categories, purposes
from broker.cli.world import world
from broker.config import Config, ConfigError, load_config, shown
from broker.schema.migrations import upgrade
from broker.server import serve as serve_hub


@click.group()
def main() -> None:
    """Crossroads: an information-brokering hub for public agencies."""
    logs.configure(logs.StandardError())  # `serve` and `demo`, whose output is their log, log to stdout instead


def config_option(command: Any) -> Any:
    return click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        envvar="CROSSROADS_CONFIG",
        default=None,
        help="A TOML file whose [hub] table sets any setting (the field names of `crossroads config show`).",
    )(command)


def effective_config(flags: dict[str, object], config_file: Path | None) -> tuple[Config, dict[str, str]]:
    """Flags the user gave, then CROSSROADS_* variables, then the TOML file, then defaults."""
    context = click.get_current_context()
    given = {
        name: value
        for name, value in flags.items()
        if context.get_parameter_source(FLAG_PARAMETERS.get(name, name)) is ParameterSource.COMMANDLINE
    }
    try:
        return load_config(given, os.environ, config_file)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


FLAG_PARAMETERS = {"hub_key_path": "hub_key"}  # Config field -> the click parameter that sets it


@main.command()
@config_option
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where the SQLite store and hub key live.")
@click.option("--database-url", help="SQLAlchemy URL of the store (default: SQLite in the state directory).")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8080).")
@click.option("--public-url", help="The URL agencies sign as @target-uri (default http://HOST:PORT).")
@click.option("--hub-key", type=click.Path(path_type=Path), help="The hub's Ed25519 key (default STATE_DIR/hub.pem).")
@click.option("--hub-key-id", help="The hub's key id (default crossroads-hub).")
@click.option("--emergency-per-day", type=click.IntRange(min=0), help="Emergency accesses per agency and UTC day.")
def serve(
    config_file: Path | None,
    state_dir: Path | None,
    database_url: str | None,
    host: str | None,
    port: int | None,
    public_url: str | None,
    hub_key: Path | None,
    hub_key_id: str | None,
    emergency_per_day: int | None,
) -> None:
    """Run the hub until interrupted (SIGTERM or SIGINT: it finishes what it accepted, then stops)."""
    logs.configure(sys.stdout)
    config, _ = effective_config(
        {
            "state_dir": state_dir,
            "database_url": database_url,
            "host": host,
            "port": port,
            "public_url": public_url,
            "hub_key_path": hub_key,
            "hub_key_id": hub_key_id,
            "emergency_per_day": emergency_per_day,
        },
        config_file,
    )
    public = f" (agencies sign for {config.url})" if config.public_url else ""
    eventloop.run(serve_hub(config, lambda urls: click.echo(f"listening on {', '.join(urls)}{public}")))


@main.group("config")
def config_group() -> None:
    """The hub's settings."""


@config_group.command("show")
@config_option
def config_show(config_file: Path | None) -> None:
    """Print the effective settings and where each comes from; secrets are masked."""
    config, sources = effective_config({}, config_file)
    click.echo("[hub]")
    for line in shown(config, sources):
        click.echo(line)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--seal", is_flag=True, help="An X25519 key that sealed answers are encrypted to, instead.")
def keygen(path: Path, seal: bool) -> None:
    """Create an Ed25519 private key at PATH (mode 0600) and print its public key."""
    if path.exists():
        raise click.ClickException(f"{path} exists; a key is never overwritten")
    if seal:
        click.echo(sealing_public_pem(load_or_create_sealing_key(path)), nl=False)
    else:
        click.echo(public_key_pem(write_private_key(path).public_key()), nl=False)


@main.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
@store_options
def db_upgrade(state_dir: Path, database_url: str) -> None:
    """Migrate the store to the schema this hub needs."""

    async def run() -> list[str]:
        engine = create_engine(Config(state_dir=state_dir, database_url=database_url).database)
        try:
            return await upgrade(engine)
        finally:
            await engine.dispose()

    state_dir.mkdir(parents=True, exist_ok=True)
    applied = asyncio.run(run())
    for revision in applied:
        click.echo(f"applied {revision}")
    click.echo(
        f"schema is current ({len(applied)} revisions applied)" if applied else "schema is current; nothing to apply"
    )


@main.command()
@click.option("--serve", "serve_", is_flag=True, help="Keep the world running and write STATE_DIR/world.json.")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where keys, the store and world.json go (default: a fresh temporary directory).",
)
def demo(serve_: bool, state_dir: Path | None) -> None:
    """Run the demo world: a hub and six agencies brokering white, grey, black and consent cases."""
    with tempfile.TemporaryDirectory(prefix="crossroads-demo-") as scratch:
        directory = state_dir or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "hub.log", "a") as log_file:
            logs.configure(log_file)
            eventloop.run(serve_demo(directory) if serve_ else run_demo(directory))


main.add_command(policy)
main.add_command(notifications)
main.add_command(operator)
main.add_command(consent)
main.add_command(audit)
main.add_command(batch)
main.add_command(adapter)
main.add_command(keys)
main.add_command(world)
main.add_command(agencies)
main.add_command(categories)
main.add_command(purposes)
main.add_command(capacities)
main.add_command(directory)
