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
import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from markupsafe import Markup

from ksimkit.scenarios import rules as rule_catalog
from ksimkit.scenarios.attribution import END, NOT_REACHED, POLICY, POLICY_TITLE, Finding
from ksimkit.scenarios.provenance import ksim_version
from ksimkit.scenarios.report_chart import chart_geometry
from ksimkit.scenarios.results import ERROR, FAILED, NOT_APPLICABLE, PASSED, ScenarioResult, StepRecord, Timeline

__all__ = [
    "ReportMeta",
    "level_verdicts",
    "overall_verdict",
    "render_html",
    "render_junit",
    "rule_matrix",
    "summary",
    "write_reports",
]

LABELS = {PASSED: "pass", FAILED: "fail", NOT_APPLICABLE: "n/a", ERROR: "error", NOT_REACHED: "not reached"}
RULE_VERDICTS = (PASSED, FAILED, NOT_REACHED, NOT_APPLICABLE, ERROR)


@dataclass
class ReportMeta:
    broker: str = "broker"
    simulator: str = ""
    suites: list[str] = field(default_factory=list)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    notes: list[str] = field(default_factory=list)  # e.g. the reference broker's seeded defects
    # What produced the certificate (scenarios/provenance.py): printed in the HTML, JSON and JUnit outputs.
    ksim_version: str = field(default_factory=ksim_version)
    suite_digest: str | None = None  # provenance.suite_digest(the scenarios run)
    adapter: str | None = None  # the adapter file's name (or path)
    broker_build: str | None = None  # what the broker reports as its build (adapter method `build`)

    def provenance(self, results: Sequence[ScenarioResult] = ()) -> dict[str, str | None]:
        builds = sorted({r.broker_build for r in results if r.broker_build})
        return {
            "ksim_version": self.ksim_version,
            "suite_digest": self.suite_digest,
            "adapter": self.adapter or self.broker,
            "broker_build": self.broker_build or (", ".join(builds) if builds else None),
        }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment else None


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


LEVEL_WORDS = {
    PASSED: "certified",
    FAILED: "not certified",
    ERROR: "incomplete",
    "not_checked": "not checked (the broker exposes no invoices)",
}


def level_verdicts(results: Sequence[ScenarioResult]) -> dict[str, str]:
    """The run per certification level: ``vendor_side`` (the broker's calls to the vendor) and ``full`` (plus its
    invoices and the reconciliation): passed, failed, error, or for ``full`` not_checked when the broker exposes no
    invoices. Scenarios that were not applicable do not count."""
    ran = [r for r in results if r.verdict != NOT_APPLICABLE]
    if any(r.verdict == ERROR for r in ran):
        return {"vendor_side": ERROR, "full": ERROR}
    vendor = [r.levels.get("vendor_side", r.verdict) for r in ran]
    full = [r.levels.get("full", r.verdict) for r in ran]
    return {
        "vendor_side": FAILED if FAILED in vendor else PASSED,
        "full": FAILED if FAILED in full else ("not_checked" if "not_checked" in full else PASSED),
    }


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
        out[rule] = {
            "title": rule_title(rule),
            "verdict": verdict,
            "counts": {v: counts[v] for v in RULE_VERDICTS},
            "scenarios": scenarios,
        }
    return out


def _first_failure(result: ScenarioResult) -> dict[str, Any] | None:
    first = result.first_failure
    if first is None:
        return None
    return {
        "rule": first.rule,
        "sentence": rule_title(first.rule),
        "text": first.text,
        "ref": first.ref,
        "period": first.period,
        "line": first.line,
    }


def summary(results: Sequence[ScenarioResult], meta: ReportMeta, *, strict: bool = False) -> dict[str, Any]:
    counts = Counter(r.verdict for r in results)
    return {
        "tool": "ksim certify",
        **meta.provenance(results),
        "generated_at": _iso(meta.finished_at or _now()),
        "started_at": _iso(meta.started_at),
        "broker": meta.broker,
        "simulator": meta.simulator,
        "suites": meta.suites,
        "notes": meta.notes,
        "verdict": overall_verdict(results, strict=strict),
        "totals": {"scenarios": len(results), **{v: counts[v] for v in (PASSED, FAILED, NOT_APPLICABLE, ERROR)}},
        "levels": level_verdicts(results),
        "rules": rule_matrix(results),
        "scenarios": [
            {**r.to_dict(), "rule_verdicts": r.rule_verdicts, "first_failure": _first_failure(r)} for r in results
        ],
    }


