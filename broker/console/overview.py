"""The console's first page: the last day's exchanges in three charts (per hour by outcome, refusals by
reason, top requesters by agency name), counted by the audit log's store and drawn as inline SVG. Attempts
refused before authentication name no requester: they are counted apart, not ranked among the agencies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from broker.appkeys import HUB
from broker.console.charts import Series, bars, stacked_columns
from broker.console.pages import AGENCY_NAMES, page

PERIOD = timedelta(hours=24)
HOUR = timedelta(hours=1)
TOP = 10
# Outcomes in stacking order, each with a colour of at least 3:1 contrast on white (WCAG's non-text minimum).
OUTCOMES = {
    "delivered": "#0072b2",
    "pending": "#8a6100",
    "refused": "#c0392b",
    "failed": "#6a3d9a",
    "forwarding": "#5f6b7a",
    "abandoned": "#3d3d3d",
}
REFUSAL_COLOR, REQUESTER_COLOR = "#c0392b", "#0072b2"


def hours(until: datetime, period: timedelta) -> list[datetime]:
    """The starts of the hours in the period ending at `until` (an hour boundary)."""
    return [until - period + HOUR * index for index in range(int(period / HOUR))]


def hourly(rows: Sequence[tuple[Any, ...]], slots: int) -> list[Series]:
    """Series per outcome from (slice, outcome, count) rows; outcomes nobody had are left out."""
    counts: dict[str, list[int]] = {}
    for index, outcome, count in rows:
        if 0 <= index < slots:
            counts.setdefault(outcome, [0] * slots)[index] += count
    known = [name for name in OUTCOMES if name in counts]
    others = sorted(set(counts) - set(OUTCOMES))
    return [Series(name, OUTCOMES.get(name, "#3d3d3d"), counts[name]) for name in known + others]


def ranked(rows: Sequence[tuple[Any, ...]], most: int = TOP) -> list[tuple[str, int]]:
    """(label, count) rows, largest first, at most `most`; a missing label reads `none`."""
    totals: dict[str, int] = {}
    for label, count in rows:
        totals[label or "none"] = totals.get(label or "none", 0) + count
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:most]


def requesters(rows: Sequence[tuple[Any, ...]], most: int = TOP) -> tuple[list[tuple[str, int]], int]:
    """The top requesters from (requester, count) rows, and how many attempts named none (refused before
    authentication: no agency is known to have made them)."""
    unauthenticated = sum(count for requester, count in rows if not requester)
    return ranked([(requester, count) for requester, count in rows if requester], most), unauthenticated


def named(items: Sequence[tuple[str, int]], names: Mapping[str, str]) -> list[tuple[str, int]]:
    """Bars labelled with the agencies' registered names (an id the registry does not know, as it is)."""
    return [(names.get(agency_id, agency_id), count) for agency_id, count in items]


async def home(request: web.Request) -> web.Response:
    audit = request.config_dict[HUB].audit
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + HOUR
    since = until - PERIOD
    exchanges = {"kind": "exchange"}
    per_hour = hourly(await audit.tally(since, until, ("outcome",), exchanges, HOUR), int(PERIOD / HOUR))
    refusals = ranked(await audit.tally(since, until, ("reason",), {**exchanges, "outcome": "refused"}))
    top, unauthenticated = requesters(await audit.tally(since, until, ("requester",), exchanges))
    labels = [f"{start:%H}:00" for start in hours(until, PERIOD)]
    return page(
        request,
        "home.html",
        {
            "since": since,
            "until": until,
            "labels": labels,
            "per_hour": per_hour,
            "refusals": refusals,
            "requesters": top,
            "unauthenticated": unauthenticated,
            "charts": {
                "per_hour": stacked_columns("per-hour", "Exchanges per hour by outcome (UTC)", labels, per_hour),
                "refusals": bars("refusals", "Refusals by reason", refusals, REFUSAL_COLOR),
                "requesters": bars(
                    "requesters", f"Top {TOP} requesters", named(top, request[AGENCY_NAMES]), REQUESTER_COLOR
                ),
            },
        },
    )


async def to_home(request: web.Request) -> web.Response:
    """`/console` itself: the console starts at `/console/`."""
    return web.Response(status=308, headers={"Location": "/console/"})


ROUTES = [web.get("/", home, name="overview")]
