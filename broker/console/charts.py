"""Charts drawn on the server as inline SVG, so the console needs no script and no asset from elsewhere:
stacked columns (exchanges per hour by outcome) and horizontal bars (refusals by reason, top requesters).
Pure functions of the numbers; every text is escaped; each chart names itself for screen readers, and every
bar carries a tooltip with its exact figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

INK, GRID, MUTED = "#1a1a1a", "#d0d0d0", "#4d4d4d"
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    values: Sequence[int]


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 times a power of ten at or above `value` (at least 1): a readable axis top."""
    top = 1
    while True:
        for factor in (1, 2, 5):
            if factor * top >= value:
                return factor * top
        top *= 10


def _frame(chart_id: str, title: str, description: str, width: int, height: int, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" {FONT}>'
        f'<title id="{chart_id}-title">{escape(title)}</title><desc id="{chart_id}-desc">{escape(description)}</desc>'
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 -- drawn here, every text in it escaped above


def stacked_columns(
    chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series], *, label_every: int = 3
) -> Markup:
    """One column per label, its series stacked bottom-up in the order given, with a legend above."""
    width, height, left, right, top, bottom = 720, 260, 44, 8, 34, 26
    totals = [sum(one.values[index] for one in series) for index in range(len(labels))]
    ceiling = nice_ceiling(max(totals, default=0))
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / max(len(labels), 1)
    body = _legend(series, left, 14)
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        value = ceiling * fraction
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}">{value:g}</text>')
    for index, label in enumerate(labels):
        x, base = left + slot * index + slot * 0.15, float(top + plot_h)
        for one in series:
            count = one.values[index]
            if count:
                bar = plot_h * count / ceiling
                base -= bar
                body.append(
                    f'<rect x="{x:.1f}" y="{base:.1f}" width="{slot * 0.7:.1f}" height="{bar:.1f}" fill="{one.color}">'
                    f"<title>{escape(label)}: {count} {escape(one.name)}</title></rect>"
                )
        if index % label_every == 0:
            body.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{height - 8}" text-anchor="middle" fill="{MUTED}">'
                f"{escape(label)}</text>"
            )
    total = sum(totals)
    description = f"{total} in all; " + ", ".join(f"{one.name} {sum(one.values)}" for one in series)
    return _frame(chart_id, title, description, width, height, body)


def bars(chart_id: str, title: str, items: Sequence[tuple[str, int]], color: str, *, width: int = 520) -> Markup:
    """One horizontal bar per (label, count), in the order given, each with its figure at its end."""
    row, left, right, top = 26, 190, 56, 6
    height = top * 2 + row * max(len(items), 1)
    ceiling = max((count for _, count in items), default=0) or 1
    body = []
    if not items:
        body.append(f'<text x="{left}" y="{top + 17}" fill="{MUTED}">nothing in this period</text>')
    for index, (label, count) in enumerate(items):
        y = top + row * index
        length = (width - left - right) * count / ceiling
        body.append(
            f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" fill="{INK}">{escape(_clip(label))}</text>'
            f'<rect x="{left}" y="{y + 4}" width="{length:.1f}" height="{row - 8}" fill="{color}">'
            f"<title>{escape(label)}: {count}</title></rect>"
            f'<text x="{left + length + 6:.1f}" y="{y + 17}" fill="{INK}">{count}</text>'
        )
    description = "; ".join(f"{label} {count}" for label, count in items) or "nothing in this period"
    return _frame(chart_id, title, description, width, height, body)


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    parts = []
    for one in series:
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 10}" width="12" height="12" fill="{one.color}"/>'
            f'<text x="{x + 16:.1f}" y="{y}" fill="{INK}">{escape(one.name)}</text>'
        )
        x += 28 + 7.5 * len(one.name)
    return parts


def _clip(label: str, most: int = 28) -> str:
    return label if len(label) <= most else label[: most - 1] + "…"
