"""`crossroads policy`: list, add, remove, import, export, explain, history and roll back sharing rules; the
lines that show what a version changes (also `crossroads world load --replace`'s); with four eyes
(CROSSROADS_POLICY_APPROVALS=2) the changes held for approval, approved or rejected by another administrator,
and their dry run against the audit log.

Edits act on the store of the hub (like `crossroads world load`), publish a new policy version that every
hub process follows within seconds (or are held as a change: "pending approval: change ID"), and are written to
the audit log like edits made through the API.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from broker.audit.log import AuditEntry, clipped, edit_recorded
from broker.audit.queries import moment
from broker.base import errors
from broker.cli.acting import Store, change, on_hub
from broker.cli.options import hub_key_option, store_options
from broker.hub import Hub
from policies.changes import STATUSES, Change, Pending
from policies.rules import CSV_COLUMNS, RULE_ID, PolicyFile, parse_csv, parse_rule, to_csv
from policies.service import Published


def said(outcome: Published) -> str:
    return f"pending approval: change {outcome.change}" if isinstance(outcome, Pending) else f"version {outcome}"


def _edit(store: Store, reason: str, edit: Callable[[Hub, AuditEntry], Awaitable[Published]]) -> Published:
    """Make an edit as an audited call by the operator at the keyboard; the new policy version, or the change it
    is held as. The edit names in the record the rule it adds or removes."""

    async def work(hub: Hub, entry: AuditEntry) -> Published:
        outcome = await edit(hub, entry)
        edit_recorded(entry, outcome, reason)
        return outcome

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

    async def edit(hub: Hub, entry: AuditEntry) -> Published:
        policy_file = parse_csv(text)
        return await hub.policies.replace(policy_file.rules, policy_file.groups, str(entry.requester), reason, entry.at)

    click.echo(said(_edit((state_dir, database_url, hub_key), reason, edit)))


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

    async def edit(hub: Hub, entry: AuditEntry) -> Published:
        rule = parse_rule(document, new=True)
        entry.rule_id = rule.id or None
        version, rule = await hub.policies.add(rule, str(entry.requester), reason, entry.at)
        entry.rule_id = rule.id
        added.append(rule.id)
        return version

    outcome = _edit((state_dir, database_url, hub_key), reason, edit)
    click.echo(f"{said(outcome)}: rule {added[0]}")


@policy.command("remove")
@click.argument("rule_id")
@click.option("--reason", required=True)
@_options
def remove(rule_id: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Remove the rule RULE_ID."""

    async def edit(hub: Hub, entry: AuditEntry) -> Published:
        entry.rule_id = rule_id if RULE_ID.fullmatch(rule_id) else None
        return await hub.policies.remove(rule_id, str(entry.requester), reason, entry.at)

    click.echo(said(_edit((state_dir, database_url, hub_key), reason, edit)))


