"""The geometry of a scenario's timeline chart (``templates/chart.svg.j2`` draws it; ``report.timeline_svg``):
licences in force per day and money per month on one time axis, every value labelled."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from ksimkit.scenarios.results import ScenarioResult, Timeline

__all__ = ["chart_geometry"]

PALETTE = ["#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#dc2626", "#4b5563"]


def _month_starts(first: dt.date, last: dt.date) -> list[dt.date]:
    out = []
    day = dt.date(first.year, first.month, 1)
    while day <= last:
        out.append(day)
        day = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return out


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def chart_geometry(timeline: Timeline, result: ScenarioResult | None, width: int) -> dict[str, Any]:
    """The geometry of the timeline chart (chart.svg.j2 draws it): two panels on one time axis, licences in
    force per day (step lines, each change labelled) and money per month (bars, each labelled)."""
    first = dt.date.fromisoformat(timeline.start)
    last = dt.date.fromisoformat(timeline.end)
    periods = timeline.periods
    if periods:
        p_first = dt.date.fromisoformat(periods[0]["period"] + "-01")
        p_last = _next_month(dt.date.fromisoformat(periods[-1]["period"] + "-01")) - dt.timedelta(days=1)
        axis_first, axis_last = min(first, p_first), max(last, p_last)
    else:
        axis_first, axis_last = first, last
    span = max((axis_last - axis_first).days + 1, 1)
    left, right, top = 56, 16, 40
    lic_h, gap, bar_h, bottom = 130, 34, 110, 30
    height = top + lic_h + gap + bar_h + bottom
    plot_w = width - left - right
    base = top + lic_h + gap + bar_h

    def x(day: dt.date) -> float:
        return round(left + plot_w * (day - axis_first).days / span, 1)

    months = []
    for month in _month_starts(axis_first, axis_last):
        mx = x(max(month, axis_first))
        months.append(
            {
                "x": mx,
                "label": month.strftime("%b %Y"),
                "label_x": round((mx + x(min(_next_month(month), axis_last + dt.timedelta(days=1)))) / 2, 1),
            }
        )
    ceiling = _nice(max([count for points in timeline.series.values() for _, count in points] + [1]))

    def y_count(count: float) -> float:
        return round(top + lic_h - lic_h * count / ceiling, 1)

    series, legend = [], []
    for index, (label, points) in enumerate(timeline.series.items()):
        colour = PALETTE[index % len(PALETTE)]
        if not points:
            continue
        path, labels = [], []
        for i, (day_iso, count) in enumerate(points):
            day = dt.date.fromisoformat(day_iso)
            px, py = x(day), y_count(count)
            path.append(f"M{px:.1f},{y_count(0):.1f} L{px:.1f},{py:.1f}" if i == 0 else f"H{px:.1f} V{py:.1f}")
            labels.append({"x": round(px + 2, 1), "y": round(py - 3 - 10 * (index % 2), 1), "value": count})
        path.append(f"H{x(last + dt.timedelta(days=1)):.1f}")
        series.append(
            {
                "d": " ".join(path),
                "colour": colour,
                "label": label,
                "points": labels,
                "title": "; ".join(f"{d}: {c}" for d, c in points),
            }
        )
        legend.append((label, colour))
    legend_items = [
        {"x": width - right - 150 * (len(legend) - i), "colour": colour, "label": label[:20]}
        for i, (label, colour) in enumerate(legend)
    ]
    markers = []
    for step in result.steps if result is not None else []:
        if step.kind == "advance" or not step.at:
            continue
        try:
            day = dt.datetime.fromisoformat(step.at.replace("Z", "+00:00")).date()
        except ValueError:
            continue
        if axis_first <= day <= axis_last:
            markers.append(
                {
                    "x": round(x(day) + plot_w / span / 2, 1),
                    "y": top + lic_h + 8,
                    "colour": "#b91c1c" if not step.ok else "#6b7280",
                    "title": f"step {step.index}: {step.label} → {step.outcome}",
                }
            )
    values = [Decimal(p[k]) for p in periods for k in ("expected", "broker", "vendor") if p.get(k) is not None]
    money_ceiling = _nice(float(max(values + [Decimal(1)])))
    bars = []
    for period in periods:
        start = dt.date.fromisoformat(period["period"] + "-01")
        x0, x1 = x(max(start, axis_first)), x(min(_next_month(start), axis_last + dt.timedelta(days=1)))
        slot = max((x1 - x0) * 0.8, 6)
        bar_w = slot / 3
        bx = x0 + (x1 - x0 - slot) / 2
        mismatch = period.get("expected") is not None and period.get("broker") != period.get("expected")
        for j, (key, colour, name) in enumerate(
            (
                ("expected", "#9ca3af", "expected"),
                ("broker", "#b91c1c" if mismatch else "#2563eb", "broker billed"),
                ("vendor", "#059669", "vendor billed"),
            )
        ):
            value = period.get(key)
            if value is None:
                continue
            h = bar_h * float(Decimal(value)) / money_ceiling
            if key == "broker" and mismatch and h < 3:
                h = 3  # a missing or tiny invoice that should not be: still visible, in red
            bars.append(
                {
                    "x": round(bx + j * bar_w, 1),
                    "y": round(base - h, 1),
                    "w": round(max(bar_w - 1, 1), 1),
                    "h": round(h, 1),
                    "colour": colour,
                    "title": f"{period['period']} {name}: {value}",
                    "value": value,
                    "label_x": round(bx + j * bar_w + bar_w / 2, 1),
                    "label_y": round(base - h - 3, 1),
                    "ink": "#b91c1c" if colour == "#b91c1c" else "#374151",
                }
            )
    return {
        "width": width,
        "height": height,
        "top": top,
        "left": left,
        "right_x": width - right,
        "base": base,
        "lic_base": top + lic_h,
        "money_title_y": top + lic_h + gap - 8,
        "label": result.scenario_id if result else "the scenario",
        "months": months,
        "count_ticks": [{"y": y_count(t), "label": f"{t:g}"} for t in _ticks(ceiling)],
        "money_ticks": [
            {"y": round(base - bar_h * t / money_ceiling, 1), "label": f"{t:g}"} for t in _ticks(money_ceiling)
        ],
        "series": series,
        "legend": legend_items,
        "markers": markers,
        "bars": bars,
    }


def _step(ceiling: float) -> float:
    """A round tick step that gives at most 5 intervals up to ``ceiling``."""
    import math

    magnitude = 10 ** math.floor(math.log10(max(ceiling, 1e-9) / 5)) if ceiling > 5 else 1
    for base in (1, 2, 2.5, 5, 10, 20, 25, 50):
        step = base * magnitude
        if ceiling / step <= 5 and (step >= 1 or ceiling < 5):
            return step
    return ceiling / 5


def _nice(value: float) -> float:
    """A round ceiling at or above ``value``, a whole number of ticks."""
    if value <= 0:
        return 1.0
    step = _step(value)
    import math

    return step * math.ceil(value / step - 1e-9)


def _ticks(ceiling: float) -> list[float]:
    step = _step(ceiling)
    count = int(round(ceiling / step))
    return [step * i for i in range(count + 1)]
