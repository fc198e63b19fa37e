"""Server-side SVG charts and the figures behind them: well-formed, escaped, readable axes, and the audit's
counts turned into series."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from broker.console.charts import Series, bars, nice_ceiling, stacked_columns
from broker.console.overview import hourly, hours, ranked

SVG = "{http://www.w3.org/2000/svg}"


def test_stacked_columns_are_well_formed_and_name_themselves() -> None:
    series = [Series("delivered", "#0072b2", [1, 0, 4]), Series("refused", "#c0392b", [2, 0, 1])]
    chart = stacked_columns("hourly", "Exchanges per hour", ["09:00", "10:00", "11:00"], series)
    root = ElementTree.fromstring(str(chart))  # noqa: S314 -- the hub's own SVG
    assert root.get("role") == "img" and root.get("aria-labelledby") == "hourly-title hourly-desc"
    assert root.find(f"{SVG}title").text == "Exchanges per hour"  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").text == "8 in all; delivered 5, refused 3"  # type: ignore[union-attr]
    tooltips = [title.text for title in root.iter(f"{SVG}title")][1:]
    assert tooltips == ["09:00: 1 delivered", "09:00: 2 refused", "11:00: 4 delivered", "11:00: 1 refused"]


def test_labels_are_escaped() -> None:
    chart = bars("top", "Top <requesters>", [("<script>alert(1)</script>", 3), ("a&b", 1)], "#0072b2")
    text = str(chart)
    assert "<script>" not in text and "&lt;script&gt;" in text and "a&amp;b" in text
    ElementTree.fromstring(text)  # noqa: S314 -- the hub's own SVG


def test_bars_say_so_when_empty() -> None:
    assert "nothing in this period" in str(bars("none", "Refusals", [], "#c0392b"))


@given(st.integers(min_value=0, max_value=10**9))
def test_the_axis_top_is_a_round_number_at_or_above(value: int) -> None:
    top = nice_ceiling(value)
    assert top >= max(value, 1)
    assert str(top).lstrip("125").strip("0") == "" and top < 2.5 * max(value, 1)


def test_hourly_series_and_ranking() -> None:
    rows = [(0, "delivered", 2), (3, "refused", 1), (3, "delivered", 5), (23, "failed", 1), (24, "refused", 9)]
    series = hourly(rows, 24)
    assert [one.name for one in series] == ["delivered", "refused", "failed"]
    assert series[0].values[0] == 2 and series[0].values[3] == 5 and sum(series[1].values) == 1  # 24: out of range
    assert ranked([("b", 2), (None, 1), ("a", 2), ("c", 5)], most=3) == [("c", 5), ("a", 2), ("b", 2)]
    until = datetime(2026, 11, 23, 10, tzinfo=UTC)
    starts = hours(until, timedelta(hours=24))
    assert len(starts) == 24 and starts[0] == until - timedelta(hours=24) and starts[-1] == until - timedelta(hours=1)
