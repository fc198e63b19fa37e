"""`crossroads agencies`, `categories`, `purposes` and `capacities`: list and change the registry on the hub's store.

Each change is an audited call by the operator at the keyboard (kind `registry`), like the same change through
`/v1/agencies`, `/v1/categories`, `/v1/purposes` and `/v1/capacities`, and needs `--reason`, which its audit
record keeps; every hub process sees it from its next request on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from broker.audit.log import AuditEntry
from broker.base import errors
from broker.cli.acting import Store, change, on_hub
from broker.cli.options import hub_key_option, store_options
from broker.hub import Hub
from directory.registry import (
    MAX_REASON,
    SealingChange,
    Term,
    parse_agency,
    parse_agency_change,
    parse_purpose,
    parse_reason,
    parse_term,
)
from directory.store import AgencyEntry, PurposeEntry

T = TypeVar("T")


def _options(command: Any) -> Any:
    return store_options(hub_key_option(command))


def _reason(command: Any) -> Any:
    return click.option(
        "--reason", required=True, help=f"Why (kept in the change's audit record; at most {MAX_REASON} characters)."
    )(command)


def _change(store: Store, reason: str, status: int, work: Callable[[Hub, AuditEntry], Awaitable[T]]) -> T:
    """Make a registry change as an audited call; its record carries the reason once the change is made."""

    async def act(hub: Hub, entry: AuditEntry) -> T:
        given = parse_reason(reason)
        answer = await work(hub, entry)
        entry.reason = given
        return answer

    return change(store, "registry", act, status)


def _show_agency(agency: AgencyEntry) -> None:
    click.echo(f"{agency.id}  {agency.status}  {agency.adapter_url}  {agency.name}")


def _show_term(term: Term) -> None:
    click.echo(f"{term.name}{'  sealed' if term.sealed else ''}  {term.description}".rstrip())


def _show_change(made: SealingChange) -> None:
    sealed, at = "sealed" if made.sealed else "plain", made.changed_at.isoformat(timespec="seconds")
    click.echo(f"v{made.version}  {sealed}  {at}  {made.changed_by}  {made.reason}")


def _show_purpose(purpose: PurposeEntry) -> None:
    confidential = ""
    if purpose.confidential:
        confidential = "  confidential" + (
            f" for {purpose.embargo_days} days" if purpose.embargo_days is not None else ""
        )
    click.echo(f"{purpose.name}{confidential}  {purpose.description}".rstrip())


@click.group()
def agencies() -> None:
    """Agencies: register, rename, move their adapter, suspend and resume; every change is audited."""


@agencies.command("list")
@_options
def list_agencies(state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Every agency: id, status, adapter URL and name."""
    for agency in on_hub((state_dir, database_url, hub_key), lambda hub: hub.registry.agencies()):
        _show_agency(agency)


@agencies.command("register")
@click.argument("agency_id")
@click.option("--name", required=True, help="The agency's display name.")
@click.option("--adapter-url", required=True, help="The base URL of the agency's adapter.")
@click.option("--key-id", default=None, help="The id of the agency's first signing key (with --public-key).")
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The agency's first Ed25519 public key, PEM (with --key-id).",
)
@_reason
@_options
def register(
    agency_id: str,
    name: str,
    adapter_url: str,
    key_id: str | None,
    public_key: Path | None,
    reason: str,
    state_dir: Path,
    database_url: str,
    hub_key: Path | None,
) -> None:
    """Register AGENCY_ID, active, with its first key if one is given."""
    if (key_id is None) != (public_key is None):
        raise click.UsageError("--key-id and --public-key go together")
    document: dict[str, Any] = {"id": agency_id, "name": name, "adapter_url": adapter_url}
    if key_id is not None and public_key is not None:
        document["key"] = {"key_id": key_id, "public_key_pem": public_key.read_text()}

    async def work(hub: Hub, entry: AuditEntry) -> AgencyEntry:
        entry.holder = agency_id
        agency, _ = await hub.registry.register_agency(parse_agency(document, entry.at))
        return agency

    _show_agency(_change((state_dir, database_url, hub_key), reason, 201, work))


def _update(store: Store, agency_id: str, document: dict[str, Any], reason: str) -> None:
    async def work(hub: Hub, entry: AuditEntry) -> AgencyEntry:
        entry.holder = agency_id
        updated = await hub.registry.update_agency(agency_id, parse_agency_change(document))
        if updated is None:
            raise errors.NotFound(f"no agency {agency_id!r}")
        return updated

    _show_agency(_change(store, reason, 200, work))


@agencies.command("update")
@click.argument("agency_id")
@click.option("--name", default=None, help="A new display name.")
@click.option("--adapter-url", default=None, help="A new adapter base URL.")
@_reason
@_options
def update(
    agency_id: str,
    name: str | None,
    adapter_url: str | None,
    reason: str,
    state_dir: Path,
    database_url: str,
    hub_key: Path | None,
) -> None:
    """Change the name or the adapter URL of AGENCY_ID."""
    document = {field: value for field, value in (("name", name), ("adapter_url", adapter_url)) if value is not None}
    if not document:
        raise click.UsageError("give --name, --adapter-url or both")
    _update((state_dir, database_url, hub_key), agency_id, document, reason)


