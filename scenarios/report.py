"""The certification outputs: ``report.html`` (for a person), ``summary.json`` (for a program), ``junit.xml`` (for CI).

```python
from ksimkit.scenarios.report import ReportMeta, write_reports

paths = write_reports(results, "out", ReportMeta(broker="my-broker", simulator="http://127.0.0.1:8080"))
```

The HTML page is self-contained: inline CSS, an inline SVG timeline per scenario (licences in force per
day, as the vendor holds them, and per month what the scenario expects, what the broker billed its
customer and what the vendor billed the broker), no script and no network.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ksimkit.scenarios import rules as rule_catalog
from ksimkit.scenarios.attribution import NOT_REACHED, POLICY, POLICY_TITLE
from ksimkit.scenarios.runner import ERROR, FAILED, NOT_APPLICABLE, PASSED, ScenarioResult, Timeline

__all__ = ["ReportMeta", "overall_verdict", "render_html", "render_junit", "rule_matrix", "summary", "write_reports"]

LABELS = {PASSED: "pass", FAILED: "fail", NOT_APPLICABLE: "n/a", ERROR: "error", NOT_REACHED: "not reached"}
RULE_VERDICTS = (PASSED, FAILED, NOT_REACHED, NOT_APPLICABLE, ERROR)
PALETTE = ["#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#dc2626", "#4b5563"]


@dataclass
class ReportMeta:
    broker: str = "broker"
    simulator: str = ""
    suites: list[str] = field(default_factory=list)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    notes: list[str] = field(default_factory=list)  # e.g. the reference broker's seeded defects


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if moment else None


def overall_verdict(results: Sequence[ScenarioResult], *, strict: bool = False) -> str:
    """``passed`` when nothing failed or errored (``strict``: and nothing was not applicable)."""
    verdicts = {r.verdict for r in results}
    if ERROR in verdicts:
        return ERROR
    if FAILED in verdicts:
        return FAILED
    if strict and NOT_APPLICABLE in verdicts:
        return FAILED
    return PASSED


def rule_title(rule: str) -> str:
    """The rule's sentence: the catalog's title, or the broker's billing policy."""
    return POLICY_TITLE if rule == POLICY else rule_catalog.title(rule)


def rule_matrix(results: Sequence[ScenarioResult]) -> dict[str, dict[str, Any]]:
    """rule ID -> {title, verdict, counts, scenarios: {scenario id: verdict}}, in catalog order (the broker's
    billing policy last), covered rules only.

    Per scenario a rule has the verdict of its own checks (``ScenarioResult.rule_verdicts``: a failed check of
    another rule leaves it passed or not reached, never failed). Over the suite a rule fails when it failed in
    any scenario (error: errored), passes when it passed in at least one, is not reached when every scenario
    that could check it stopped before its checks held, and is not applicable when none could run.
    """
    per_rule: dict[str, dict[str, str]] = {}
    for result in results:
        for rule, verdict in result.rule_verdicts.items():
            per_rule.setdefault(rule, {})[result.scenario_id] = verdict
    order = list(rule_catalog.all_rules()) + [POLICY]
    out: dict[str, dict[str, Any]] = {}
    for rule in sorted(per_rule, key=lambda r: (order.index(r) if r in order else len(order), r)):
        scenarios = per_rule[rule]
        counts = Counter(scenarios.values())
        if counts[FAILED]:
            verdict = FAILED
        elif counts[ERROR]:
            verdict = ERROR
        elif counts[PASSED]:
            verdict = PASSED
        elif counts[NOT_REACHED]:
            verdict = NOT_REACHED
        else:
            verdict = NOT_APPLICABLE
        out[rule] = {"title": rule_title(rule), "verdict": verdict,
                     "counts": {v: counts[v] for v in RULE_VERDICTS}, "scenarios": scenarios}
    return out


