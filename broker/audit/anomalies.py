"""Signs of abuse in the audit log, as pure functions over summaries of exchange attempts: agencies looking
up far more distinct subjects than they usually do, bursts of refusals, one agency looking up one subject
again and again, and emergency accesses. Each finding names the records behind it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from broker.audit.chain import timestamp

ANOMALY_PERIOD = timedelta(days=7)  # what a report looks at when it names no start
MAX_LOOKUPS = 200_000  # exchange attempts one report served to an officer reads at most

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Lookup:
    """What anomaly detection needs of one exchange attempt's audit record."""

    seq: int
    at: datetime
    requester: str
    subject: str | None
    outcome: str
    emergency: bool


@dataclass(frozen=True)
class Thresholds:
    spike_factor: float = 3.0  # a day with more than this times the agency's median day is a spike...
    spike_min_subjects: int = 20  # ...if it also reaches this many distinct subjects
    burst_window: timedelta = timedelta(minutes=10)
    burst_refusals: int = 10  # refusals of one agency within burst_window
    repeat_window: timedelta = timedelta(days=1)
    repeat_lookups: int = 5  # look-ups of one subject by one agency within repeat_window


@dataclass(frozen=True)
class Finding:
    kind: str  # subject-spike, refusal-burst, repeated-lookup, emergency-access
    requester: str
    subject: str | None
    start: datetime
    end: datetime
    count: int
    detail: str
    records: tuple[int, ...]  # the seqs of the audit records behind the finding

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "requester": self.requester,
            "subject": self.subject,
            "from": timestamp(self.start),
            "until": timestamp(self.end),
            "count": self.count,
            "detail": self.detail,
            "records": list(self.records),
        }


def detect(lookups: Sequence[Lookup], since: datetime, until: datetime, thresholds: Thresholds) -> list[Finding]:
    """Every finding over look-ups made in [since, until), oldest first."""
    findings = [
        *subject_spikes(lookups, since, until, thresholds),
        *refusal_bursts(lookups, thresholds),
        *repeated_lookups(lookups, thresholds),
        *emergency_accesses(lookups),
    ]
    return sorted(findings, key=lambda finding: (finding.start, finding.kind, finding.requester))


def days(since: datetime, until: datetime) -> list[date]:
    """The UTC days that [since, until) touches."""
    first, last = since.astimezone(UTC).date(), (until - timedelta(microseconds=1)).astimezone(UTC).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def subject_spikes(
    lookups: Iterable[Lookup], since: datetime, until: datetime, thresholds: Thresholds
) -> list[Finding]:
    """Days on which an agency looked up far more distinct subjects than on its median other day."""
    period = days(since, until)
    if len(period) < 2:
        return []
    by_day: dict[str, dict[date, list[Lookup]]] = defaultdict(lambda: defaultdict(list))
    for lookup in lookups:
        by_day[lookup.requester][lookup.at.astimezone(UTC).date()].append(lookup)
    findings = []
    for requester, per_day in by_day.items():
        counts = {day: len({lookup.subject for lookup in per_day.get(day, [])}) for day in period}
        for day, made in per_day.items():
            baseline = statistics.median(count for other, count in counts.items() if other != day)
            distinct = counts.get(day, 0)
            if distinct >= thresholds.spike_min_subjects and distinct > thresholds.spike_factor * max(baseline, 1):
                start = datetime.combine(day, time(), UTC)
                findings.append(
                    Finding(
                        "subject-spike",
                        requester,
                        None,
                        start,
                        start + timedelta(days=1),
                        distinct,
                        f"{requester} looked up {distinct} distinct subjects on {day.isoformat()}, against a median "
                        f"of {baseline:g} a day",
                        tuple(sorted(lookup.seq for lookup in made)),
                    )
                )
    return findings


def refusal_bursts(lookups: Iterable[Lookup], thresholds: Thresholds) -> list[Finding]:
    """Runs of an agency's refused attempts, at least `burst_refusals` of them within `burst_window`."""
    refused = _grouped((lookup for lookup in lookups if lookup.outcome == "refused"), lambda lookup: lookup.requester)
    findings = []
    for requester, attempts in refused.items():
        for run in _dense_runs(attempts, thresholds.burst_window, thresholds.burst_refusals):
            findings.append(
                _run_finding(
                    "refusal-burst",
                    requester,
                    None,
                    run,
                    f"{requester} was refused {len(run)} times between {timestamp(run[0].at)} and "
                    f"{timestamp(run[-1].at)}",
                )
            )
    return findings


def repeated_lookups(lookups: Iterable[Lookup], thresholds: Thresholds) -> list[Finding]:
    """An agency looking up the same subject at least `repeat_lookups` times within `repeat_window`."""
    pairs = _grouped(
        (lookup for lookup in lookups if lookup.subject is not None), lambda lookup: (lookup.requester, lookup.subject)
    )
    findings = []
    for (requester, subject), attempts in pairs.items():
        for run in _dense_runs(attempts, thresholds.repeat_window, thresholds.repeat_lookups):
            findings.append(
                _run_finding(
                    "repeated-lookup",
                    requester,
                    subject,
                    run,
                    f"{requester} looked up {subject} {len(run)} times between {timestamp(run[0].at)} and "
                    f"{timestamp(run[-1].at)}",
                )
            )
    return findings


def emergency_accesses(lookups: Iterable[Lookup]) -> list[Finding]:
    """Every emergency ("break the glass") access: each is a case for a privacy officer to look at."""
    return [
        _run_finding(
            "emergency-access",
            lookup.requester,
            lookup.subject,
            [lookup],
            f"{lookup.requester} used emergency access for {lookup.subject} ({lookup.outcome})",
        )
        for lookup in lookups
        if lookup.emergency
    ]


def _grouped(lookups: Iterable[Lookup], key: Callable[[Lookup], Key]) -> dict[Key, list[Lookup]]:
    groups: dict[Key, list[Lookup]] = defaultdict(list)
    for lookup in lookups:
        groups[key(lookup)].append(lookup)
    for group in groups.values():
        group.sort(key=lambda lookup: (lookup.at, lookup.seq))
    return groups


def _dense_runs(attempts: Sequence[Lookup], window: timedelta, least: int) -> list[list[Lookup]]:
    """Maximal runs of time-ordered attempts in which every attempt lies in some window of `window` that
    holds at least `least` attempts; overlapping windows merge into one run."""
    marked = [False] * len(attempts)
    start, unmarked = 0, 0
    for end, attempt in enumerate(attempts):
        while attempt.at - attempts[start].at > window:
            start += 1
        if end - start + 1 >= least:
            for index in range(max(start, unmarked), end + 1):
                marked[index] = True
            unmarked = end + 1
    runs: list[list[Lookup]] = []
    for index, attempt in enumerate(attempts):
        if marked[index]:
            if index > 0 and marked[index - 1]:
                runs[-1].append(attempt)
            else:
                runs.append([attempt])
    return runs


def _run_finding(kind: str, requester: str, subject: str | None, run: Sequence[Lookup], detail: str) -> Finding:
    return Finding(
        kind,
        requester,
        subject,
        run[0].at,
        run[-1].at,
        len(run),
        detail,
        tuple(lookup.seq for lookup in run),
    )
