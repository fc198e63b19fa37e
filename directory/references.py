"""Directory references as the agencies that know them declare them: reading a declaration (one call's body or
one line of an import) into a `Declaration`, and from the declarations stored, what each reference is now or was
at any moment. Pure functions of their inputs; the store (directory/store.py) does the reading and writing."""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from directory.names import NAME, SUBJECT

Kind = Literal["relationship", "holding"]
KINDS: tuple[Kind, ...] = ("relationship", "holding")
NAMED_BY: dict[Kind, str] = {"relationship": "capacity", "holding": "category"}  # what a reference is about
FIELDS = {"subject", "from", "until"}
CALL_FIELDS = {kind: frozenset({*FIELDS, NAMED_BY[kind]}) for kind in KINDS}  # a call's body
LINE_FIELDS = {kind: frozenset({*FIELDS, NAMED_BY[kind], "kind"}) for kind in KINDS}  # an import's line


class DeclarationInvalid(ValueError):
    """A declaration that cannot be stored as written; the message says why."""


@dataclass(frozen=True)
class Declaration:
    """`owner` has `subject` as a client in capacity `name` (a relationship), or holds category `name` for
    `subject` (a holding), from `valid_from` until `valid_until` (open-ended: None)."""

    kind: Kind
    owner: str
    subject: str
    name: str
    valid_from: datetime
    valid_until: datetime | None = None

    @property
    def reference(self) -> tuple[Kind, str, str, str, datetime]:
        """What names the reference: declaring it again with another end changes that reference."""
        return self.kind, self.owner, self.subject, self.name, self.valid_from

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "agency": self.owner,
            "subject": self.subject,
            NAMED_BY[self.kind]: self.name,
            "from": rfc3339(self.valid_from),
            "until": None if self.valid_until is None else rfc3339(self.valid_until),
        }


@dataclass(frozen=True)
class Stated:
    """A declaration as stored: when the hub recorded it and on whose word."""

    declaration: Declaration
    declared_at: datetime
    declared_by: str


def parse_declaration(document: object, owner: str, kind: Kind | None = None) -> Declaration:
    """The declaration `owner` makes in `document`: a call's body of the given `kind`, or with `kind` None an
    import's line, which names its kind (`{"kind": "relationship", ...}`)."""
    if not isinstance(document, dict):
        raise DeclarationInvalid("a reference is a JSON object")
    allowed = CALL_FIELDS if kind is not None else LINE_FIELDS
    if kind is None:
        kind = document.get("kind")
        if kind not in KINDS:
            raise DeclarationInvalid('kind must be "relationship" or "holding"')
    named_by = NAMED_BY[kind]
    if not allowed[kind].issuperset(document):
        unknown = ", ".join(sorted(set(document) - allowed[kind]))
        raise DeclarationInvalid(f"unknown fields for a {kind}: {unknown}")
    subject, name = document.get("subject"), document.get(named_by)
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise DeclarationInvalid("subject must be 1 to 64 characters of [0-9A-Za-z.-]")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise DeclarationInvalid(f"{named_by} must be a name of [a-z0-9-], at most 63 characters")
    valid_from = parse_moment(document.get("from"), "from")
    if valid_from is None:
        raise DeclarationInvalid("from is required: when the reference starts (RFC 3339 with offset)")
    valid_until = parse_moment(document.get("until"), "until")
    if valid_until is not None and valid_until <= valid_from:
        raise DeclarationInvalid("until must be later than from: a period cannot end before it starts")
    return Declaration(kind, owner, subject, name, valid_from, valid_until)


def refusal(declaration: Declaration, agencies: Set[str], names: Set[str]) -> str | None:
    """Why the directory does not take `declaration` while `agencies` are the active registered agencies and
    `names` the registered categories (holdings) or capacities (relationships) -- None when it does. The subject
    and the period are checked again for declarations not read by `parse_declaration`: one the store cannot hold
    would fail its whole batch."""
    named_by = NAMED_BY[declaration.kind]
    if declaration.owner not in agencies:
        return f"agency {declaration.owner!r} is not an active registered agency"
    if not SUBJECT.fullmatch(declaration.subject):
        return "subject must be 1 to 64 characters of [0-9A-Za-z.-]"
    if declaration.name not in names:
        return f"{named_by} {declaration.name!r} is not registered"
    if declaration.valid_until is not None and declaration.valid_until <= declaration.valid_from:
        return "until must be later than from: a period cannot end before it starts"
    return None


def standing(stated: Iterable[Stated], as_of: datetime | None = None) -> list[Stated]:
    """The newest declaration of each reference, among those recorded by `as_of` (all of them with None), in
    the order given (the order the hub recorded them): what the directory said of each reference then."""
    newest: dict[tuple[Kind, str, str, str, datetime], Stated] = {}
    for item in stated:
        if as_of is None or item.declared_at <= as_of:
            newest[item.declaration.reference] = item
    return list(newest.values())


def in_force(declaration: Declaration, at: datetime) -> bool:
    """Whether the reference holds at `at`: from its start (included) to its end (excluded)."""
    return declaration.valid_from <= at and (declaration.valid_until is None or at < declaration.valid_until)


def parse_moment(value: object, name: str) -> datetime | None:
    """`value`, an RFC 3339 date-time with an offset (or None), as a UTC datetime; `name` says what it is."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise DeclarationInvalid(f"{name} must be an RFC 3339 date-time with offset, e.g. 2026-11-23T10:00:00Z")
    try:
        return _utc(value)
    except _NoOffset as error:
        raise DeclarationInvalid(f"{name} needs a time zone offset") from error
    except OverflowError as error:  # e.g. year 1 at +14:00 lies before the first representable instant
        raise DeclarationInvalid(f"{name} is out of range") from error
    except ValueError as error:
        raise DeclarationInvalid(f"{name} must be an RFC 3339 date-time with offset") from error


class _NoOffset(Exception):
    pass


@lru_cache(maxsize=4096)
def _utc(value: str) -> datetime:
    """An RFC 3339 date-time as UTC, remembered: the lines of an import repeat a handful of moments."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise _NoOffset
    return moment.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """A moment as the directory's answers write it: RFC 3339, UTC as `Z`."""
    return moment.isoformat().replace("+00:00", "Z")
