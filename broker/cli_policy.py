"""`crossroads policy`: list, add, remove, import, export, explain, history and roll back sharing rules.

Edits act on the store of the hub (like `crossroads world load`), publish a new policy version that every
hub process follows within seconds, and are written to the audit log like edits made through the API.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from broker.audit import AuditEntry
from broker.cli_options import hub_key_option, store_options
from broker.config import Config
from broker.hub import Hub, open_hub
from policies.rules import PolicyFile, RuleInvalid, parse_csv, parse_rule, to_csv
from policies.service import PolicyEditRefused

T = TypeVar("T")


def _with_hub(state_dir: Path, database_url: str, hub_key: Path | None, work: Callable[[Hub], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_hub(Config(state_dir=state_dir, database_url=database_url, hub_key_path=hub_key)) as hub:
            return await work(hub)

    try:
        return asyncio.run(run())
    except (PolicyEditRefused, RuleInvalid) as error:
        raise click.ClickException(str(error)) from error


async def _audited(hub: Hub, edit: Callable[[str, datetime], Awaitable[int]], rule_id: str | None = None) -> int:
    """Run an edit as the operator at the keyboard and commit its audit record."""
    at = datetime.now(UTC)
    actor = f"cli:{getpass.getuser()}"
    entry = AuditEntry(at=at, kind="policy", requester=actor, rule_id=rule_id)
    version = await edit(actor, at)
    entry.policy_version, entry.status, entry.outcome = version, 200, "recorded"
    await hub.audit.commit(entry)
    return version


def _options(command: Any) -> Any:
    return store_options(hub_key_option(command))


@click.group()
def policy() -> None:
    """Sharing rules: every edit is a new, reasoned, audited version."""


@policy.command("list")
@_options
def list_rules(state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Print the current rule set as CSV (rules, then role and category groupings)."""
    rule_set = _with_hub(state_dir, database_url, hub_key, lambda hub: hub.policies.rules())
    click.echo(f"# version {rule_set.version}")
    click.echo(to_csv(PolicyFile(list(rule_set.rules), list(rule_set.groups))), nl=False)


@policy.command("export")
@click.argument("path", type=click.Path(path_type=Path))
@_options
def export(path: Path, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Write the current rule set to PATH as CSV; `import` reads it back exactly."""
    rule_set = _with_hub(state_dir, database_url, hub_key, lambda hub: hub.policies.rules())
    path.write_text(to_csv(PolicyFile(list(rule_set.rules), list(rule_set.groups))))
    click.echo(f"version {rule_set.version}: {len(rule_set.rules)} rules written to {path}")


@policy.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--reason", required=True, help="Why the rule set changes (recorded with the version).")
@_options
def import_rules(path: Path, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Replace the rule set with the CSV at PATH as one new version."""
    try:
        policy_file = parse_csv(path.read_text())
    except RuleInvalid as error:
        raise click.ClickException(f"{path}: {error}") from error

    async def work(hub: Hub) -> int:
        return await _audited(
            hub, lambda actor, at: hub.policies.replace(policy_file.rules, policy_file.groups, actor, reason, at)
        )

    click.echo(f"version {_with_hub(state_dir, database_url, hub_key, work)}")


@policy.command("add")
@click.argument("rule_json")
@click.option("--reason", required=True)
@_options
def add(rule_json: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Add a rule given as JSON, e.g. '{"id": "r-9", "requester": "agency:x", ...}' (PROTOCOL.md's form)."""
    try:
        rule = parse_rule(json.loads(rule_json))
    except (ValueError, RuleInvalid) as error:
        raise click.ClickException(f"not a valid rule: {error}") from error

    async def work(hub: Hub) -> int:
        return await _audited(hub, lambda actor, at: hub.policies.add(rule, actor, reason, at), rule.id)

    click.echo(f"version {_with_hub(state_dir, database_url, hub_key, work)}")


@policy.command("remove")
@click.argument("rule_id")
@click.option("--reason", required=True)
@_options
def remove(rule_id: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Remove the rule RULE_ID."""

    async def work(hub: Hub) -> int:
        return await _audited(hub, lambda actor, at: hub.policies.remove(rule_id, actor, reason, at), rule_id)

    click.echo(f"version {_with_hub(state_dir, database_url, hub_key, work)}")


@policy.command("rollback")
@click.argument("version", type=int)
@click.option("--reason", required=True)
@_options
def rollback(version: int, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Publish the rules of VERSION again, as a new version."""

    async def work(hub: Hub) -> int:
        return await _audited(hub, lambda actor, at: hub.policies.rollback(version, actor, reason, at))

    click.echo(f"version {_with_hub(state_dir, database_url, hub_key, work)}")


@policy.command("history")
@_options
def history(state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Every version: who, when, why, and what changed."""
    for version in _with_hub(state_dir, database_url, hub_key, lambda hub: hub.policies.history()):
        changes = version["diff"]
        click.echo(
            f"v{version['version']} {version['created_at']} {version['actor']}: {version['reason']} "
            f"(+{len(changes['added'])} -{len(changes['removed'])} ~{len(changes['changed'])})"
        )
        for rule in changes["added"]:
            click.echo(f"    + {rule['id']} {rule['requester']} {rule['category']} {rule['purpose']} {rule['zone']}")
        for rule in changes["removed"]:
            click.echo(f"    - {rule['id']} {rule['requester']} {rule['category']} {rule['purpose']} {rule['zone']}")
        for change in changes["changed"]:
            click.echo(f"    ~ {change['after']['id']} {change['before']['zone']} → {change['after']['zone']}")


@policy.command("evaluate")
@click.argument("requester")
@click.argument("category")
@click.argument("purpose")
@_options
def evaluate(
    requester: str, category: str, purpose: str, state_dir: Path, database_url: str, hub_key: Path | None
) -> None:
    """Explain what the rules decide for REQUESTER (an agency id) asking CATEGORY for PURPOSE."""
    decision = _with_hub(
        state_dir, database_url, hub_key, lambda hub: hub.policies.decide(requester, category, purpose)
    )
    click.echo(
        json.dumps(
            {
                "zone": decision.zone,
                "consent": decision.consent,
                "fields": None if decision.fields is None else list(decision.fields),
                "rules": [] if decision.rule is None else [decision.rule.id],
                "version": decision.version,
            }
        )
    )
