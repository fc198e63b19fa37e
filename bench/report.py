"""The benchmark's report: the summary against the issue's targets, the printed table, and the PNG plot of
latency against throughput (matplotlib, the `bench` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RULES = 10_000  # the targets are on 10,000 rules, on each store, one hub process (two for scaling)
FLOOR_RATIO = {64: 1.5, 1: 2.5}  # hub CPU per exchange against the floor measured in the same run, by concurrency
ADDED_P50_MS, ADDED_P99_MS = 1.5, 5.0
SCALING_TARGET = 1.7
RSS_TARGET_MB = 200.0


def _configs(results: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    seen: dict[tuple[str, int, int], None] = {}
    for phase in results:
        if phase["mode"] == "brokered":
            seen[(phase["store"], phase["rules"], phase["hubs"])] = None
    return list(seen)


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    direct = {phase["concurrency"]: phase for phase in results if phase["mode"] == "direct"}
    configs = []
    for store, rules, hubs in _configs(results):
        phases = [
            p for p in results if (p["mode"], p["store"], p["rules"], p["hubs"]) == ("brokered", store, rules, hubs)
        ]
        at_one = next((p for p in phases if p["concurrency"] == 1), None)
        cpu = [p["hub_cpu_us"] for p in phases if p["hub_cpu_us"] is not None]
        ratios = {p["concurrency"]: p["floor_ratio"] for p in phases if p["floor_ratio"] is not None}
        configs.append(
            {
                "store": store,
                "rules": rules,
                "hubs": hubs,
                "best_throughput": max(p["throughput"] for p in phases),
                "least_hub_cpu_us": min(cpu) if cpu else None,
                "floor_ratio": ratios,
                "added_p50_ms_c1": _difference(at_one and at_one["p50_ms"], direct.get(1, {}).get("p50_ms")),
                "added_p99_ms_c1": _difference(at_one and at_one["p99_ms"], direct.get(1, {}).get("p99_ms")),
                "hub_rss_mb": max((p["hub_rss_mb"] or 0.0) for p in phases),
            }
        )
    by_key = {(c["store"], c["rules"], c["hubs"]): c for c in configs}
    scaling = [
        {
            "store": store,
            "rules": rules,
            "two_over_one": round(c["best_throughput"] / by_key[(store, rules, 1)]["best_throughput"], 2),
        }
        for (store, rules, hubs), c in by_key.items()
        if hubs == 2 and (store, rules, 1) in by_key and by_key[(store, rules, 1)]["best_throughput"]
    ]
    return {"configurations": configs, "scaling": scaling, "targets": targets(by_key, scaling)}


def targets(by_key: dict[tuple[str, int, int], dict[str, Any]], scaling: list[dict[str, Any]]) -> dict[str, Any]:
    """Each of the issue's targets on each store (10,000 rules, one hub): the measured value and whether it is met."""

    def check(value: float | None, limit: float, at_most: bool = True) -> dict[str, Any]:
        met = None if value is None else (value <= limit if at_most else value >= limit)
        return {"measured": value, "target": limit, "met": met}

    measured = {}
    for (store, rules, hubs), one in by_key.items():
        if (rules, hubs) != (RULES, 1):
            continue
        two = next((s["two_over_one"] for s in scaling if (s["store"], s["rules"]) == (store, rules)), None)
        measured[store] = {
            **{f"floor_ratio_c{c}": check(one["floor_ratio"].get(c), limit) for c, limit in FLOOR_RATIO.items()},
            "added_p50_ms_at_c1": check(one["added_p50_ms_c1"], ADDED_P50_MS),
            "added_p99_ms_at_c1": check(one["added_p99_ms_c1"], ADDED_P99_MS),
            "two_hubs_over_one": check(two, SCALING_TARGET, at_most=False),
            "hub_rss_mb": check(one["hub_rss_mb"], RSS_TARGET_MB),
        }
    return measured or {"note": f"no store was measured with {RULES:,} rules and one hub"}


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _target_lines(targets: dict[str, Any]) -> list[str]:
    lines = []
    for store, checks in targets.items():
        if not isinstance(checks, dict):
            lines.append(f"targets: {checks}")
            continue
        for name, check in checks.items():
            verdict = {True: "met", False: "NOT met", None: "not measured"}[check["met"]]
            lines.append(f"target {store} {name}: {check['measured']} against {check['target']}: {verdict}")
    return lines