def _meta(meta: ReportMeta, results: Sequence[ScenarioResult]) -> dict[str, Any]:
    return {
        "broker": meta.broker,
        "simulator": meta.simulator,
        "suites": meta.suites,
        "notes": meta.notes,
        "generated": _iso(meta.finished_at or _now()),
        **meta.provenance(results),
    }


# -- JUnit ----------------------------------------------------------------------------------------------


def _failure_text(result: ScenarioResult) -> str:
    lines = [f"{result.scenario_id}: {result.title}", f"file: {result.source}", f"rules: {', '.join(result.rules)}"]
    first = result.first_failure
    if first is not None:
        lines.append(f"first failure: {first.rule}: {rule_title(first.rule)}")
        lines.append(f"  {first.text}")
        lines.append("rule verdicts: " + ", ".join(f"{r} {v}" for r, v in result.rule_verdicts.items()))
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
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"ksim.{service}",
            tests=str(len(items)),
            failures=str(counts[FAILED]),
            errors=str(counts[ERROR]),
            skipped=str(counts[NOT_APPLICABLE]),
            time=f"{sum(r.duration_s for r in items):.3f}",
            timestamp=_iso(meta.started_at or _now()) or "",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="broker", value=meta.broker)
        ET.SubElement(props, "property", name="simulator", value=meta.simulator)
        for name, value in meta.provenance(results).items():
            ET.SubElement(props, "property", name=name, value=value or "")
        for result in items:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"ksim.{service}",
                name=result.scenario_id,
                time=f"{result.duration_s:.3f}",
                file=result.source,
            )
            case_props = ET.SubElement(case, "properties")
            for rule in result.rules:
                ET.SubElement(case_props, "property", name="rule", value=rule)
            if result.verdict == FAILED:
                first = result.first_failure
                message = (
                    f"{first.rule}: {first.text}" if first else result.failures[0] if result.failures else "failed"
                )
                ET.SubElement(case, "failure", message=message[:500], type="ScenarioFailed").text = _failure_text(
                    result
                )
            elif result.verdict == ERROR:
                ET.SubElement(
                    case, "error", message=(result.reason or "error").splitlines()[0][:500], type="HarnessError"
                ).text = _failure_text(result)
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


# -- HTML (Jinja2 templates in scenarios/templates/) ----------------------------------------------------------

TEMPLATES = Path(__file__).with_name("templates")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def _anchor(scenario_id: str) -> str:
    return "s-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in scenario_id)


def _clock(at: str | None, zone: str) -> tuple[str, str]:
    """(UTC, partner-local) forms of a step's clock: ``2026-04-15 09:00Z``, ``2026-04-15 11:00 +02:00``."""
    if not at:
        return "", ""
    try:
        moment = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return at, ""
    utc = moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%MZ")
    try:
        local = moment.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return utc, ""
    return utc, local.strftime("%Y-%m-%d %H:%M ") + local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:]


ORDER = {FAILED: 0, ERROR: 1, NOT_APPLICABLE: 2, PASSED: 3}


def _ordered(results: Sequence[ScenarioResult]) -> list[ScenarioResult]:
    """Failures first (then errors, not applicable, passes), each group in run order."""
    return sorted(results, key=lambda r: ORDER.get(r.verdict, 9))


def _leading_step(result: ScenarioResult, finding: Finding) -> StepRecord | None:
    """The step that led to a failed check: the step itself, or the last broker step on the check's subscription
    that ran by the end of the check's period (the last one that ran at all when the check names none)."""
    ran = [s for s in result.steps if s.kind not in ("advance", "fault") and s.outcome not in ("skipped", None)]
    if finding.position < END:
        return next((s for s in result.steps if s.index == finding.position), None)
    mine = [s for s in ran if finding.ref is None or s.ref == finding.ref]
    if finding.period:
        local = [s for s in mine if _clock(s.at, result.timezone)[1][:7] <= finding.period]
        mine = local or mine
    return mine[-1] if mine else (ran[-1] if ran else None)


