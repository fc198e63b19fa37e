"""Sharing rules as values: parsing the CSV form, specificity order, and the decision they lead to.

Pure functions only; the Casbin matching lives in policies/service.py.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from broker.base.csv_cells import neutralised, restored

ZONES = ("black", "grey", "white")  # in precedence order: the first zone with a matching rule decides
CSV_COLUMNS = ("id", "requester", "category", "purpose", "zone", "consent", "fields", "emergency", "ground")
MAX_GROUND = 500  # characters of a rule's ground: a statute's, decree's or deliberation's reference and title
# The ground read for a white or grey rule made before rules carried one (migration 0009_rule_ground).
GROUND_NOT_RECORDED = "not recorded (rule made before grounds were required)"


@dataclass(frozen=True)
class Rule:
    id: str
    requester: str
    category: str
    purpose: str
    zone: str
    consent: bool = False
    fields: tuple[str, ...] | None = None
    emergency: bool = False
    ground: str | None = None  # the legal basis of the sharing; required of white and grey rules (parse_rule)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fields"] = None if self.fields is None else list(self.fields)
        return data


@dataclass(frozen=True)
class Decision:
    """The zone a request falls in, and what the deciding rule asks for; `rule` is None for default black."""

    zone: str
    rule: Rule | None
    version: int

    @property
    def consent(self) -> bool:
        return self.rule is not None and self.rule.consent

    @property
    def fields(self) -> tuple[str, ...] | None:
        return None if self.rule is None else self.rule.fields


def specificity(rule: Rule) -> tuple[int, int, int]:
    """Higher is more specific: a named agency over a role, a category over a group over `*`, a purpose over `*`."""
    requester = 2 if rule.requester.startswith("agency:") else 1
    category = 0 if rule.category == "*" else 2
    purpose = 0 if rule.purpose == "*" else 1
    return requester, category, purpose


def most_specific_first(rules: Iterable[Rule]) -> list[Rule]:
    return sorted(rules, key=lambda rule: (tuple(-part for part in specificity(rule)), rule.id))


def minimise(data: dict[str, Any], fields: tuple[str, ...] | None) -> dict[str, Any]:
    """Keep only the fields a rule lets this purpose see; None keeps the whole answer."""
    if fields is None:
        return data
    return {name: value for name, value in data.items() if name in fields}


class RuleInvalid(ValueError):
    pass


RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
REQUESTER = re.compile(r"(agency|role):[a-z0-9][a-z0-9-]{0,62}")
NAME_OR_ANY = re.compile(r"\*|[a-z0-9][a-z0-9-]{0,62}")
RULE_FIELDS = {"id", "requester", "category", "purpose", "zone", "consent", "fields", "emergency", "ground"}


def _name_or_any(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not NAME_OR_ANY.fullmatch(value):
        raise RuleInvalid(f"{field} must be a registered name or *")
    return value


UNASSIGNED = ""  # the id of a rule being added without one, until the policy service assigns it


def parse_rule(data: object, *, new: bool = False) -> Rule:
    """A rule from its JSON form (PROTOCOL.md), refusing anything that could not be enforced as written. A `new`
    rule (one being added) may leave out its id (or give null): it then has the id UNASSIGNED."""
    if not isinstance(data, dict):
        raise RuleInvalid("a rule is a JSON object")
    unknown = sorted(set(data) - RULE_FIELDS)
    if unknown:
        raise RuleInvalid(f"unknown rule fields: {', '.join(unknown)}")
    rule_id, requester, zone = (data.get(name) for name in ("id", "requester", "zone"))
    if new and rule_id is None:
        rule_id = UNASSIGNED
    elif not isinstance(rule_id, str) or not RULE_ID.fullmatch(rule_id) or rule_id in GROUP_KINDS:
        raise RuleInvalid("id must be 1 to 63 characters of [A-Za-z0-9._-]")
    if not isinstance(requester, str) or not REQUESTER.fullmatch(requester):
        raise RuleInvalid("requester must be agency:<id> or role:<name>")
    category, purpose = _name_or_any(data, "category"), _name_or_any(data, "purpose")
    if not isinstance(zone, str) or zone not in ZONES:
        raise RuleInvalid("zone must be white, grey or black")
    fields = data.get("fields")
    if fields is not None and (
        not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f and "|" not in f for f in fields)
    ):
        raise RuleInvalid("fields must be null (the whole answer) or a non-empty list of field names")
    for flag in ("consent", "emergency"):
        if not isinstance(data.get(flag, False), bool):
            raise RuleInvalid(f"{flag} must be true or false")
    ground = _ground(data.get("ground"), zone)
    return Rule(
        rule_id,
        requester,
        category,
        purpose,
        zone,
        data.get("consent", False),
        None if fields is None else tuple(fields),
        data.get("emergency", False),
        ground,
    )


def _ground(value: object, zone: str) -> str | None:
    """A rule's ground: printable text of 1 to MAX_GROUND characters, required unless the rule blacks out."""
    if value is None and zone == "black":
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_GROUND or not value.isprintable():
        needed = "" if zone == "black" else f"; a {zone} rule needs one"
        raise RuleInvalid(
            "ground must be the legal basis of the sharing (a statute, decree or committee deliberation), "
            f"printable text of 1 to {MAX_GROUND} characters{needed}"
        )
    return value.strip()


def stored_rule(data: object) -> Rule:
    """A rule as a published version or a proposal recorded it: one recorded before rules carried a ground reads
    with GROUND_NOT_RECORDED, as the migration gave the current rules."""
    if isinstance(data, dict) and data.get("ground") is None and data.get("zone") in ("white", "grey"):
        data = {**data, "ground": GROUND_NOT_RECORDED}
    return parse_rule(data)


