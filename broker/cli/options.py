"""Options the `crossroads` commands share: where the store and the hub key are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def store_options(command: Any) -> Any:
    command = click.option(
        "--state-dir",
        type=click.Path(path_type=Path),
        default=Path("state"),
        envvar="CROSSROADS_STATE_DIR",
        show_default=True,
        help="Where the embedded SQLite store and the hub key live.",
    )(command)
    return click.option(
        "--database-url",
        envvar="CROSSROADS_DATABASE_URL",
        default="",
        help="SQLAlchemy URL of the store, e.g. postgresql+asyncpg://... (default: SQLite).",
    )(command)


def hub_key_option(command: Any) -> Any:
    return click.option(
        "--hub-key",
        type=click.Path(path_type=Path),
        default=None,
        envvar="CROSSROADS_HUB_KEY",
        help="The hub's Ed25519 private key (PEM); default STATE_DIR/hub.pem.",
    )(command)
