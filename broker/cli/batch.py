"""`crossroads batch submit`: an agency sends a file of exchange requests to a hub as one batch (`POST /v1/batches`,
signed with the agency's key from its adapter config), follows it with a progress bar, and writes its lines'
answers to a file as they come (NDJSON, one `{"line", "ref", "exchange", "status", ...}` a line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import click
from tqdm import tqdm

from adapters.client import HubClient, HubProblem
from adapters.config import ConfigError, read_config
from broker.base.eventloop import run
from broker.base.signing import SigningKey, load_private_key, load_public_key


@click.group()
def batch() -> None:
    """Batches: many exchange requests in one signed call, each line decided as a single exchange."""


@batch.command("submit")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The agency's adapter config: its id, its key, and the hub's key.",
)
@click.option("--hub", "hub_url", required=True, envvar="CROSSROADS_HUB_URL", help="The hub's URL.")
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the answers go (default: PATH with .results.ndjson).",
)
def submit(path: Path, config_path: Path, hub_url: str, results: Path | None) -> None:
    """Send PATH, one exchange request a line ({"ref", "subject", "category", "purpose", ...}), as one batch."""
    try:
        config = read_config(config_path)
        key = SigningKey(config.key_id, load_private_key(config.key_file.read_bytes()))
        hub_key = load_public_key(config.hub_public_key_file.read_bytes())
    except (ConfigError, OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    target = results or path.with_suffix(".results.ndjson")
    target.unlink(missing_ok=True)
    # Made before the event loop runs: tqdm sets up its lock (and imports multiprocessing) on its first bar.
    with tqdm(unit="line", desc=path.name) as bar:

        def shown(state: dict[str, Any]) -> None:
            bar.total = state["lines"]
            bar.update(state["done"] - bar.n)

        async def send() -> dict[str, Any]:
            async with aiohttp.ClientSession() as session:
                client = HubClient(hub_url, key, config.hub_key_id, hub_key, session)
                return await client.batch(path, target, shown)

        try:
            last = run(send())
        except HubProblem as problem:
            raise click.ClickException(f"{problem.status} {problem.name}: {problem.detail}") from problem
        except aiohttp.ClientError as error:
            raise click.ClickException(f"the hub at {hub_url} could not be reached ({type(error).__name__})") from error
    outcomes = ", ".join(f"{count} {outcome}" for outcome, count in sorted(last["by_outcome"].items()))
    click.echo(f"batch {last['batch']} {last['status']}: {last['done']} of {last['lines']} lines ({outcomes})")
    click.echo(f"answers in {target}")
