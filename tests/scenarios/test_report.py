"""The certification outputs: a self-contained HTML report with the rules matrix and a timeline per scenario,
summary.json and a JUnit XML file that parse."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ksimkit.scenarios.report import ReportMeta, overall_verdict, render_html, rule_matrix, timeline_svg, write_reports
from ksimkit.scenarios.results import (
    ERROR,
    FAILED,
    NOT_APPLICABLE,
    PASSED,
    ChargeRow,
    CheckRecord,
    ReconRow,
    ScenarioResult,
    StepRecord,
    Timeline,
)

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "embed", "source", "track", "wbr"}


def results() -> list[ScenarioResult]:
    timeline = Timeline(
        start="2026-04-15",
        end="2026-05-31",
        series={
            "s1": [("2026-04-15", 25), ("2026-05-10", 20)],
            "vendor sub_x (no ref)": [("2026-04-15", 0), ("2026-04-20", 5)],
        },
        periods=[
            {"period": "2026-04", "expected": "37.60", "broker": "37.60", "broker_cost": "37.60", "vendor": "37.60"},
            {"period": "2026-05", "expected": "60.49", "broker": "70.50", "broker_cost": "70.50", "vendor": "60.49"},
        ],
    )
    good = ScenarioResult(
        "korm-good",
        "A good one",
        "korm",
        ["KORM-PAYG-1", "KORM-PAYG-2"],
        "suites/korm/korm-good.yaml",
        verdict=PASSED,
        partner_id="ptn_1",
        duration_s=0.5,
        timeline=timeline,
        steps=[
            StepRecord(
                1,
                "order",
                "order s1 quantity=25",
                8,
                "2026-04-15T09:00:00Z",
                "s1",
                "done",
                "done",
                activation_code="AAAAA",
            )
        ],
    )
    bad = ScenarioResult(
        "korm-bad",
        "A <bad> one & more",
        "korm",
        ["KORM-PAYG-2", "KORM-STOP-1"],
        "suites/korm/korm-bad.yaml",
        verdict=FAILED,
        partner_id="ptn_2",
        duration_s=0.7,
        timeline=timeline,
        failures=[
            "charge 2026-05 s1 (line 20): the broker billed 1 line(s): units 775, expected 665",
            "step 3 (reactivate s1, line 12): expected refused (SUBSCRIPTION_DELETED), the broker told its "
            "customer done",
        ],
        steps=[
            StepRecord(1, "order", "order s1", 8, "2026-04-15T09:00:00Z", "s1", "done", "done"),
            StepRecord(2, "advance", "advance to 2026-05-10T00:00:00Z", 9, "2026-04-15T09:00:00Z", outcome="ok"),
            StepRecord(
                3,
                "reactivate",
                "reactivate s1",
                12,
                "2026-05-10T00:00:00Z",
                "s1",
                "refused (SUBSCRIPTION_DELETED)",
                "done",
                ok=False,
                explanation="expected refused",
            ),
        ],
        charges=[
            ChargeRow(
                "2026-05",
                "s1",
                True,
                665,
                "60.49",
                None,
                775,
                "70.50",
                "70.50",
                1,
                ["acme"],
                False,
                "the broker billed 1 line(s): units 775, expected 665",
                20,
            )
        ],
        reconciliation=[
            ReconRow("2026-05", "s1", "sub_1", 775, 665, "70.50", "60.49", False, "differs"),
            ReconRow("2026-05", None, "sub_x", 0, 100, "0.00", "9.00", False, "unclaimed"),
        ],
        vendor_checks=[CheckRecord(18, "customer acme", "1 subscription(s) at the vendor", "2", False, "two")],
    )
    na = ScenarioResult(
        "kss-na",
        "Not for this broker",
        "kss",
        ["KSS-CODE-1"],
        "suites/kss/kss-na.yaml",
        verdict=NOT_APPLICABLE,
        reason="the broker does not support activate",
    )
    err = ScenarioResult(
        "kss-err",
        "Could not run",
        "kss",
        ["KSS-CODE-1", "SIM-CLOCK-1"],
        "suites/kss/kss-err.yaml",
        verdict=ERROR,
        reason="the simulator did not answer (create a partner): ConnectError",
    )
    return [good, bad, na, err]


class Balanced(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-6:])
        self.stack.pop()


def test_the_rule_matrix_aggregates_scenarios_per_rule() -> None:
    matrix = rule_matrix(results())
    assert list(matrix) == ["KORM-PAYG-1", "KORM-PAYG-2", "KORM-STOP-1", "KSS-CODE-1", "SIM-CLOCK-1"]  # catalog order
    assert matrix["KORM-PAYG-1"]["verdict"] == PASSED
    assert matrix["KORM-PAYG-2"]["verdict"] == FAILED and matrix["KORM-PAYG-2"]["counts"][PASSED] == 1
    assert matrix["KSS-CODE-1"]["verdict"] == ERROR and matrix["KSS-CODE-1"]["scenarios"] == {
        "kss-na": NOT_APPLICABLE,
        "kss-err": ERROR,
    }
    assert matrix["KORM-STOP-1"]["title"].startswith("A stopped subscription")
    assert overall_verdict(results()) == ERROR and overall_verdict(results()[:1]) == PASSED
    assert overall_verdict([results()[0], results()[2]]) == PASSED
    assert overall_verdict([results()[0], results()[2]], strict=True) == FAILED


def test_the_three_outputs(tmp_path: Path) -> None:
    paths = write_reports(
        results(),
        tmp_path / "out",
        ReportMeta(broker="my <broker>", simulator="http://sim", suites=["korm"], notes=["defects: none"]),
    )
    assert {p.name for p in paths.values()} == {"report.html", "summary.json", "junit.xml"}

    page = paths["html"].read_text(encoding="utf-8")
    parser = Balanced()
    parser.feed(page)
    parser.close()
    assert parser.stack == ["html"] or parser.stack == []  # every element closed
    assert "script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags
    assert not [v for k, v in parser.attrs if k in ("src", "href") and v and not v.startswith("#")]  # no network
    assert '<table class="matrix">' in page and 'id="rule-KORM-PAYG-2"' in page
    assert "PAYG: billed by licence-days" in page  # the rule's title
    assert page.count("<svg") == 2 and "licences in force" in page
    assert "my &lt;broker&gt;" in page and "A &lt;bad&gt; one &amp; more" in page  # escaped
    assert 'id="s-korm-bad" open' in page and 'id="s-korm-good">' in page  # failures are unfolded
    assert "the broker billed 1 line(s): units 775, expected 665" in page
    assert "Could not run" in page and "the broker does not support activate" in page
    assert "Incomplete: 1 scenario(s) could not be run" in page

    summary = json.loads(paths["json"].read_text())
    assert summary["verdict"] == ERROR and summary["broker"] == "my <broker>"
    assert summary["totals"] == {"scenarios": 4, "passed": 1, "failed": 1, "not_applicable": 1, "error": 1}
    assert summary["rules"]["KORM-PAYG-2"]["verdict"] == FAILED
    assert summary["scenarios"][1]["charges"][0]["units"] == 775

    root = ET.parse(paths["junit"]).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "4" and root.get("failures") == "1"
    assert root.get("errors") == "1" and root.get("skipped") == "1"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"ksim.korm", "ksim.kss"}
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["korm-good"].find("failure") is None
    failure = cases["korm-bad"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("charge 2026-05 s1")
    assert "reactivate s1" in (failure.text or "")
    assert cases["kss-na"].find("skipped") is not None and cases["kss-err"].find("error") is not None
    assert [p.get("value") for p in cases["korm-bad"].iter("property")] == ["KORM-PAYG-2", "KORM-STOP-1"]


def test_a_passing_run_is_certified() -> None:
    page = render_html(results()[:1], ReportMeta(broker="b"))
    assert "Certified: all 1 applicable scenarios pass" in page


def test_the_timeline_svg_is_well_formed_xml() -> None:
    result = results()[1]
    assert result.timeline is not None
    svg = timeline_svg(result.timeline, result).split("</svg>")[0] + "</svg>"
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    assert len(paths) == 2  # one step line per vendor subscription
    bars = root.findall("{http://www.w3.org/2000/svg}rect")
    titles = [r.findtext("{http://www.w3.org/2000/svg}title") or "" for r in bars]
    assert "2026-05 broker billed: 70.50" in titles and "2026-05 vendor billed: 60.49" in titles
    red = [r for r in bars if r.get("fill") == "#b91c1c"]
    assert len(red) == 1  # May: the broker's invoice differs from the expected one


def attributed() -> list[ScenarioResult]:
    """A passing scenario listed first, then a failing one whose checks are attributed to their rules."""
    from ksimkit.scenarios.attribution import BILLS, END, POLICY, Finding

    good, bad = results()[0], results()[1]
    bad.timezone = "Europe/Berlin"
    bad.broker_build = "my-broker 1.4.2 (abc123)"
    bad.findings = [
        Finding("KORM-PAYG-2", 1, True, "step 1 (order s1)", ref="s1", line=8),
        Finding("KORM-STOP-1", END, True, "vendor check (line 18)", ref="s1", line=18),
        Finding(
            POLICY,
            BILLS,
            False,
            "charge 2026-05 s1 (line 20): the broker billed 1 line(s): units 775, expected 665",
            ref="s1",
            period="2026-05",
            line=20,
        ),
        Finding(
            "KORM-PAYG-2",
            BILLS,
            False,
            "reconciliation 2026-05 s1: the broker counts 775 units, the vendor bills 665",
            ref="s1",
            period="2026-05",
        ),
    ]
    bad.rule_results = {"KORM-PAYG-2": FAILED, "KORM-STOP-1": PASSED, POLICY: FAILED}
    bad.charges[0].split = [
        {
            "sku": "KESB-SELECT-PAYG-20-49",
            "kind": "licence_days",
            "units": 300,
            "amount": "27.29",
            "vendor_cost": "27.29",
            "customer": "acme",
        },
        {
            "sku": "KESB-SELECT-PAYG-50-99",
            "kind": "licence_days",
            "units": 475,
            "amount": "43.21",
            "vendor_cost": "43.21",
            "customer": "acme",
        },
    ]
    return [good, bad]


def test_the_report_points_at_the_bug(tmp_path: Path) -> None:
    meta = ReportMeta(broker="b", suite_digest="sha256:" + "ab" * 32, adapter="my-broker (my-broker.yaml)")
    paths = write_reports(attributed(), tmp_path, meta)
    page = paths["html"].read_text(encoding="utf-8")
    # failures first: the failure card comes before the rules matrix and the passing scenario's details
    assert (
        page.index('class="failure"')
        < page.index('id="rules"')
        < page.index('id="s-korm-bad"')
        < page.index('id="s-korm-good"')
    )
    card = page[page.index('class="failure"') : page.index("</section>")]
    assert "KORM-PAYG-2" in card and "PAYG: billed by licence-days" in card  # the first failure's rule and sentence
    assert "the broker counts 775 units, the vendor bills 665" in card  # a vendor rule's figure before the policy's
    assert "reactivate s1" in card and "2026-05-10 02:00 +02:00" in card  # the step that led to it, local time too
    assert "suites/korm/korm-bad.yaml" in card
    # the rule matrix: a rule fails on its own checks only
    matrix = rule_matrix(attributed())
    assert matrix["KORM-STOP-1"]["verdict"] == PASSED and matrix["KORM-PAYG-2"]["verdict"] == FAILED
    # per-line and per-SKU tables beside the totals
    assert page.count("KESB-SELECT-PAYG-50-99") >= 2 and "43.21" in page and "27.29" in page
    # provenance in all three outputs
    for text in (page, paths["json"].read_text(), paths["junit"].read_text()):
        assert (
            "sha256:" + "ab" * 32 in text
            and "my-broker 1.4.2 (abc123)" in text
            and "my-broker (my-broker.yaml)" in text
        )
    assert json.loads(paths["json"].read_text())["ksim_version"]
    summary = json.loads(paths["json"].read_text())
    assert summary["scenarios"][1]["first_failure"]["rule"] == "KORM-PAYG-2"
    assert summary["scenarios"][1]["rule_verdicts"]["KORM-STOP-1"] == PASSED
    failure = ET.parse(paths["junit"]).getroot().find(".//testcase[@name='korm-bad']/failure")
    assert failure is not None and failure.get("message", "").startswith("KORM-PAYG-2: reconciliation 2026-05 s1")
    # printable: a print stylesheet, and every chart value as text, not only in a tooltip
    assert "@media print" in page
    svg = timeline_svg(attributed()[1].timeline, attributed()[1])  # type: ignore[arg-type]
    texts = [t.text for t in ET.fromstring(svg.split("</svg>")[0] + "</svg>").iter("{http://www.w3.org/2000/svg}text")]
    assert "70.50" in texts and "60.49" in texts and "25" in texts and "20" in texts


def test_scenario_paths_are_relative_never_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ksimkit import scenarios
    from ksimkit.scenarios.provenance import display_path

    packaged = Path(scenarios.__file__).parent / "suites" / "korm" / "korm-payg-reduction-mid-month.yaml"
    monkeypatch.chdir(tmp_path)  # as from a project of one's own: the package is not below the working directory
    assert display_path(packaged, "x") == "ksimkit/scenarios/suites/korm/korm-payg-reduction-mid-month.yaml"
    own = tmp_path / "mine" / "korm-x.yaml"
    assert display_path(own, "x") == "mine/korm-x.yaml"
    assert display_path(Path("/elsewhere/suites/korm/korm-y.yaml"), "x") == "suites/korm/korm-y.yaml"
