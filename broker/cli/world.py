"""Loading a world file (JSON or YAML): agencies and their keys, operators, categories, purposes,
holdings, relationships, role memberships, sharing rules, consents and refusals, each through its own service.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from broker.hub import Hub
from policies.rules import PolicyFile, parse_csv, parse_rule


def read_world(path: Path) -> dict[str, Any]:
    text = path.read_text()
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(document, dict):
        raise SystemExit(f"{path}: a world file is a mapping")
    return document


async def load_world(hub: Hub, world: dict[str, Any], actor: str, reason: str) -> None:
    at = datetime.now(UTC)
    await hub.directory.load(world, at)
    if "rules" in world or "rules_csv" in world:
        rules_csv = Path(world["rules_csv"]) if "rules_csv" in world else None
        policy = parse_csv(await asyncio.to_thread(rules_csv.read_text)) if rules_csv else PolicyFile([], [])
        rules = [parse_rule(rule) for rule in world.get("rules", [])] + policy.rules
        groups = [
            ("g", f"agency:{agency['id']}", f"role:{role}")
            for agency in world.get("agencies", [])
            for role in agency.get("roles", [])
        ]
        groups += [
            ("g2", category, group)
            for group, members in world.get("category_groups", {}).items()
            for category in members
        ]
        await hub.policies.replace(rules, groups + policy.groups, actor, reason, at)
    for consent in world.get("consents", []):
        await hub.consents.give(consent, actor, at)
    for refusal in world.get("refusals", []):
        await hub.consents.refuse(refusal, actor, at)