def _failure_card(result: ScenarioResult) -> dict[str, Any]:
    first = result.first_failure
    verdicts = result.rule_verdicts
    card: dict[str, Any] = {
        "anchor": _anchor(result.scenario_id),
        "id": result.scenario_id,
        "title": result.title,
        "verdict": result.verdict,
        "source": result.source,
        "zone": result.timezone,
        "line": 0,
        "step": None,
        "rule": None,
        "sentence": "",
        "other_failed": [],
        "not_reached": [],
        "figure": (
            result.failures[0] if result.failures else (result.reason or "").splitlines()[0] if result.reason else ""
        ),
    }
    if first is None:
        return card
    card.update(rule=first.rule, sentence=rule_title(first.rule), figure=first.text, line=first.line)
    step = _leading_step(result, first)
    if step is not None:
        utc, local = _clock(step.at, result.timezone)
        card["step"] = {"index": step.index, "label": step.label, "line": step.line, "utc": utc, "local": local}
    card["other_failed"] = [(r, rule_title(r)) for r, v in verdicts.items() if v == FAILED and r != first.rule]
    card["not_reached"] = [r for r, v in verdicts.items() if v == NOT_REACHED]
    return card


def _charge_tables(result: ScenarioResult) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The broker's lines (per period and ref) and their sums per period and SKU."""
    lines: list[dict[str, Any]] = []
    for row in result.charges:
        for line in row.split:
            lines.append({"period": row.period, "ref": row.ref, **line})
    per_sku: dict[tuple[str, str], dict[str, Any]] = {}
    for line in lines:
        entry = per_sku.setdefault(
            (line["period"], line.get("sku") or ""),
            {
                "period": line["period"],
                "sku": line.get("sku") or "",
                "lines": 0,
                "units": 0,
                "amount": Decimal("0.00"),
                "vendor_cost": Decimal("0.00"),
            },
        )
        entry["lines"] += 1
        entry["units"] += int(line["units"])
        entry["amount"] += Decimal(line["amount"])
        entry["vendor_cost"] += Decimal(line["vendor_cost"])
    skus = [
        {**e, "amount": f"{e['amount']:.2f}", "vendor_cost": f"{e['vendor_cost']:.2f}"}
        for _, e in sorted(per_sku.items())
    ]
    return lines, skus


def _detail(result: ScenarioResult) -> dict[str, Any]:
    steps = []
    for step in result.steps:
        said = step.outcome or ""
        if step.message and step.outcome in ("refused", "error"):
            said += f": {step.message}"
        utc, local = _clock(step.at, result.timezone)
        steps.append(
            {
                "index": step.index,
                "utc": utc,
                "local": local,
                "label": step.label,
                "note": step.note,
                "rule": step.rule,
                "expected": step.expected,
                "said": said,
                "explanation": step.explanation,
                "code": step.code,
                "ok": step.ok,
                "mark": ""
                if step.outcome in ("ok", "skipped", "not_applicable") or not step.expected
                else ("✔" if step.ok else "✘"),
            }
        )
    dash = lambda v: "—" if v is None else v  # noqa: E731
    charges = [
        {
            "period": row.period,
            "ref": row.ref,
            "ok": row.ok,
            "explanation": row.explanation,
            "expected_units": dash(row.expected_units) if row.expected else "none",
            "units": row.units,
            "expected_amount": dash(row.expected_amount) if row.expected else "none",
            "amount": row.amount,
            "expected_vendor_cost": dash(row.expected_vendor_cost),
            "vendor_cost": row.vendor_cost,
            "rules": ", ".join(r for r in dict.fromkeys([row.rule, row.vendor_rule]) if r),
        }
        for row in result.charges
    ]
    lines, skus = _charge_tables(result)
    chart = None
    if result.timeline is not None and (result.timeline.series or result.timeline.periods):
        chart = Markup(timeline_svg(result.timeline, result))
    return {
        "anchor": _anchor(result.scenario_id),
        "open": result.verdict in (FAILED, ERROR),
        "verdict": result.verdict,
        "id": result.scenario_id,
        "title": result.title,
        "source": result.source,
        "service": result.service,
        "zone": result.timezone,
        "rules": list(result.rule_verdicts.items()),
        "partner": result.partner_id,
        "duration": result.duration_s,
        "description": result.description,
        "reason": result.reason,
        "reason_label": "Not applicable" if result.verdict == NOT_APPLICABLE else "Could not run",
        "failures": result.failures,
        "chart": chart,
        "steps": steps,
        "charges": charges,
        "lines": lines,
        "skus": skus,
        "recon": result.reconciliation,
        "vendor_checks": result.vendor_checks,
        "not_checked": result.not_checked,
    }


