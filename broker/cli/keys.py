"""`crossroads keys`: list, register, rotate and revoke agencies' signing keys on the hub's store.

Changes are written to the audit log like the same calls made through `/v1/agencies/{id}/keys`, refusals
included; a revocation counts on every hub process from its next request on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from broker.audit.log import AuditEntry
from broker.base import errors
from broker.cli.acting import Store, change, on_hub
from broker.cli.options import hub_key_option, store_options
from broker.hub import Hub
from directory.keys import KeyRecord, parse_registration, parse_revocation

Change = Callable[[Hub, str, datetime], Awaitable[KeyRecord | None]]


USE = click.option(
    "--use",
    type=click.Choice(["sign", "seal"]),
    default="sign",
    show_default=True,
    help="sign: an Ed25519 key that signs requests; seal: an X25519 key that sealed answers are encrypted to.",
)


def _options(command: Any) -> Any:
    return store_options(hub_key_option(command))


def _change(store: Store, agency: str, status: int, work: Change) -> KeyRecord:
    """Run a key change as the operator at the keyboard; audited, refused or done."""

    async def act(hub: Hub, entry: AuditEntry) -> KeyRecord:
        if await hub.directory.agency(agency) is None:
            raise errors.NotFound(f"no agency {agency!r}")
        record = await work(hub, str(entry.requester), entry.at)
        if record is None:
            raise errors.NotFound(f"agency {agency!r} has no such key")
        return record

    return change(store, "key", act, status, holder=agency)


def _show(record: KeyRecord) -> None:
    shown = record.as_json(datetime.now(UTC))
    until = shown["valid_until"] or "open-ended"
    state = "valid" if shown["valid"] else record.status if record.status != "active" else "not valid now"
    use = "  seal" if record.use == "seal" else ""
    click.echo(f"{record.key_id}{use}  {state}  from {shown['valid_from']} until {until}")


@click.group()
def keys() -> None:
    """Agencies' signing keys: every change is audited."""


@keys.command("list")
@click.argument("agency")
@_options
def list_keys(agency: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Every key of AGENCY, revoked and expired ones included."""

    for record in on_hub((state_dir, database_url, hub_key), lambda hub: hub.directory.keys_of(agency)):
        _show(record)


def _register(
    agency: str,
    key_id: str,
    public_key: Path,
    document: dict[str, Any],
    store: Store,
) -> None:
    registration = {"key_id": key_id, "public_key_pem": public_key.read_text(), **document}

    async def work(hub: Hub, actor: str, at: datetime) -> KeyRecord:
        return await hub.directory.add_key("agency", agency, parse_registration(registration, at), at)

    _show(_change(store, agency, 201, work))


@keys.command("register")
@click.argument("agency")
@click.argument("key_id")
@click.argument("public_key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--valid-from", default=None, help="RFC 3339; default now.")
@click.option("--valid-until", default=None, help="RFC 3339; default open-ended.")
@USE
@_options
def register(
    agency: str,
    key_id: str,
    public_key: Path,
    valid_from: str | None,
    valid_until: str | None,
    use: str,
    state_dir: Path,
    database_url: str,
    hub_key: Path | None,
) -> None:
    """Register PUBLIC_KEY (PEM: Ed25519 to sign, X25519 to seal) for AGENCY as KEY_ID, next to its other keys."""
    period = {name: value for name, value in (("valid_from", valid_from), ("valid_until", valid_until)) if value}
    _register(agency, key_id, public_key, {**period, "use": use}, (state_dir, database_url, hub_key))


@keys.command("rotate")
@click.argument("agency")
@click.argument("key_id")
@click.argument("public_key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--overlap",
    type=click.IntRange(min=0),
    default=86_400,
    show_default=True,
    help="Seconds the agency's other keys of this use stay valid next to the new one, then expire.",
)
@USE
@_options
def rotate(
    agency: str,
    key_id: str,
    public_key: Path,
    overlap: int,
    use: str,
    state_dir: Path,
    database_url: str,
    hub_key: Path | None,
) -> None:
    """Register PUBLIC_KEY for AGENCY as KEY_ID; its other keys of the same use expire after the overlap."""
    _register(agency, key_id, public_key, {"overlap_s": overlap, "use": use}, (state_dir, database_url, hub_key))


@keys.command("revoke")
@click.argument("agency")
@click.argument("key_id")
@click.option("--reason", required=True, help="Why (kept with the key).")
@_options
def revoke(agency: str, key_id: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Revoke KEY_ID of AGENCY for good; every hub process refuses it from its next request on."""

    async def work(hub: Hub, actor: str, at: datetime) -> KeyRecord | None:
        return await hub.directory.revoke_key(agency, key_id, actor, parse_revocation({"reason": reason}), at)

    _show(_change((state_dir, database_url, hub_key), agency, 200, work))