GROUP_KINDS = ("g", "g2")  # g: agency → role; g2: category → category group


@dataclass(frozen=True)
class PolicyFile:
    """A rule set as a file holds it: rules, and the role and category groupings they refer to."""

    rules: list[Rule]
    groups: list[tuple[str, str, str]]


def parse_csv(text: str) -> PolicyFile:
    """Rule lines `id, requester, category, purpose, zone, consent, fields, emergency, ground` and grouping lines
    `g, agency:<id>, role:<name>` or `g2, <category>, <category group>`; `#` starts a comment line. A rule line
    of a file written before rules carried a ground has no `ground` column: its white and grey rules are then
    refused for want of one, as any rule without a ground is."""
    rules, groups = [], []
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for number, row in enumerate(csv.reader(lines, skipinitialspace=True), start=1):
        cells = [restored(cell.strip()) for cell in row]
        if cells and cells[0] in GROUP_KINDS and len(cells) == 3:
            groups.append((cells[0], cells[1], cells[2]))
            continue
        if len(cells) not in (len(CSV_COLUMNS) - 1, len(CSV_COLUMNS)):
            raise RuleInvalid(f"line {number}: a rule needs {len(CSV_COLUMNS)} columns: {', '.join(CSV_COLUMNS)}")
        data: dict[str, Any] = dict(zip(CSV_COLUMNS, cells, strict=False))
        data["ground"] = data.get("ground") or None
        try:
            data["consent"], data["emergency"] = _flag(data["consent"]), _flag(data["emergency"])
        except ValueError as error:
            raise RuleInvalid(f"line {number}: {error}") from error
        data["fields"] = data["fields"].split("|") if data["fields"] else None
        try:
            rules.append(parse_rule(data))
        except RuleInvalid as error:
            raise RuleInvalid(f"line {number}: {error}") from error
    return PolicyFile(rules, groups)


def to_csv(policy: PolicyFile) -> str:
    """The rule set as `parse_csv` reads it, each cell safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for rule in policy.rules:
        writer.writerow(
            map(
                neutralised,
                [
                    rule.id,
                    rule.requester,
                    rule.category,
                    rule.purpose,
                    rule.zone,
                    str(rule.consent).lower(),
                    "" if rule.fields is None else "|".join(rule.fields),
                    str(rule.emergency).lower(),
                    rule.ground or "",
                ],
            )
        )
    for group in policy.groups:
        writer.writerow(map(neutralised, group))
    return out.getvalue()


def fresh_rule_id(taken: Collection[str]) -> str:
    """An id for a rule added without one: `r-` and eight random hex digits, none of `taken`. Random rather than
    the next number, so that the id of a removed rule is (all but) never given again: in history, one id names one
    rule."""
    while True:
        rule_id = f"r-{secrets.token_hex(4)}"
        if rule_id not in taken:
            return rule_id


Group = tuple[str, str, str]  # (kind, member, group)


def group_json(group: Group) -> dict[str, str]:
    kind, member, name = group
    return {"kind": kind, "member": member, "group": name}


def distinct_ids(rules: Iterable[Rule]) -> list[Rule]:
    """The rules, refusing two with one id (one of them would silently be lost)."""
    listed, seen = list(rules), set()
    for rule in listed:
        if rule.id in seen:
            raise RuleInvalid(f"rule id {rule.id!r} is given twice")
        seen.add(rule.id)
    return listed


def merged(current: PolicyFile, rules: Iterable[Rule], groups: Iterable[Group]) -> PolicyFile:
    """`current` with `rules` added (a rule with the id of a current one replaces it in place) and `groups`
    added: nothing of `current` is removed."""
    incoming = {rule.id: rule for rule in distinct_ids(rules)}
    kept = [incoming.pop(rule.id, rule) for rule in current.rules]
    return PolicyFile([*kept, *incoming.values()], unique_groups([*current.groups, *groups]))


def unique_groups(groups: Iterable[Group]) -> list[Group]:
    """Each grouping once, in the order first given."""
    return list(dict.fromkeys(groups))


def diff(before: Iterable[Rule], after: Iterable[Rule]) -> dict[str, list[dict[str, Any]]]:
    """What a new version changed: rules added, removed, and changed (by id, with both forms)."""
    old, new = {rule.id: rule for rule in before}, {rule.id: rule for rule in after}
    return {
        "added": [new[rule_id].as_json() for rule_id in sorted(new.keys() - old.keys())],
        "removed": [old[rule_id].as_json() for rule_id in sorted(old.keys() - new.keys())],
        "changed": [
            {"before": old[rule_id].as_json(), "after": new[rule_id].as_json()}
            for rule_id in sorted(old.keys() & new.keys())
            if old[rule_id] != new[rule_id]
        ],
    }


def groups_diff(before: Iterable[Group], after: Iterable[Group]) -> dict[str, list[dict[str, str]]]:
    """What a new version changed in the role and category groupings: those added and those removed."""
    old, new = set(before), set(after)
    return {
        "groups_added": [group_json(group) for group in sorted(new - old)],
        "groups_removed": [group_json(group) for group in sorted(old - new)],
    }


def changes(before: PolicyFile, after: PolicyFile) -> dict[str, list[dict[str, Any]]]:
    """Everything a new version changes: rules added, removed and changed, groupings added and removed."""
    return {**diff(before.rules, after.rules), **groups_diff(before.groups, after.groups)}


def unchanged(difference: dict[str, list[dict[str, Any]]]) -> bool:
    return not any(difference.values())


def _flag(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, got {value!r}")
    return value.lower() == "true"
