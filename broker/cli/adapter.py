"""`crossroads adapter`: run an agency's adapter from its config file, or scaffold a new adapter project."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from adapters import config as adapter_config
from adapters import scaffold
from broker.base import logs


@click.group()
def adapter() -> None:
    """Agency adapters: what an agency runs in front of its own systems so that the hub can reach them."""


@adapter.command("run")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def run(config: Path) -> None:
    """Serve the adapter CONFIG (YAML, TOML or JSON) describes until interrupted."""
    logs.configure(sys.stdout)
    try:
        settings = adapter_config.read_config(config)
        click.echo(f"{settings.agency} adapter on http://{settings.host}:{settings.port}", err=True)
        adapter_config.run(settings)
    except adapter_config.ConfigError as error:
        raise click.ClickException(str(error)) from error


@adapter.command("new")
@click.argument("name")
@click.option("--directory", type=click.Path(path_type=Path), default=None, help="Where to create it (default ./NAME).")
@click.option("--category", default="civil-status", show_default=True, help="The category the handler stub answers.")
@click.option("--port", type=int, default=8090, show_default=True)
@click.option("--public-url", default="", help="The URL the hub calls (default http://127.0.0.1:PORT).")
@click.option("--hub-key-id", default="crossroads-hub", show_default=True)
@click.option(
    "--hub-public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The hub's public key (PEM), copied to keys/hub.pub.pem.",
)
def new(
    name: str,
    directory: Path | None,
    category: str,
    port: int,
    public_url: str,
    hub_key_id: str,
    hub_public_key: Path | None,
) -> None:
    """Create an adapter project for agency NAME: config, key pair, world-file entry, handler stub, test."""
    project = scaffold.Project(
        name, category, port=port, public_url=public_url, hub_key_id=hub_key_id, hub_public_key=hub_public_key
    )
    target = directory or Path(name)
    try:
        written = scaffold.create(target, project)
    except (ValueError, FileExistsError) as error:
        raise click.ClickException(str(error)) from error
    for path in written:
        click.echo(path)