@policy.command("rollback")
@click.argument("version", type=int)
@click.option("--reason", required=True)
@_options
def rollback(version: int, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Publish the rules of VERSION again, as a new version."""

    async def edit(hub: Hub, entry: AuditEntry) -> Published:
        return await hub.policies.rollback(version, str(entry.requester), reason, entry.at)

    click.echo(said(_edit((state_dir, database_url, hub_key), reason, edit)))


@policy.command("history")
@_options
def history(state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Every version: who, when, why, and what changed in the rules and the groupings."""
    for version in on_hub((state_dir, database_url, hub_key), lambda hub: hub.policies.history()):
        changes = version["diff"]
        rollback = "" if version["rollback_of"] is None else f" [rollback to v{version['rollback_of']}]"
        if "approved_by" in version:
            rollback += f" [approved by {version['approved_by']}: {version['approval_reason']}]"
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
@click.argument("requester", required=False)
@click.argument("category", required=False)
@click.argument("purpose", required=False)
@click.option(
    "--change",
    "change_id",
    help="Instead: dry-run the pending change ID, re-deciding the exchanges of the audit log under its rules.",
)
@click.option(
    "--since",
    default="7d",
    show_default=True,
    help="With --change: since when (RFC 3339, or 7d, 12h, 30m before now).",
)
@_options
def evaluate(
    requester: str | None,
    category: str | None,
    purpose: str | None,
    change_id: str | None,
    since: str,
    state_dir: Path,
    database_url: str,
    hub_key: Path | None,
) -> None:
    """Explain what the rules decide for REQUESTER (an agency id) asking CATEGORY for PURPOSE; or, with --change,
    which recent exchanges the rules a pending change would publish decide in another zone."""
    store = (state_dir, database_url, hub_key)
    if change_id is not None:
        if requester is not None:
            raise click.UsageError("--change takes no REQUESTER, CATEGORY or PURPOSE")
        try:
            start = moment(since, "--since", datetime.now(UTC))
        except errors.Invalid as error:
            raise click.BadParameter(error.detail, param_hint="--since") from error

        async def dry_run(hub: Hub) -> dict[str, Any]:
            questions = await hub.audit.decided(start)
            return await hub.policies.dry_run(change_id, questions)

        click.echo(json.dumps(on_hub(store, dry_run)))
        return
    if requester is None or category is None or purpose is None:
        raise click.UsageError("give REQUESTER, CATEGORY and PURPOSE, or --change ID")
    asked = (requester, category, purpose)
    decision = on_hub(store, lambda hub: hub.policies.decide(*asked))
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


@policy.command("changes")
@click.option("--status", type=click.Choice(STATUSES), default="pending", show_default=True)
@_options
def list_changes(status: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """The changes of the rules held for, or decided by, a second administrator (four eyes)."""
    for held in on_hub((state_dir, database_url, hub_key), lambda hub: hub.policies.changes(status)):
        click.echo(change_line(held))


def change_line(held: Change) -> str:
    """A change as one line: what it asks, of which version, who proposed it and why, and any decision."""
    line = (
        f"{held.id} {held.status}: {_asked(held)} (against v{held.against}) proposed by {held.proposed_by} "
        f"at {held.proposed_at.isoformat()}: {held.reason}"
    )
    if held.decided_by is not None:
        line += f"; {held.status} by {held.decided_by}: {held.decision_reason}"
    return line + ("" if held.version is None else f" => v{held.version}")


def _asked(held: Change) -> str:
    asks = held.asks
    if held.kind == "add":
        return f"add {_rule_line(asks['rule'])}"
    if held.kind == "remove":
        return f"remove {asks['rule']}"
    if held.kind == "rollback":
        return f"rollback to v{asks['version']}"
    if held.kind == "accept":
        return f"accept proposal {asks['proposal']}"
    return f"{held.kind} {len(asks['rules'])} rules, {len(asks['groups'])} groupings"


@policy.command("approve")
@click.argument("change_id")
@click.option("--reason", required=True, help="Why you approve it (recorded with the version it publishes).")
@_options
def approve(change_id: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Approve another administrator's change CHANGE_ID: it is published as one new version."""

    async def work(hub: Hub, entry: AuditEntry) -> int:
        version, decided = await hub.policies.approve(change_id, str(entry.requester), reason, entry.at)
        entry.exchange, entry.policy_version, entry.reason = decided.id, version, clipped(reason)
        return version

    click.echo(f"version {change((state_dir, database_url, hub_key), 'policy', work, 200, 'recorded')}")


@policy.command("reject")
@click.argument("change_id")
@click.option("--reason", required=True, help="Why you reject it (recorded with the change).")
@_options
def reject(change_id: str, reason: str, state_dir: Path, database_url: str, hub_key: Path | None) -> None:
    """Reject the change CHANGE_ID: nothing is published."""

    async def work(hub: Hub, entry: AuditEntry) -> str:
        decided = await hub.policies.reject(change_id, str(entry.requester), reason, entry.at)
        entry.exchange, entry.reason = decided.id, clipped(reason)
        return decided.id

    click.echo(f"change {change((state_dir, database_url, hub_key), 'policy', work, 200, 'recorded')} rejected")
