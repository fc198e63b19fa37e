"""Sharing rules as values: parsing the CSV form, specificity order, and the decision they lead to.

Pure functions only; the Casbin matching lives in policies/service.py.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

ZONES = ("black", "grey", "white")  # in precedence order: the first zone with a matching rule decides
CSV_COLUMNS = ("id", "requester", "category", "purpose", "zone", "consent", "fields", "emergency")


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

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fields"] = None if self.fields is None else list(self.fields)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rule:
        fields = data.get("fields")
        return cls(
            id=str(data["id"]),
            requester=str(data["requester"]),
            category=str(data["category"]),
            purpose=str(data["purpose"]),
            zone=str(data["zone"]),
            consent=bool(data.get("consent", False)),
            fields=None if fields is None else tuple(str(name) for name in fields),
            emergency=bool(data.get("emergency", False)),
        )


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


def parse_csv(text: str) -> list[Rule]:
    """Rules from CSV lines `id, requester, category, purpose, zone, consent, fields, emergency`."""
    rules = []
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for row in csv.reader(lines, skipinitialspace=True):
        cells = [cell.strip() for cell in row]
        if len(cells) != len(CSV_COLUMNS):
            raise ValueError(f"a rule needs {len(CSV_COLUMNS)} columns: {', '.join(CSV_COLUMNS)}")
        rule_id, requester, category, purpose, zone, consent, fields, emergency = cells
        rules.append(
            Rule(
                rule_id,
                requester,
                category,
                purpose,
                zone,
                _flag(consent),
                tuple(fields.split("|")) if fields else None,
                _flag(emergency),
            )
        )
    return rules


def to_csv(rules: Iterable[Rule]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for rule in rules:
        writer.writerow(
            [
                rule.id,
                rule.requester,
                rule.category,
                rule.purpose,
                rule.zone,
                str(rule.consent).lower(),
                "" if rule.fields is None else "|".join(rule.fields),
                str(rule.emergency).lower(),
            ]
        )
    return out.getvalue()


def _flag(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, got {value!r}")
    return value.lower() == "true"
