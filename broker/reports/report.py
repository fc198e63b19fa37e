"""The subject access report as values: what the hub knows about the flows of one person's data over a period (who
asked for it, on what ground and with what outcome; their consents and refusals; reviews; change notifications),
never the data itself. `sections` lays it out as the tables every format draws, each with a plain-language
explanation for the citizen who receives it. Pure: broker/reports/gather.py reads the services.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from broker.audit.access_log import disclosed
from broker.audit.queries import moment
from broker.base import errors
from consent.matching import Consent, Refusal
from directory.references import Declaration
from directory.store import PurposeEntry

ROLES = {"privacy_officer": "privacy officer", "admin": "administrator"}  # how a decider's role reads


def period(since: str, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    """The report's period [since, until): until defaults to `now`."""
    start = moment(since, "since", now)
    end = now if until is None else moment(until, "until", now)
    if end <= start:
        raise errors.Invalid("until must be later than since")
    return start, end


def overlaps(start: datetime, end: datetime | None, since: datetime, until: datetime) -> bool:
    """Whether something in force from `start` until `end` (None: still) was in force at some time in the period."""
    return start < until and (end is None or end >= since)


def consent_end(consent: Consent) -> datetime | None:
    """When a consent stopped counting: withdrawn or expired, whichever came first; None while it lasts."""
    withdrawn = None if consent.withdrawal is None else consent.withdrawal.at
    return min((at for at in (consent.valid_until, withdrawn) if at is not None), default=None)


@dataclass(frozen=True)
class Access:
    """One attempt to reach the person's data, as the audit log recorded it."""

    at: datetime
    requester: str | None
    category: str | None
    purpose: str | None
    ground: str | None  # the deciding rule's legal basis as it stood then
    rule_id: str | None
    policy_version: int | None
    holder: str | None
    zone: str | None
    outcome: str
    reason: str | None  # why it was refused, when it was
    emergency: bool

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Access:
        """From an audit record in export form (broker/audit/log.py's `record_json`): the same names."""
        values = {field.name: record[field.name] for field in fields(cls)}
        return cls(**{**values, "at": datetime.fromisoformat(record["at"])})


@dataclass(frozen=True)
class ReviewFact:
    """A review about the person: never the officer's reason for the decision, nor who they are, only their role."""

    opened_at: datetime
    kind: str  # grey: decided before the exchange; emergency: reviewed after it
    requester: str
    category: str
    purpose: str
    rule_id: str
    policy_version: int
    justification: str | None  # the requester's, as it asked
    status: str  # pending, approved, rejected, used
    decided_at: datetime | None
    decider_role: str | None


@dataclass(frozen=True)
class Told:
    """One agency told that the person's data of a category changed (never the data)."""

    at: datetime
    holder: str  # the agency whose record changed, and that said so
    category: str
    event: str
    recipient: str
    status: str  # pending, delivered, dead
    delivered_at: datetime | None


@dataclass(frozen=True)
class Reference:
    """What the directory says of the person at the end of the period: an agency holds a kind of data about them
    (a holding), or has them as a client in some capacity (a relationship)."""

    agency: str
    kind: str  # holding, relationship
    name: str  # the category held, or the capacity
    valid_from: datetime
    valid_until: datetime | None

    @classmethod
    def of(cls, declaration: Declaration) -> Reference:
        d = declaration
        return cls(d.owner, d.kind, d.name, d.valid_from, d.valid_until)


@dataclass(frozen=True)
class SubjectReport:
    """Everything one report says, about `subject` in [since, until), as it stood at `generated_at`."""

    subject: str
    since: datetime
    until: datetime
    generated_at: datetime
    generated_by: str
    hub_url: str
    accesses: tuple[Access, ...]
    consents: tuple[Consent, ...]
    refusals: tuple[Refusal, ...]
    reviews: tuple[ReviewFact, ...]
    told: tuple[Told, ...]
    agencies: Mapping[str, str]  # id -> name, as the registry has them now
    purposes: Mapping[str, PurposeEntry]  # which are confidential, and for how long
    references: tuple[Reference, ...] = ()  # the directory's, in force at the end of the period


@dataclass(frozen=True)
class Named:
    """An agency as the report names it: its registered name and its id (its id alone when it has no name)."""

    id: str
    name: str | None

    def __str__(self) -> str:
        return self.id if not self.name else f"{self.name} ({self.id})"


Cell = str | Named


@dataclass(frozen=True)
class Column:
    key: str  # the CSV column; an agency's column has a second one, `<key>_id`
    label: str
    weight: int = 2  # its share of a PDF table's width


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    explanation: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    empty: str  # what the section says when it has no row


