"""World files (JSON or YAML; docs/world-files.md): agencies and their keys, operators, categories, purposes,
capacities, holdings, relationships, role and category groupings, sharing rules, consents and refusals, each
through its own service; and `crossroads world load`.

Loading merges: the file's rules are added to the rule set (one with the id of a current rule replaces it), its
groupings are added, and nothing is removed. `--replace` makes the file's rules and groupings the whole rule set,
after showing what that changes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml

from broker.audit.log import AuditEntry, edit_recorded
from broker.cli.acting import Store, change, on_hub
from broker.cli.options import hub_key_option, store_options
from broker.cli.policy import diff_lines, said
from broker.hub import Hub
from consent.service import STAFF_CHANNEL, ConsentInvalid, parse_consent, parse_refusal
from directory.registry import MAX_REASON, parse_reason
from policies.rules import Group, PolicyFile, changes, distinct_ids, parse_csv, parse_rule, unchanged
from policies.service import PolicyEditRefused, Published
from policies.store import RuleSet

RULE_SECTIONS = ("rules", "rules_csv")


def read_world(path: Path) -> dict[str, Any]:
    """The world file at `path`; a relative `rules_csv` is read from the file's own folder."""
    text = path.read_text()
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(document, dict):
        raise SystemExit(f"{path}: a world file is a mapping")
    if isinstance(document.get("rules_csv"), str):
        document["rules_csv"] = str(path.parent / document["rules_csv"])
    return document


def states_rules(world: dict[str, Any]) -> bool:
    """Whether the file says what its rule set is (`rules`, `rules_csv`), as `--replace` needs."""
    return any(section in world for section in RULE_SECTIONS)


def touches_rules(world: dict[str, Any]) -> bool:
    """Whether loading the file may change the rule set: rules, or role or category groupings."""
    return (
        states_rules(world)
        or bool(world.get("category_groups"))
        or any(agency.get("roles") for agency in world.get("agencies", []))
    )


async def world_policy(world: dict[str, Any]) -> PolicyFile:
    """The rules and the role and category groupings a world file states."""
    rules_csv = world.get("rules_csv")
    from_csv = parse_csv(await asyncio.to_thread(Path(rules_csv).read_text)) if rules_csv else PolicyFile([], [])
    rules = [parse_rule(rule) for rule in world.get("rules", [])] + from_csv.rules
    groups: list[Group] = [
        ("g", f"agency:{agency['id']}", f"role:{role}")
        for agency in world.get("agencies", [])
        for role in agency.get("roles", [])
    ]
    groups += [
        ("g2", category, group) for group, members in world.get("category_groups", {}).items() for category in members
    ]
    return PolicyFile(rules, groups + from_csv.groups)


async def load_world(
    hub: Hub,
    world: dict[str, Any],
    actor: str,
    reason: str,
    *,
    replace: bool = False,
    expected: int | None = None,
) -> Published | None:
    """Load a world file; the policy version it published (or with four eyes the change its rules are held as), or
    None when the rule set did not change.

    The rules, consents and refusals are checked before anything is written. The directory part is inserted or
    updated (nothing removed, no revocation or suspension undone: `DirectoryStore.load`); the rules are merged
    into the rule set, or with `replace` replace it (with `expected`, only while the rules are still at that
    version: the one whose difference was shown); consents and refusals are recorded anew each time."""
    at = datetime.now(UTC)
    policy = await world_policy(world) if touches_rules(world) or replace else None
    if policy is not None:  # refused before anything is written
        distinct_ids(policy.rules)
        if expected is not None and (current := (await hub.policies.rules()).version) != expected:
            raise PolicyEditRefused("conflicts", f"the rules changed meanwhile: version {current}, not {expected}")
    await _check_facts(hub, world, actor, at)
    await hub.directory.load(world, at)
    version = None
    if policy is not None:
        version = await hub.policies.load(
            policy.rules, policy.groups, actor, reason, at, merge=not replace, expected=expected
        )
    for consent in world.get("consents", []):
        await hub.consents.give(consent, actor, at)
    for refusal in world.get("refusals", []):
        await hub.consents.refuse(refusal, actor, at)
    return version