def summary(results: Sequence[ScenarioResult], meta: ReportMeta, *, strict: bool = False) -> dict[str, Any]:
    counts = Counter(r.verdict for r in results)
    return {
        "tool": "ksim certify",
        "generated_at": _iso(meta.finished_at or _now()),
        "started_at": _iso(meta.started_at),
        "broker": meta.broker,
        "simulator": meta.simulator,
        "suites": meta.suites,
        "notes": meta.notes,
        "verdict": overall_verdict(results, strict=strict),
        "totals": {"scenarios": len(results), **{v: counts[v] for v in (PASSED, FAILED, NOT_APPLICABLE, ERROR)}},
        "rules": rule_matrix(results),
        "scenarios": [r.to_dict() for r in results],
    }


# -- JUnit ----------------------------------------------------------------------------------------------


def _failure_text(result: ScenarioResult) -> str:
    lines = [f"{result.scenario_id}: {result.title}", f"file: {result.source}", f"rules: {', '.join(result.rules)}"]
    if result.reason:
        lines.append(result.reason)
    lines.extend(f"- {failure}" for failure in result.failures)
    return "\n".join(lines)


def render_junit(results: Sequence[ScenarioResult], meta: ReportMeta) -> str:
    root = ET.Element("testsuites", name=f"ksim certify: {meta.broker}")
    by_service: dict[str, list[ScenarioResult]] = {}
    for result in results:
        by_service.setdefault(result.service, []).append(result)
    total = Counter()  # type: Counter[str]
    for service, items in by_service.items():
        counts = Counter(r.verdict for r in items)
        suite = ET.SubElement(root, "testsuite", name=f"ksim.{service}", tests=str(len(items)),
                              failures=str(counts[FAILED]), errors=str(counts[ERROR]),
                              skipped=str(counts[NOT_APPLICABLE]),
                              time=f"{sum(r.duration_s for r in items):.3f}",
                              timestamp=_iso(meta.started_at or _now()) or "")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="broker", value=meta.broker)
        ET.SubElement(props, "property", name="simulator", value=meta.simulator)
        for result in items:
            case = ET.SubElement(suite, "testcase", classname=f"ksim.{service}", name=result.scenario_id,
                                 time=f"{result.duration_s:.3f}", file=result.source)
            case_props = ET.SubElement(case, "properties")
            for rule in result.rules:
                ET.SubElement(case_props, "property", name="rule", value=rule)
            if result.verdict == FAILED:
                message = result.failures[0] if result.failures else "failed"
                ET.SubElement(case, "failure", message=message[:500], type="ScenarioFailed").text = _failure_text(result)
            elif result.verdict == ERROR:
                ET.SubElement(case, "error", message=(result.reason or "error").splitlines()[0][:500],
                              type="HarnessError").text = _failure_text(result)
            elif result.verdict == NOT_APPLICABLE:
                ET.SubElement(case, "skipped", message=result.reason or "not applicable")
        total.update(counts)
    root.set("tests", str(len(results)))
    root.set("failures", str(total[FAILED]))
    root.set("errors", str(total[ERROR]))
    root.set("skipped", str(total[NOT_APPLICABLE]))
    root.set("time", f"{sum(r.duration_s for r in results):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# -- HTML -----------------------------------------------------------------------------------------------

CSS = """
:root { --pass:#15803d; --pass-bg:#dcfce7; --fail:#b91c1c; --fail-bg:#fee2e2; --na:#6b7280; --na-bg:#f3f4f6;
        --err:#92400e; --err-bg:#fef3c7; --ink:#111827; --muted:#6b7280; --line:#e5e7eb; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0;
       background: #f9fafb; }
main { max-width: 1180px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 10px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: var(--muted); margin-bottom: 16px; }
.banner { padding: 14px 18px; border-radius: 8px; font-size: 17px; font-weight: 600; margin: 12px 0 20px; }
.banner.passed { background: var(--pass-bg); color: var(--pass); } .banner.failed { background: var(--fail-bg); color: var(--fail); }
.banner.error { background: var(--err-bg); color: var(--err); }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.card b { display: block; font-size: 22px; }
table { border-collapse: collapse; width: 100%; background: #fff; margin: 6px 0 12px; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; border-radius: 999px; padding: 1px 9px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.badge.passed { background: var(--pass-bg); color: var(--pass); } .badge.failed { background: var(--fail-bg); color: var(--fail); }
.badge.not_applicable { background: var(--na-bg); color: var(--na); } .badge.error { background: var(--err-bg); color: var(--err); }
.chip { display: inline-block; margin: 1px 2px; padding: 0 6px; border-radius: 4px; font-size: 12px; text-decoration: none; }
.chip.passed { background: var(--pass-bg); color: var(--pass); } .chip.failed { background: var(--fail-bg); color: var(--fail); }
.chip.not_applicable { background: var(--na-bg); color: var(--na); } .chip.error { background: var(--err-bg); color: var(--err); }
td.cell-passed { background: var(--pass-bg); } td.cell-failed { background: var(--fail-bg); }
td.cell-error { background: var(--err-bg); } td.cell-not_applicable { background: var(--na-bg); }
tr.bad td { background: #fff5f5; } .why { color: var(--fail); }
details.scenario { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin: 10px 0; padding: 0 14px; }
details.scenario > summary { cursor: pointer; padding: 10px 0; font-weight: 600; list-style-position: outside; }
details.scenario[open] > summary { border-bottom: 1px solid var(--line); margin-bottom: 8px; }
.small { font-size: 12px; color: var(--muted); } code { font-size: 12px; background: #f3f4f6; padding: 0 3px; border-radius: 3px; }
ul.failures { color: var(--fail); margin: 6px 0; }
svg { background: #fff; border: 1px solid var(--line); border-radius: 6px; max-width: 100%; height: auto; }
.legend span { margin-right: 14px; font-size: 12px; } .legend i { display: inline-block; width: 12px; height: 10px; margin-right: 4px; vertical-align: middle; }
pre { white-space: pre-wrap; background: #f3f4f6; padding: 8px; border-radius: 6px; font-size: 12px; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _badge(verdict: str) -> str:
    return f'<span class="badge {_e(verdict)}">{_e(LABELS.get(verdict, verdict))}</span>'


def _anchor(scenario_id: str) -> str:
    return "s-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in scenario_id)


def render_html(results: Sequence[ScenarioResult], meta: ReportMeta, *, strict: bool = False) -> str:
    counts = Counter(r.verdict for r in results)
    verdict = overall_verdict(results, strict=strict)
    matrix = rule_matrix(results)
    failed_rules = [rule for rule, row in matrix.items() if row["verdict"] == FAILED]
    banner = {
        PASSED: f"Certified: all {counts[PASSED]} applicable scenarios pass",
        FAILED: f"Not certified: {counts[FAILED]} scenario(s) failed, breaking {len(failed_rules)} rule(s)",
        ERROR: f"Incomplete: {counts[ERROR]} scenario(s) could not be run",
    }[verdict]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>ksim certification: {_e(meta.broker)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>ksim certification report: {_e(meta.broker)}</h1>",
        '<div class="meta">'
        f"generated {_e(_iso(meta.finished_at or _now()))} · simulator {_e(meta.simulator or 'in-process')}"
        + (f" · suites {_e(', '.join(meta.suites))}" if meta.suites else "") + "</div>",
    ]
    for note in meta.notes:
        parts.append(f'<div class="meta">{_e(note)}</div>')
    parts.append(f'<div class="banner {verdict}">{_e(banner)}</div>')
    parts.append('<div class="cards">' + "".join(
        f'<div class="card"><b>{n}</b>{label}</div>' for n, label in (
            (len(results), "scenarios"), (counts[PASSED], "passed"), (counts[FAILED], "failed"),
            (counts[NOT_APPLICABLE], "not applicable"), (counts[ERROR], "errors"), (len(matrix), "rules checked"),
        )) + "</div>")

    # the rules x pass/fail matrix
    parts.append('<h2 id="rules">Vendor rules</h2>')
    parts.append('<p class="small">Each vendor rule against the scenarios that check it. A rule fails when any of '
                 "its scenarios fails; a scenario the broker cannot run (a step it does not support) is n/a.</p>")
    parts.append('<table class="matrix"><thead><tr><th>rule</th><th>what the vendor requires</th><th>verdict</th>'
                 '<th class="num">pass</th><th class="num">fail</th><th class="num">n/a</th><th class="num">error</th>'
                 "<th>scenarios</th></tr></thead><tbody>")
    for rule, row in matrix.items():
        chips = " ".join(f'<a class="chip {_e(v)}" href="#{_anchor(sid)}" title="{_e(LABELS[v])}">{_e(sid)}</a>'
                         for sid, v in row["scenarios"].items())
        c = row["counts"]
        cells = "".join(
            f'<td class="num{" cell-" + v if c[v] else ""}">{c[v] or ""}</td>' for v in (PASSED, FAILED, NOT_APPLICABLE, ERROR))
        parts.append(f'<tr id="rule-{_e(rule)}"><td><b>{_e(rule)}</b></td><td>{_e(row["title"])}</td>'
                     f"<td>{_badge(row['verdict'])}</td>{cells}<td>{chips}</td></tr>")
    parts.append("</tbody></table>")

    # the scenario list
    parts.append('<h2 id="scenarios">Scenarios</h2>')
    parts.append("<table><thead><tr><th>scenario</th><th>service</th><th>rules</th><th>verdict</th>"
                 '<th>first problem</th><th class="num">s</th></tr></thead><tbody>')
    for result in results:
        problem = result.failures[0] if result.failures else (result.reason or "").splitlines()[0] if result.reason else ""
        parts.append(
            f'<tr><td><a href="#{_anchor(result.scenario_id)}">{_e(result.scenario_id)}</a><br>'
            f'<span class="small">{_e(result.title)}</span></td><td>{_e(result.service)}</td>'
            f"<td>{_e(', '.join(result.rules))}</td><td>{_badge(result.verdict)}</td>"
            f'<td class="small">{_e(problem)}</td><td class="num">{result.duration_s:.2f}</td></tr>')
    parts.append("</tbody></table>")

    parts.append('<h2 id="details">Scenario details</h2>')
    for result in results:
        parts.append(_scenario_html(result))
    parts.append('<p class="small">ksim: a simulator and contract-testing harness for Kaspersky subscription services. '
                 "Amounts are in the vendor's currency; units are licence-days (KORM PAYG), licences (yearly fee, "
                 "legacy month) or the charged licence count (KSS).</p>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _scenario_html(result: ScenarioResult) -> str:
    opened = " open" if result.verdict in (FAILED, ERROR) else ""
    out = [f'<details class="scenario" id="{_anchor(result.scenario_id)}"{opened}>',
           f"<summary>{_badge(result.verdict)} {_e(result.scenario_id)} — {_e(result.title)}</summary>",
           f'<div class="small">file <code>{_e(result.source)}</code> · service {_e(result.service)} · rules '
           + ", ".join(f'<a href="#rule-{_e(r)}">{_e(r)}</a>' for r in result.rules)
           + (f" · simulator partner <code>{_e(result.partner_id)}</code>" if result.partner_id else "")
           + f" · {result.duration_s:.2f} s</div>"]
    if result.description:
        out.append(f"<p>{_e(result.description)}</p>")
    if result.reason:
        label = "Not applicable" if result.verdict == NOT_APPLICABLE else "Could not run"
        out.append(f"<h3>{label}</h3><pre>{_e(result.reason)}</pre>")
    if result.failures:
        out.append("<h3>What went wrong</h3><ul class=\"failures\">"
                   + "".join(f"<li>{_e(f)}</li>" for f in result.failures) + "</ul>")
    if result.timeline is not None and (result.timeline.series or result.timeline.periods):
        out.append("<h3>Timeline</h3>")
        out.append(timeline_svg(result.timeline, result))
    if result.steps:
        out.append("<h3>Steps</h3><table><thead><tr><th>#</th><th>clock</th><th>step</th><th>expected</th>"
                   "<th>the broker said</th><th>code</th><th></th></tr></thead><tbody>")
        for step in result.steps:
            said = step.outcome or ""
            if step.message and step.outcome in ("refused", "error"):
                said += f": {step.message}"
            mark = "" if step.outcome in ("ok", "skipped", "not_applicable") or not step.expected else (
                "✔" if step.ok else "✘")
            why = f'<div class="why">{_e(step.explanation)}</div>' if step.explanation else ""
            note = f'<div class="small">{_e(step.note)}</div>' if step.note else ""
            out.append(f'<tr class="{"bad" if not step.ok else ""}"><td class="num">{step.index}</td>'
                       f'<td class="small">{_e(step.at.replace("T", " ").replace(":00Z", "Z"))}</td>'
                       f"<td><code>{_e(step.label)}</code>{note}</td><td>{_e(step.expected)}</td>"
                       f"<td>{_e(said)}{why}</td><td>{_e(step.code)}</td><td>{mark}</td></tr>")
        out.append("</tbody></table>")
    if result.charges:
        out.append("<h3>Charges: the broker's invoice against the hand-computed one</h3>"
                   '<table><thead><tr><th>period</th><th>ref</th><th class="num">expected units</th>'
                   '<th class="num">billed units</th><th class="num">expected amount</th><th class="num">billed amount</th>'
                   '<th class="num">expected vendor cost</th><th class="num">broker\'s vendor cost</th><th></th></tr>'
                   "</thead><tbody>")
        for row in result.charges:
            exp = lambda v: "—" if v is None else v  # noqa: E731
            why = f'<div class="why">{_e(row.explanation)}</div>' if row.explanation else ""
            out.append(f'<tr class="{"bad" if not row.ok else ""}"><td>{_e(row.period)}</td><td>{_e(row.ref)}{why}</td>'
                       f'<td class="num">{_e(exp(row.expected_units) if row.expected else "none")}</td>'
                       f'<td class="num">{row.units}</td>'
                       f'<td class="num">{_e(exp(row.expected_amount) if row.expected else "none")}</td>'
                       f'<td class="num">{_e(row.amount)}</td><td class="num">{_e(exp(row.expected_vendor_cost))}</td>'
                       f'<td class="num">{_e(row.vendor_cost)}</td><td>{"✔" if row.ok else "✘"}</td></tr>')
        out.append("</tbody></table>")
    if result.reconciliation:
        out.append("<h3>Reconciliation: the broker's books against the vendor's bill</h3>"
                   '<table><thead><tr><th>period</th><th>ref</th><th>vendor subscription</th>'
                   '<th class="num">broker units</th><th class="num">vendor units</th>'
                   '<th class="num">broker expects to pay</th><th class="num">vendor bills</th><th></th></tr></thead><tbody>')
        for recon in result.reconciliation:
            why = f'<div class="why">{_e(recon.explanation)}</div>' if recon.explanation else ""
            out.append(f'<tr class="{"bad" if not recon.ok else ""}"><td>{_e(recon.period)}</td>'
                       f"<td>{_e(recon.ref or '—')}{why}</td><td><code>{_e(recon.vendor_id or '—')}</code></td>"
                       f'<td class="num">{recon.broker_units}</td><td class="num">{recon.vendor_units}</td>'
                       f'<td class="num">{_e(recon.broker_cost)}</td><td class="num">{_e(recon.vendor_amount)}</td>'
                       f'<td>{"✔" if recon.ok else "✘"}</td></tr>')
        out.append("</tbody></table>")
    if result.vendor_checks:
        out.append("<h3>The vendor's state at the end</h3><table><thead><tr><th>line</th><th>subject</th>"
                   "<th>expected</th><th>actual</th><th></th></tr></thead><tbody>")
        for check in result.vendor_checks:
            why = f'<div class="why">{_e(check.explanation)}</div>' if check.explanation else ""
            out.append(f'<tr class="{"bad" if not check.ok else ""}"><td class="num">{check.line}</td>'
                       f"<td>{_e(check.subject)}</td><td>{_e(check.expected)}</td><td>{_e(check.actual)}{why}</td>"
                       f'<td>{"✔" if check.ok else "✘"}</td></tr>')
        out.append("</tbody></table>")
    out.append("</details>")
    return "\n".join(out)


def _month_starts(first: dt.date, last: dt.date) -> list[dt.date]:
    out = []
    day = dt.date(first.year, first.month, 1)
    while day <= last:
        out.append(day)
        day = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return out


def timeline_svg(timeline: Timeline, result: ScenarioResult | None = None, *, width: int = 1000) -> str:
    """Two panels on one time axis: licences in force per day (step lines), money per month (bars)."""
    first = dt.date.fromisoformat(timeline.start)
    last = dt.date.fromisoformat(timeline.end)
    periods = timeline.periods
    if periods:
        p_first = dt.date.fromisoformat(periods[0]["period"] + "-01")
        p_last_start = dt.date.fromisoformat(periods[-1]["period"] + "-01")
        p_last = dt.date(p_last_start.year + p_last_start.month // 12, p_last_start.month % 12 + 1, 1) - dt.timedelta(days=1)
        axis_first, axis_last = min(first, p_first), max(last, p_last)
    else:
        axis_first, axis_last = first, last
    span = max((axis_last - axis_first).days + 1, 1)
    left, right, top = 56, 16, 40
    lic_h, gap, bar_h, bottom = 130, 34, 110, 30
    height = top + lic_h + gap + bar_h + bottom
    plot_w = width - left - right

    def x(day: dt.date) -> float:
        return left + plot_w * (day - axis_first).days / span

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'role="img" aria-label="timeline of {_e(result.scenario_id if result else "the scenario")}" '
           'font-family="system-ui, sans-serif" font-size="11">']
    # month grid and labels
    for month in _month_starts(axis_first, axis_last):
        mx = x(max(month, axis_first))
        out.append(f'<line x1="{mx:.1f}" y1="{top - 6}" x2="{mx:.1f}" y2="{top + lic_h + gap + bar_h}" stroke="#e5e7eb"/>')
        label_x = (x(max(month, axis_first)) + x(min(dt.date(month.year + month.month // 12, month.month % 12 + 1, 1),
                                                     axis_last + dt.timedelta(days=1)))) / 2
        out.append(f'<text x="{label_x:.1f}" y="{height - 10}" text-anchor="middle" fill="#374151">'
                   f"{month.strftime('%b %Y')}</text>")
    # licences panel
    max_count = max([count for points in timeline.series.values() for _, count in points] + [1])
    ceiling = _nice(max_count)

    def y_count(count: float) -> float:
        return top + lic_h - lic_h * count / ceiling

    out.append(f'<text x="{left}" y="{top - 12}" fill="#111827" font-weight="600">licences in force (vendor)</text>')
    for tick in _ticks(ceiling):
        ty = y_count(tick)
        out.append(f'<line x1="{left}" y1="{ty:.1f}" x2="{width - right}" y2="{ty:.1f}" stroke="#f3f4f6"/>'
                   f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="#6b7280">{tick:g}</text>')
    legend = []
    for index, (label, points) in enumerate(timeline.series.items()):
        colour = PALETTE[index % len(PALETTE)]
        if not points:
            continue
        path = []
        for i, (day_iso, count) in enumerate(points):
            day = dt.date.fromisoformat(day_iso)
            px, py = x(day), y_count(count)
            if i == 0:
                path.append(f"M{px:.1f},{y_count(0):.1f} L{px:.1f},{py:.1f}")
            else:
                path.append(f"H{px:.1f} V{py:.1f}")
        path.append(f"H{x(last + dt.timedelta(days=1)):.1f}")
        title = "; ".join(f"{d}: {c}" for d, c in points)
        out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="2">'
                   f"<title>{_e(label)}: {_e(title)}</title></path>")
        legend.append((label, colour))
    for i, (label, colour) in enumerate(legend):
        lx = width - right - 150 * (len(legend) - i)
        out.append(f'<rect x="{lx}" y="9" width="12" height="3" fill="{colour}"/>'
                   f'<text x="{lx + 16}" y="14" fill="#374151">{_e(label[:20])}</text>')
    # step markers
    if result is not None:
        for step in result.steps:
            if step.kind in ("advance",) or not step.at:
                continue
            try:
                day = dt.datetime.fromisoformat(step.at.replace("Z", "+00:00")).date()
            except ValueError:
                continue
            if not axis_first <= day <= axis_last:
                continue
            sx = x(day) + plot_w / span / 2
            colour = "#b91c1c" if not step.ok else "#6b7280"
            out.append(f'<circle cx="{sx:.1f}" cy="{top + lic_h + 8}" r="3.5" fill="{colour}">'
                       f"<title>step {step.index}: {_e(step.label)} → {_e(step.outcome)}</title></circle>")
    # money panel
    base = top + lic_h + gap + bar_h
    values = [Decimal(p[k]) for p in periods for k in ("expected", "broker", "vendor") if p.get(k) is not None]
    money_ceiling = _nice(float(max(values + [Decimal(1)])))
    out.append(f'<text x="{left}" y="{top + lic_h + gap - 8}" fill="#111827" font-weight="600">per month: '
               "expected charge, broker's invoice, vendor's bill</text>")
    for tick in _ticks(money_ceiling):
        ty = base - bar_h * tick / money_ceiling
        out.append(f'<line x1="{left}" y1="{ty:.1f}" x2="{width - right}" y2="{ty:.1f}" stroke="#f3f4f6"/>'
                   f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="#6b7280">{tick:g}</text>')
    for period in periods:
        start = dt.date.fromisoformat(period["period"] + "-01")
        end = dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
        x0, x1 = x(max(start, axis_first)), x(min(end, axis_last + dt.timedelta(days=1)))
        slot = max((x1 - x0) * 0.8, 6)
        bar_w = slot / 3
        bx = x0 + (x1 - x0 - slot) / 2
        mismatch = period.get("expected") is not None and period.get("broker") != period.get("expected")
        for j, (key, colour, name) in enumerate((("expected", "#9ca3af", "expected"),
                                                 ("broker", "#b91c1c" if mismatch else "#2563eb", "broker billed"),
                                                 ("vendor", "#059669", "vendor billed"))):
            value = period.get(key)
            if value is None:
                continue
            h = bar_h * float(Decimal(value)) / money_ceiling
            if key == "broker" and mismatch and h < 3:
                h = 3  # a missing or tiny invoice that should not be: still visible, in red
            out.append(f'<rect x="{bx + j * bar_w:.1f}" y="{base - h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                       f'height="{h:.1f}" fill="{colour}"><title>{_e(period["period"])} {name}: {_e(value)}</title></rect>')
    out.append(f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#9ca3af"/>')
    out.append(f'<line x1="{left}" y1="{top + lic_h}" x2="{width - right}" y2="{top + lic_h}" stroke="#9ca3af"/>')
    out.append("</svg>")
    out.append('<div class="legend small"><span><i style="background:#9ca3af"></i>expected (scenario)</span>'
               '<span><i style="background:#2563eb"></i>broker billed its customer</span>'
               '<span><i style="background:#b91c1c"></i>broker billed, differs from expected</span>'
               '<span><i style="background:#059669"></i>vendor billed the broker</span>'
               '<span><i style="background:#6b7280;border-radius:6px"></i>a step (red: failed)</span></div>')
    return "\n".join(out)


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


# -- all three --------------------------------------------------------------------------------------------


def write_reports(results: Sequence[ScenarioResult], out_dir: str | Path, meta: ReportMeta, *,
                  strict: bool = False) -> dict[str, Path]:
    """Write ``report.html``, ``summary.json`` and ``junit.xml`` into ``out_dir`` (made if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta.finished_at = meta.finished_at or _now()
    paths = {"html": out / "report.html", "json": out / "summary.json", "junit": out / "junit.xml"}
    paths["html"].write_text(render_html(results, meta, strict=strict), encoding="utf-8")
    paths["json"].write_text(json.dumps(summary(results, meta, strict=strict), indent=2, ensure_ascii=False) + "\n",
                             encoding="utf-8")
    paths["junit"].write_text(render_junit(results, meta), encoding="utf-8")
    return paths