INTRODUCTION = (
    "This report lists everything the Crossroads hub recorded about how public agencies shared data about you "
    "during the period below. Crossroads does not keep your data: the agencies that hold it send it to the agencies "
    "that asked for it. The hub records who asked, for what, why, on what legal ground, and what happened."
)
ZONES = (
    "The zone is what the sharing rules say of such a request: white, allowed; grey, allowed only after a privacy "
    "officer looked at it; black, never allowed."
)


def header(report: SubjectReport, time: Callable[[datetime], str]) -> list[tuple[str, str]]:
    """What the report is, as (item, value) pairs before its sections (HEADER_LABELS says how each item reads)."""
    return [
        ("subject", report.subject),
        ("since", time(report.since)),
        ("until", time(report.until)),
        ("generated_at", time(report.generated_at)),
        ("generated_by", report.generated_by),
        ("hub", report.hub_url),
    ]


HEADER_LABELS = {
    "subject": "Person (national number)",
    "since": "From",
    "until": "Until (not included)",
    "generated_at": "Generated at",
    "generated_by": "Generated by",
    "hub": "Hub",
}


def sections(report: SubjectReport, time: Callable[[datetime], str]) -> list[Section]:
    """The report's tables, in the order a reader takes them; times written by `time`."""

    def agency(agency_id: str | None) -> Cell:
        if agency_id is None:
            return ""
        if agency_id == "*":
            return "any agency"
        return Named(agency_id, report.agencies.get(agency_id))

    def when(at: datetime | None) -> str:
        return "" if at is None else time(at)

    return [
        _references(report, agency, when),
        _accesses(report, agency, when),
        _consents(report, agency, when),
        _refusals(report, agency, when),
        _reviews(report, agency, when),
        _told(report, agency, when),
    ]


AgencyCell = Callable[[str | None], Cell]
When = Callable[[datetime | None], str]


def _references(report: SubjectReport, agency: AgencyCell, when: When) -> Section:
    kinds = {"holding": "holds data about you", "relationship": "has you as a client"}
    rows = tuple(
        (agency(ref.agency), kinds[ref.kind], ref.name, when(ref.valid_from), when(ref.valid_until))
        for ref in report.references
    )
    return Section(
        "reference",
        "Which agencies hold data about you, or have you as a client",
        "What the hub's directory says about you at the end of the period (it holds references, never the data): "
        "each agency that keeps a kind of data about you (category), and each that has you as a client in some "
        "capacity, with when that began and, where it is set, when it ends. Only an agency with you as a client "
        "may ask for your data, and only as the sharing rules allow.",
        (
            Column("agency", "Agency", 3),
            Column("reference", "What", 2),
            Column("name", "Category or capacity", 2),
            Column("valid_from", "From"),
            Column("valid_until", "Until"),
        ),
        rows,
        "The directory names no agency for you at the end of this period.",
    )


def _accesses(report: SubjectReport, agency: AgencyCell, when: When) -> Section:
    rows = []
    for access in report.accesses:
        purpose = report.purposes.get(access.purpose or "")
        marks = []
        if access.emergency:
            marks.append("emergency access, without consent; reviewed afterwards")
        if not disclosed(purpose, access.at, report.generated_at):
            assert purpose is not None  # noqa: S101 -- only a confidential purpose is withheld; for the type checker
            ends = (
                "with no end set"
                if purpose.embargo_days is None
                else f"until {when(access.at + timedelta(days=purpose.embargo_days))}"
            )
            marks.append(f"confidential purpose, under embargo {ends}")
        rule = "" if access.rule_id is None else f"{access.rule_id} v{access.policy_version}"
        rows.append(
            (
                when(access.at),
                agency(access.requester),
                access.category or "",
                access.purpose or "",
                access.ground or "",
                rule,
                agency(access.holder),
                access.zone or "",
                access.outcome,
                access.reason or "",
                "; ".join(marks),
            )
        )
    return Section(
        "access",
        "Who asked for your data",
        "Every time an agency asked for data about you: when, who asked, which kind of data (category), why "
        "(purpose), the legal ground of the sharing rule that decided it and which version of that rule, which "
        "agency holds the data, and what happened: delivered, refused (with the reason), or waiting for a review. "
        f"{ZONES} An emergency access was made without your consent to help you quickly and is always reviewed "
        "afterwards. Access for a confidential purpose (such as an investigation) is under embargo for a time: "
        "your own online access log shows it only once the embargo is over.",
        (
            Column("at", "When"),
            Column("requester", "Who asked", 3),
            Column("category", "Category", 3),
            Column("purpose", "Why (purpose)", 3),
            Column("ground", "On what ground", 4),
            Column("rule", "Rule"),
            Column("holder", "Holder", 3),
            Column("zone", "Zone", 1),
            Column("outcome", "Outcome"),
            Column("reason", "Reason"),
            Column("note", "Note", 3),
        ),
        tuple(rows),
        "Nobody asked for data about you in this period.",
    )


