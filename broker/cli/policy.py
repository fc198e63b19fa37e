"""`crossroads policy`: list, add, remove, import, export, explain, history and roll back sharing rules; the
lines that show what a version changes (also `crossroads world load --replace`'s).

Edits act on the store of the hub (like `crossroads world load`), publish a new policy version that every
hub process follows within seconds, and are written to the audit log like edits made through the API.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from broker.audit.log import AuditEntry
from broker.cli.acting import Store, change, on_hub
from broker.cli.options import hub_key_option, store_options
from broker.hub import Hub
from policies.rules import CSV_COLUMNS, RULE_ID, PolicyFile, parse_csv, parse_rule, to_csv


def _edit(store: Store, edit: Callable[[Hub, AuditEntry], Awaitable[int]]) -> int:
    """Make an edit as an audited call by the operator at the keyboard; the new policy version. The edit names
    in the record the rule it adds or removes."""

    async def work(hub: Hub, entry: AuditEntry) -> int:
        entry.policy_version = await edit(hub, entry)
        return entry.policy_version

    return change(store, "policy", work, 200, "recorded")


def _options(command: Any) -> Any:
    return store_options(hub_key_option(command))


@click.group()
def policy() -> None:
    """Sharing rules: every edit is a new, reasoned, audited version."""


@policy.command("list")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["rules", "csv"]),
    default="rules",
    show_default=True,
    help="rules: the rule file `policy import` reads back (a version comment, rules, then role and category "
    "groupings); csv: a header row, then one row per rule, for a spreadsheet.",
)
@_options
def list_rules(fmt: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Print the current rule set."""
    rule_set = on_hub((state_dir, database_url, hub_key), lambda hub: hub.policies.rules())
    if fmt == "csv":
        click.echo(",".join(CSV_COLUMNS))
        click.echo(to_csv(PolicyFile(list(rule_set.rules), [])), nl=False)
        return
    click.echo(f"# version {rule_set.version}")
    click.echo(to_csv(PolicyFile(list(rule_set.rules), list(rule_set.groups))), nl=False)


@policy.command("export")
@click.argument("path", type=click.Path(path_type=Path))
@_options
def export(path: Path, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Write the current rule set to PATH as CSV; `import` reads it back exactly."""
    rule_set = on_hub((state_dir, database_url, hub_key), lambda hub: hub.policies.rules())
    path.write_text(to_csv(PolicyFile(list(rule_set.rules), list(rule_set.groups))))
    click.echo(f"version {rule_set.version}: {len(rule_set.rules)} rules written to {path}")


@policy.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--reason", required=True, help="Why the rule set changes (recorded with the version).")
@_options
def import_rules(path: Path, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Replace the rule set with the CSV at PATH as one new version."""
    text = path.read_text()

    async def edit(hub: Hub, entry: AuditEntry) -> int:
        policy_file = parse_csv(text)
        return await hub.policies.replace(policy_file.rules, policy_file.groups, str(entry.requester), reason, entry.at)

    click.echo(f"version {_edit((state_dir, database_url, hub_key), edit)}")


@policy.command("add")
@click.argument("rule_json")
@click.option("--reason", required=True)
@_options
def add(rule_json: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Add a rule given as JSON, e.g. '{"id": "r-9", "requester": "agency:x", ...}' (PROTOCOL.md's form); without
    an id, the hub gives it one (printed)."""
    try:
        document = json.loads(rule_json)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="RULE_JSON") from error
    added: list[str] = []

    async def edit(hub: Hub, entry: AuditEntry) -> int:
        rule = parse_rule(document, new=True)
        entry.rule_id = rule.id or None
        version, rule = await hub.policies.add(rule, str(entry.requester), reason, entry.at)
        entry.rule_id = rule.id
        added.append(rule.id)
        return version

    version = _edit((state_dir, database_url, hub_key), edit)
    click.echo(f"version {version}: rule {added[0]}")


@policy.command("remove")
@click.argument("rule_id")
@click.option("--reason", required=True)
@_options
def remove(rule_id: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Remove the rule RULE_ID."""

    async def edit(hub: Hub, entry: AuditEntry) -> int:
        entry.rule_id = rule_id if RULE_ID.fullmatch(rule_id) else None
        return await hub.policies.remove(rule_id, str(entry.requester), reason, entry.at)

    click.echo(f"version {_edit((state_dir, database_url, hub_key), edit)}")


@policy.command("rollback")
@click.argument("version", type=int)
@click.option("--reason", required=True)
@_options
def rollback(version: int, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Publish the rules of VERSION again, as a new version."""

    async def edit(hub: Hub, entry: AuditEntry) -> int:
        return await hub.policies.rollback(version, str(entry.requester), reason, entry.at)

    click.echo(f"version {_edit((state_dir, database_url, hub_key), edit)}")


@policy.command("history")
@_options
def history(state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Every version: who, when, why, and what changed in the rules and the groupings."""
    for version in on_hub((state_dir, database_url, hub_key), lambda hub: hub.policies.history()):
        changes = version["diff"]
        rollback = "" if version["rollback_of"] is None else f" [rollback to v{version['rollback_of']}]"
        click.echo(
            f"v{version['version']} {version['created_at']} {version['actor']}: {version['reason']}{rollback} "
            f"(+{len(changes['added'])} -{len(changes['removed'])} ~{len(changes['changed'])} rules, "
            f"+{len(changes['groups_added'])} -{len(changes['groups_removed'])} groupings)"
        )
        for line in diff_lines(changes):
            click.echo(line)


def diff_lines(changes: dict[str, list[dict[str, Any]]]) -> list[str]:
    """A version's changes (policies.rules.changes) as lines: `+` added, `-` removed, `~` changed."""
    lines = [f"    + {_rule_line(rule)}" for rule in changes["added"]]
    lines += [f"    - {_rule_line(rule)}" for rule in changes["removed"]]
    lines += [f"    ~ {_rule_line(item['before'])} => {_rule_line(item['after'])}" for item in changes["changed"]]
    lines += [f"    + {_group_line(group)}" for group in changes["groups_added"]]
    lines += [f"    - {_group_line(group)}" for group in changes["groups_removed"]]
    return lines


def _rule_line(rule: dict[str, Any]) -> str:
    shown = f"{rule['id']} {rule['requester']} {rule['category']} {rule['purpose']} {rule['zone']}"
    if rule["consent"]:
        shown += " consent"
    if rule["fields"] is not None:
        shown += " fields=" + "|".join(rule["fields"])
    if rule["emergency"]:
        shown += " emergency"
    if rule["ground"]:
        shown += f" ground={rule['ground']!r}"
    return shown


def _group_line(group: dict[str, str]) -> str:
    return f"{group['kind']} {group['member']} in {group['group']}"


@policy.command("evaluate")
@click.argument("requester")
@click.argument("category")
@click.argument("purpose")
@_options
def evaluate(
    requester: str, category: str, purpose: str, state_dir: Path, database_url: str, hub_key: Path | None
) -> None:
    """Explain what the rules decide for REQUESTER (an agency id) asking CATEGORY for PURPOSE."""
    decision = on_hub((state_dir, database_url, hub_key), lambda hub: hub.policies.decide(requester, category, purpose))
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