def render_html(results: Sequence[ScenarioResult], meta: ReportMeta, *, strict: bool = False) -> str:
    counts = Counter(r.verdict for r in results)
    verdict = overall_verdict(results, strict=strict)
    matrix = rule_matrix(results)
    failed_rules = [rule for rule, row in matrix.items() if row["verdict"] == FAILED]
    banner = {
        PASSED: f"Certified: all {counts[PASSED]} applicable scenarios pass",
        FAILED: f"Not certified: {counts[FAILED]} scenario(s) failed, breaking {len(failed_rules)} rule(s): "
        + ", ".join(failed_rules),
        ERROR: f"Incomplete: {counts[ERROR]} scenario(s) could not be run",
    }[verdict]
    ordered = _ordered(results)
    rows = sorted(matrix.items(), key=lambda item: 0 if item[1]["verdict"] == FAILED else 1)
    context = {
        "css": Markup((TEMPLATES / "report.css").read_text(encoding="utf-8")),
        "meta": _meta(meta, results),
        "verdict": verdict,
        "banner": banner,
        "labels": LABELS,
        "rule_verdicts": RULE_VERDICTS,
        "failures": [_failure_card(r) for r in ordered if r.verdict in (FAILED, ERROR)],
        "cards": [
            (len(results), "scenarios"),
            (counts[PASSED], "passed"),
            (counts[FAILED], "failed"),
            (counts[NOT_APPLICABLE], "not applicable"),
            (counts[ERROR], "errors"),
            (len(matrix), "rules checked"),
        ],
        "matrix": [
            {
                "rule": rule,
                **row,
                "chips": [
                    (sid, v, _anchor(sid))
                    for sid, v in sorted(
                        row["scenarios"].items(), key=lambda item: (0 if item[1] == FAILED else 1, item[0])
                    )
                ],
            }
            for rule, row in rows
        ],
        "listing": [
            {
                "anchor": _anchor(r.scenario_id),
                "id": r.scenario_id,
                "title": r.title,
                "service": r.service,
                "rules": r.rules,
                "verdict": r.verdict,
                "duration": r.duration_s,
                "problem": r.failures[0] if r.failures else (r.reason or "").splitlines()[0] if r.reason else "",
            }
            for r in ordered
        ],
        "details": [_detail(r) for r in ordered],
        "levels": {name: LEVEL_WORDS[v] for name, v in level_verdicts(results).items()},
    }
    return _env().get_template("report.html.j2").render(**context)


def timeline_svg(timeline: Timeline, result: ScenarioResult | None = None, *, width: int = 1000) -> str:
    """Two panels on one time axis: licences in force per day (step lines), money per month (bars); every value
    printed on the chart. Rendered from ``templates/chart.svg.j2``."""
    return _env().get_template("chart.svg.j2").render(c=chart_geometry(timeline, result, width))


# -- all three --------------------------------------------------------------------------------------------


def write_reports(
    results: Sequence[ScenarioResult], out_dir: str | Path, meta: ReportMeta, *, strict: bool = False
) -> dict[str, Path]:
    """Write ``report.html``, ``summary.json`` and ``junit.xml`` into ``out_dir`` (made if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta.finished_at = meta.finished_at or _now()
    paths = {"html": out / "report.html", "json": out / "summary.json", "junit": out / "junit.xml"}
    paths["html"].write_text(render_html(results, meta, strict=strict), encoding="utf-8")
    paths["json"].write_text(
        json.dumps(summary(results, meta, strict=strict), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    paths["junit"].write_text(render_junit(results, meta), encoding="utf-8")
    return paths