def _consents(report: SubjectReport, agency: AgencyCell, when: When) -> Section:
    rows = tuple(
        (
            when(consent.created_at),
            agency(consent.grantee),
            ", ".join(consent.categories),
            ", ".join(consent.purposes),
            f"{when(consent.valid_from)} to {when(consent.valid_until) or 'withdrawal'}",
            consent.grantor if consent.mandate is None else f"{consent.grantor} (mandate: {consent.mandate})",
            f"{consent.channel}: {consent.evidence}",
            when(None if consent.withdrawal is None else consent.withdrawal.at),
            consent.status(report.generated_at),
        )
        for consent in report.consents
    )
    return Section(
        "consent",
        "Your consents",
        "The consents you (or your legal representative) gave for an agency to receive a kind of data for a "
        "purpose, in force at some time in the period: when each was given, how it was recorded, how long it is "
        "valid, and when it was withdrawn. Some sharing needs your consent; sharing that a law requires does not.",
        (
            Column("at", "Given"),
            Column("agency", "To whom", 3),
            Column("category", "Categories"),
            Column("purpose", "Purposes"),
            Column("valid", "Valid", 3),
            Column("given_by", "Given by"),
            Column("evidence", "How it was recorded", 3),
            Column("ended_at", "Withdrawn"),
            Column("status", "Status now"),
        ),
        rows,
        "No consent was in force in this period.",
    )


def _refusals(report: SubjectReport, agency: AgencyCell, when: When) -> Section:
    rows = tuple(
        (
            when(refusal.created_at),
            agency(refusal.agency),
            "everything" if refusal.categories is None else ", ".join(refusal.categories),
            refusal.channel,
            when(None if refusal.lift is None else refusal.lift.at),
            refusal.status(report.generated_at),
        )
        for refusal in report.refusals
    )
    return Section(
        "refusal",
        "Your refusals",
        "The agencies you refused to let have your data, in force at some time in the period, and when a refusal "
        "was lifted. A refusal stops sharing that relies on your consent, but not sharing that a law requires.",
        (
            Column("at", "Recorded"),
            Column("agency", "Agency refused", 3),
            Column("category", "Categories"),
            Column("channel", "How it was recorded"),
            Column("ended_at", "Lifted"),
            Column("status", "Status now"),
        ),
        rows,
        "No refusal was in force in this period.",
    )


def _reviews(report: SubjectReport, agency: AgencyCell, when: When) -> Section:
    kinds = {"grey": "before sharing (grey zone)", "emergency": "after an emergency access"}
    rows = tuple(
        (
            when(review.opened_at),
            kinds.get(review.kind, review.kind),
            agency(review.requester),
            review.category,
            review.purpose,
            f"{review.rule_id} v{review.policy_version}",
            review.justification or "",
            review.status,
            when(review.decided_at),
            "" if review.decider_role is None else ROLES.get(review.decider_role, review.decider_role),
        )
        for review in report.reviews
    )
    return Section(
        "review",
        "Reviews by a privacy officer",
        "Some requests are looked at by a privacy officer: before the data is shared (grey zone), or after an "
        "emergency access. Each review about you open at some time in the period: who asked, for what and why, "
        "its status (pending, approved, rejected, or used: approved and then shared once), and when it was decided, "
        "by whom (their role).",
        (
            Column("at", "Opened"),
            Column("kind", "Review"),
            Column("requester", "Who asked", 3),
            Column("category", "Category", 3),
            Column("purpose", "Why (purpose)", 3),
            Column("rule", "Rule"),
            Column("justification", "Their reason", 3),
            Column("status", "Status"),
            Column("decided_at", "Decided"),
            Column("decided_by", "Decided by"),
        ),
        rows,
        "No review about you was open in this period.",
    )


def _told(report: SubjectReport, agency: AgencyCell, when: When) -> Section:
    statuses = {"delivered": "told", "pending": "being told", "dead": "not reached"}
    rows = tuple(
        (
            when(told.at),
            agency(told.holder),
            told.category,
            told.event,
            agency(told.recipient),
            statuses.get(told.status, told.status),
            when(told.delivered_at),
        )
        for told in report.told
    )
    return Section(
        "notification",
        "Agencies told that your data changed",
        "When an agency that holds data about you says it changed, the hub tells the agencies that have you as a "
        "client and may hear about that kind of data: only that it changed, never the data. Each agency told in "
        "the period, and whether the message reached it.",
        (
            Column("at", "When"),
            Column("holder", "Changed at", 3),
            Column("category", "Category"),
            Column("event", "Change"),
            Column("recipient", "Agency told", 3),
            Column("status", "Delivery"),
            Column("delivered_at", "Reached at"),
        ),
        rows,
        "No agency was told of a change to your data in this period.",
    )