@agencies.command("suspend")
@click.argument("agency_id")
@_reason
@_options
def suspend(agency_id: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Suspend AGENCY_ID: every hub process refuses its requests from its next one on."""
    _update((state_dir, database_url, hub_key), agency_id, {"status": "suspended"}, reason)


@agencies.command("resume")
@click.argument("agency_id")
@_reason
@_options
def resume(agency_id: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Make a suspended AGENCY_ID active again."""
    _update((state_dir, database_url, hub_key), agency_id, {"status": "active"}, reason)


def _add_term(store: Store, kind: str, name: str, description: str, reason: str) -> None:
    async def work(hub: Hub, entry: AuditEntry) -> Term:
        term = parse_term({"name": name, "description": description}, kind)
        if kind == "capacity":
            return await hub.registry.add_capacity(term)
        entry.category = term.name
        return await hub.registry.add_category(term)

    _show_term(_change(store, reason, 201, work))


@click.group()
def categories() -> None:
    """The registered data categories: list, add, seal and unseal; every change is audited."""


@categories.command("list")
@_options
def list_categories(state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Every registered data category, with its description."""
    for category in on_hub((state_dir, database_url, hub_key), lambda hub: hub.registry.categories()):
        _show_term(category)


@categories.command("add")
@click.argument("name")
@click.option("--description", default="", help="What the category holds.")
@_reason
@_options
def add_category(
    name: str, description: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None
) -> None:
    """Register the data category NAME."""
    _add_term((state_dir, database_url, hub_key), "category", name, description, reason)


def _seal(store: Store, name: str, sealed: bool, reason: str) -> None:
    async def work(hub: Hub, entry: AuditEntry) -> SealingChange:
        entry.category = name
        made = await hub.registry.seal_category(name, sealed, entry.requester or "cli", reason, entry.at)
        if made is None:
            raise errors.NotFound(f"no category {name[:64]!r}")
        return made

    _show_change(_change(store, reason, 200, work))


@categories.command("seal")
@click.argument("name")
@_reason
@_options
def seal_category(name: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Seal the data category NAME: holders encrypt its answers to the requester, the hub relays what it cannot
    read. A new version of the category, audited."""
    _seal((state_dir, database_url, hub_key), name, True, reason)


@categories.command("unseal")
@click.argument("name")
@_reason
@_options
def unseal_category(name: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Make the data category NAME plain again: its answers pass through the hub in clear. Audited."""
    _seal((state_dir, database_url, hub_key), name, False, reason)


@categories.command("history")
@click.argument("name")
@_options
def category_history(name: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Every version of the category NAME's sealing: when, by whom, why."""
    for made in on_hub((state_dir, database_url, hub_key), lambda hub: hub.registry.category_history(name)):
        _show_change(made)


@click.group()
def capacities() -> None:
    """The registered capacities in which an agency has a person as a client: list and add; audited."""


@capacities.command("list")
@_options
def list_capacities(state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Every registered capacity, with its description."""
    for capacity in on_hub((state_dir, database_url, hub_key), lambda hub: hub.registry.capacities()):
        _show_term(capacity)


@capacities.command("add")
@click.argument("name")
@click.option("--description", default="", help="What the capacity means.")
@_reason
@_options
def add_capacity(
    name: str, description: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None
) -> None:
    """Register the capacity NAME (e.g. beneficiary, employee, patient)."""
    _add_term((state_dir, database_url, hub_key), "capacity", name, description, reason)


@click.group()
def purposes() -> None:
    """The registered purposes: list and add; every addition is audited."""


@purposes.command("list")
@_options
def list_purposes(state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Every registered purpose, whether it is confidential (and for how long), and its description."""
    for purpose in on_hub((state_dir, database_url, hub_key), lambda hub: hub.registry.purposes()):
        _show_purpose(purpose)


@purposes.command("add")
@click.argument("name")
@click.option("--description", default="", help="What the purpose is.")
@click.option("--confidential", is_flag=True, help="Keep its accesses out of citizens' access logs.")
@click.option(
    "--embargo-days",
    type=click.IntRange(min=0),
    default=None,
    help="With --confidential: show its accesses in access logs this many days after each; default never.",
)
@_reason
@_options
def add_purpose(
    name: str,
    description: str,
    confidential: bool,
    embargo_days: int | None,
    reason: str,
    state_dir: Path,
    database_url: str,
    hub_key: Path | None,
) -> None:
    """Register the purpose NAME."""
    document: dict[str, Any] = {"name": name, "description": description, "confidential": confidential}
    if embargo_days is not None:
        document["embargo_days"] = embargo_days

    async def work(hub: Hub, entry: AuditEntry) -> PurposeEntry:
        purpose = parse_purpose(document)
        entry.purpose = purpose.name
        return await hub.registry.add_purpose(purpose)

    _show_purpose(_change((state_dir, database_url, hub_key), reason, 201, work))
