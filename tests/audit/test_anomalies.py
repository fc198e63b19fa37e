"""Anomaly detection as pure functions: each kind of finding, with the records behind it, and what must not
be reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from broker.audit.anomalies import (
    Lookup,
    Thresholds,
    days,
    detect,
    emergency_accesses,
    refusal_bursts,
    repeated_lookups,
    subject_spikes,
)

MONDAY = datetime(2026, 11, 16, tzinfo=UTC)
WEEK = (MONDAY, MONDAY + timedelta(days=7))
RULES = Thresholds()


class Log:
    """Look-ups in seq order, as an audit log would summarise them."""

    def __init__(self) -> None:
        self.lookups: list[Lookup] = []

    def add(
        self,
        at: datetime,
        requester: str = "family-benefits",
        subject: str | None = "85073003328",
        outcome: str = "delivered",
        emergency: bool = False,
    ) -> int:
        seq = len(self.lookups) + 1
        self.lookups.append(Lookup(seq, at, requester, subject, outcome, emergency))
        return seq


def usual_week(log: Log, requester: str = "family-benefits", per_day: int = 10) -> None:
    for day in range(7):
        for index in range(per_day):
            log.add(MONDAY + timedelta(days=day, hours=9, minutes=index), requester, f"{requester}-{day}-{index}")


def test_days_of_a_period() -> None:
    assert days(*WEEK) == [(MONDAY + timedelta(days=offset)).date() for offset in range(7)]
    assert days(MONDAY, MONDAY + timedelta(hours=1)) == [MONDAY.date()]


def test_a_day_far_above_the_agencys_own_median_is_a_spike() -> None:
    log = Log()
    usual_week(log)
    spike_day = MONDAY + timedelta(days=3, hours=14)
    spiked = [log.add(spike_day + timedelta(seconds=index), subject=f"x{index}") for index in range(60)]
    [finding] = subject_spikes(log.lookups, *WEEK, RULES)
    assert (finding.kind, finding.requester, finding.count) == ("subject-spike", "family-benefits", 70)
    assert set(spiked) <= set(finding.records) and len(finding.records) == 70
    assert finding.start == MONDAY + timedelta(days=3)


def test_a_busy_agency_at_its_usual_level_is_no_spike() -> None:
    log = Log()
    usual_week(log, "tax-authority", per_day=200)
    usual_week(log, "family-benefits", per_day=2)
    assert subject_spikes(log.lookups, *WEEK, RULES) == []


def test_repeated_look_ups_of_one_subject_are_no_spike_of_distinct_subjects() -> None:
    log = Log()
    for index in range(100):
        log.add(MONDAY + timedelta(minutes=index))
    assert subject_spikes(log.lookups, *WEEK, RULES) == []


def test_one_day_has_no_baseline() -> None:
    log = Log()
    for index in range(100):
        log.add(MONDAY + timedelta(seconds=index), subject=f"s{index}")
    assert subject_spikes(log.lookups, MONDAY, MONDAY + timedelta(days=1), RULES) == []


def test_a_burst_of_refusals_is_reported_once_with_its_records() -> None:
    log = Log()
    log.add(MONDAY, outcome="refused")  # alone, an hour before the burst
    burst = [log.add(MONDAY + timedelta(hours=1, seconds=30 * index), outcome="refused") for index in range(12)]
    log.add(MONDAY + timedelta(hours=1, seconds=30), requester="tax-authority", outcome="refused")
    [finding] = refusal_bursts(log.lookups, RULES)
    assert (finding.kind, finding.requester, finding.records) == ("refusal-burst", "family-benefits", tuple(burst))
    assert (finding.start, finding.end) == (MONDAY + timedelta(hours=1), MONDAY + timedelta(hours=1, seconds=330))


def test_refusals_spread_out_are_no_burst() -> None:
    log = Log()
    for index in range(30):
        log.add(MONDAY + timedelta(minutes=2 * index), outcome="refused")
    assert refusal_bursts(log.lookups, RULES) == []


def test_repeated_look_ups_of_one_subject_by_one_agency() -> None:
    log = Log()
    repeated = [log.add(MONDAY + timedelta(hours=index)) for index in range(5)]
    log.add(MONDAY + timedelta(hours=1), requester="tax-authority")
    log.add(MONDAY + timedelta(days=3))  # outside the day-long window of the others
    [finding] = repeated_lookups(log.lookups, RULES)
    assert (finding.requester, finding.subject, finding.records) == ("family-benefits", "85073003328", tuple(repeated))


def test_attempts_without_a_subject_are_no_repeated_look_ups() -> None:
    log = Log()
    for index in range(10):
        log.add(MONDAY + timedelta(minutes=index), subject=None, outcome="refused")
    assert repeated_lookups(log.lookups, RULES) == []


def test_every_emergency_access_is_reported() -> None:
    log = Log()
    log.add(MONDAY)
    first = log.add(MONDAY + timedelta(hours=1), emergency=True)
    second = log.add(MONDAY + timedelta(hours=2), requester="municipality-leuven", emergency=True, outcome="refused")
    findings = emergency_accesses(log.lookups)
    assert [(finding.kind, finding.requester, finding.records) for finding in findings] == [
        ("emergency-access", "family-benefits", (first,)),
        ("emergency-access", "municipality-leuven", (second,)),
    ]


def test_detect_reports_everything_oldest_first() -> None:
    log = Log()
    usual_week(log)
    log.add(MONDAY + timedelta(days=6), emergency=True)
    findings = detect(log.lookups, *WEEK, RULES)
    assert [finding.kind for finding in findings] == ["emergency-access"]
    assert findings[0].as_json()["records"] == [71]


@given(
    st.lists(
        st.tuples(
            st.integers(0, 7 * 24 * 60 - 1),
            st.sampled_from(["family-benefits", "tax-authority"]),
            st.sampled_from(["a", "b", "c", None]),
            st.sampled_from(["delivered", "refused", "pending"]),
            st.booleans(),
        ),
        max_size=80,
    )
)
def test_findings_only_name_records_that_fit_them(
    rows: list[tuple[int, str, str | None, str, bool]],
) -> None:
    log = Log()
    for minute, requester, subject, outcome, emergency in sorted(rows, key=lambda row: row[0]):
        log.add(MONDAY + timedelta(minutes=minute), requester, subject, outcome, emergency)
    by_seq = {lookup.seq: lookup for lookup in log.lookups}
    for finding in detect(log.lookups, *WEEK, Thresholds(burst_refusals=3, repeat_lookups=3, spike_min_subjects=2)):
        named = [by_seq[seq] for seq in finding.records]
        assert named and all(lookup.requester == finding.requester for lookup in named)
        assert all(finding.start <= lookup.at for lookup in named)
        if finding.kind == "refusal-burst":
            assert len(named) >= 3 and all(lookup.outcome == "refused" for lookup in named)
        if finding.kind == "repeated-lookup":
            assert len(named) >= 3 and all(lookup.subject == finding.subject for lookup in named)
        if finding.kind == "emergency-access":
            assert [lookup.emergency for lookup in named] == [True]