def table(document: dict[str, Any]) -> str:
    lines = [
        f"{'mode':<8} {'store':<8} {'rules':>6} {'hubs':>4} {'conc':>4} {'done':>6} {'err':>4} {'req/s':>8} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'hub us/ex':>9} {'xfloor':>6} {'cpu% hub':>8} {'adapt':>5} "
        f"{'client':>6} {'other':>5} {'RSS MB':>6} {'PG us/ex':>8}"
    ]
    for p in document["results"]:
        lines.append(
            f"{p['mode']:<8} {p['store'] or '-':<8} {p['rules'] or '-':>6} {p['hubs'] or '-':>4} {p['concurrency']:>4} "
            f"{p['completed']:>6} {p['errors']:>4} {p['throughput']:>8.1f} {_number(p['p50_ms']):>7} "
            f"{_number(p['p95_ms']):>7} {_number(p['p99_ms']):>7} {_number(p['hub_cpu_us'], 0):>9} "
            f"{_number(p['floor_ratio']):>6} {_number(p['hub_cpu_percent'], 0):>8} {p['adapters_cpu_percent']:>5.0f} "
            f"{p['client_cpu_percent']:>6.0f} {p['other_cpu_percent']:>5.0f} {_number(p['hub_rss_mb'], 0):>6} "
            f"{_number(p.get('store_cpu_us'), 0):>8}"
        )
    summary = document["summary"]
    lines.append("")
    for c in summary["configurations"]:
        lines.append(
            f"{c['store']}, {c['rules']} rules, {c['hubs']} hub(s): best {c['best_throughput']:.0f}/s; least hub CPU "
            f"{_number(c['least_hub_cpu_us'], 0)} us/exchange; x the floor by concurrency {c['floor_ratio']}; "
            f"adds {_number(c['added_p50_ms_c1'])} ms at p50, {_number(c['added_p99_ms_c1'])} ms at p99 (c=1); "
            f"RSS {_number(c['hub_rss_mb'], 0)} MB"
        )
    for s in summary["scaling"]:
        lines.append(f"{s['store']}, {s['rules']} rules: two hubs / one hub = {s['two_over_one']:.2f}")
    lines.append("")
    lines += _target_lines(summary["targets"])
    for phase in document["results"]:
        if phase["error_kinds"]:
            kinds = ", ".join(f"{kind}: {count}" for kind, count in phase["error_kinds"].items())
            lines.append(f"errors, {phase['mode']} {phase['store']} {phase['rules']} c={phase['concurrency']}: {kinds}")
    for note in document["notes"]:
        lines.append(f"note: {note}")
    if document["hub_log_warnings"]:
        lines.append("hub log warnings: " + ", ".join(f"{k}: {v}" for k, v in document["hub_log_warnings"].items()))
    machine = document["machine"]
    lines.append(
        f"load average before {machine['load_average_before']}, after {machine['load_average_after']}; "
        f"{document['wall_s']} s in all"
    )
    return "\n".join(lines)


def plot(document: dict[str, Any], path: Path) -> None:
    """Latency (p50 solid, p99 dashed) against throughput, one line per configuration through its
    concurrency levels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 6.5))
    series: dict[str, list[dict[str, Any]]] = {}
    for p in document["results"]:
        name = p["mode"] if p["mode"] != "brokered" else f"{p['store']}, {p['rules']:,} rules, {p['hubs']} hub(s)"
        series.setdefault(name, []).append(p)
    for (name, phases), color in zip(series.items(), plt.get_cmap("tab10").colors, strict=False):
        phases = sorted(phases, key=lambda p: p["concurrency"])
        x = [p["throughput"] for p in phases]
        axes.plot(x, [p["p50_ms"] for p in phases], "-o", color=color, label=f"{name} p50")
        axes.plot(x, [p["p99_ms"] for p in phases], "--", color=color, alpha=0.6)
        for p in phases:
            axes.annotate(f"c={p['concurrency']}", (p["throughput"], p["p50_ms"]), fontsize=7, alpha=0.7)
    axes.set_xlabel("throughput (successful exchanges per second)")
    axes.set_ylabel("latency (ms; p50 solid, p99 dashed)")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.grid(True, which="both", alpha=0.3)
    axes.set_title(f"Crossroads hub, {document['date']}, {document['settings']['directory_rows']:,} directory rows")
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