async def _check_facts(hub: Hub, world: dict[str, Any], actor: str, at: datetime) -> None:
    """Refuse the file's consents and refusals before anything is written, as the consent service would: each must
    be well formed and name agencies, categories and purposes registered, before or by the file itself."""
    in_file = {
        section: {str(entry.get(key)) for entry in world.get(section, []) if isinstance(entry, dict)}
        for section, key in (("agencies", "id"), ("categories", "name"), ("purposes", "name"))
    }
    lookups = {
        "agencies": _exists(hub.directory.agency),
        "categories": hub.directory.category_exists,
        "purposes": hub.directory.purpose_exists,
    }

    async def registered(name: str, section: str, field: str) -> None:
        if name not in in_file[section] and not await lookups[section](name):
            raise ConsentInvalid(f"{field} {name!r} is not registered")

    for document in world.get("consents", []):
        consent = parse_consent(document, at, actor, STAFF_CHANNEL)
        if consent.grantee != "*":
            await registered(consent.grantee, "agencies", "grantee")
        for category in consent.categories:
            await registered(category, "categories", "category")
        for purpose in consent.purposes:
            await registered(purpose, "purposes", "purpose")
    for document in world.get("refusals", []):
        refusal = parse_refusal(document, at, actor, STAFF_CHANNEL)
        await registered(refusal.agency, "agencies", "agency")
        for category in refusal.categories or ():
            await registered(category, "categories", "category")


def _exists(lookup: Callable[[str], Awaitable[object | None]]) -> Callable[[str], Awaitable[bool]]:
    async def exists(name: str) -> bool:
        return await lookup(name) is not None

    return exists


@click.group()
def world() -> None:
    """Worlds: agencies, keys, directory, rules and consents in one file (docs/world-files.md)."""


@world.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@store_options
@hub_key_option
@click.option(
    "--reason",
    default="world loaded",
    show_default=True,
    help=f"Why (kept in the audit record and with the policy version; at most {MAX_REASON} characters).",
)
@click.option("--replace", is_flag=True, help="Make the file's rules and groupings the whole rule set (diff first).")
@click.option("--yes", is_flag=True, help="With --replace: do not ask (needed when standard input is no terminal).")
def world_load(
    path: Path,
    state_dir: Path,
    database_url: str,
    hub_key: Path | None,
    reason: str,
    replace: bool,
    yes: bool,
) -> None:
    """Load the world file PATH (JSON or YAML) into the store, merging its rules into the rule set."""
    document, store = read_world(path), (state_dir, database_url, hub_key)
    expected = _confirmed_replacement(store, document, yes) if replace else None
    kind = "policy" if replace or touches_rules(document) else "registry"

    async def work(hub: Hub, entry: AuditEntry) -> Published | None:
        given = parse_reason(reason)
        outcome = await load_world(hub, document, str(entry.requester), given, replace=replace, expected=expected)
        edit_recorded(entry, outcome, given)
        entry.reason = given
        return outcome

    outcome = change(store, kind, work, 200, "recorded")
    click.echo(f"loaded {path}" + ("" if outcome is None else f": policy {said(outcome)}"))


def _confirmed_replacement(store: Store, document: dict[str, Any], yes: bool) -> int:
    """Show what replacing the rule set by the file's changes and have it confirmed; the version it was shown of.
    Without `--yes` it asks, and only a terminal can answer: from a pipe or a script it refuses."""
    if not states_rules(document):
        raise click.UsageError("--replace needs the file to state its rules (`rules:`, or `rules: []` for none)")

    async def plan(hub: Hub) -> tuple[RuleSet, PolicyFile]:
        policy = await world_policy(document)
        return await hub.policies.planned(policy.rules, policy.groups, merge=False)

    current, target = on_hub(store, plan)
    difference = changes(PolicyFile(list(current.rules), list(current.groups)), target)
    if unchanged(difference):
        click.echo(f"the rule set (version {current.version}) already is the file's: it stays as it is")
        return current.version
    click.echo(f"replacing the rule set (version {current.version}) by the file's changes:")
    for line in diff_lines(difference):
        click.echo(line)
    if yes:
        return current.version
    if not sys.stdin.isatty():
        raise click.ClickException("standard input is not a terminal: pass --yes to replace; nothing changed")
    if not click.confirm("Replace the rule set?", default=False):
        raise click.ClickException("not confirmed; nothing changed")
    return current.version
