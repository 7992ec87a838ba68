"""The report of a failing certification in a real headless browser (Chromium or Chrome): on a laptop-sized
window the first failure, its rule's sentence and the step that led to it are on screen without scrolling.

The browser is whatever of ``chromium``, ``chromium-browser``, ``google-chrome`` is on the PATH; without one
the test skips (``apt-get install chromium`` gives one). ``KSIM_REPORT_SCREENSHOT=docs/report-first-failure.png``
also writes the screenshot kept in docs/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ksimkit.scenarios.attribution import POLICY
from ksimkit.scenarios.brokers.reference import reference_broker
from ksimkit.scenarios.loader import load_suite
from ksimkit.scenarios.provenance import suite_digest
from ksimkit.scenarios.report import ReportMeta, write_reports
from ksimkit.scenarios.results import FAILED
from ksimkit.scenarios.rules import title
from ksimkit.scenarios.runner import run_scenarios
from ksimkit.scenarios.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH, HEIGHT = 1280, 800
# Measures the first failure card against the window, in a copy of the page (the report itself has no script).
PROBE = """<script>
window.addEventListener("load", () => {
  const card = document.querySelector("section.failure");
  const box = card ? card.getBoundingClientRect() : null;
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({top: box && box.top, bottom: box && box.bottom, height: window.innerHeight,
                                    scrollY: window.scrollY, text: card ? card.innerText : ""});
  document.body.appendChild(out);
});
</script>"""


def browser() -> str | None:
    return next((found for found in (shutil.which(name) for name in BROWSERS) if found), None)


def headless(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--allow-file-access-from-files",
            f"--window-size={WIDTH},{HEIGHT}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(browser() is None, reason="no headless browser: chromium, chromium-browser or google-chrome")
def test_the_first_failure_its_rule_and_its_cause_are_on_screen_without_scrolling(
    sim: Simulator, tmp_path: Path
) -> None:
    binary = browser()
    assert binary is not None
    suite = [
        s
        for s in load_suite([ROOT / "scenarios" / "suites"])
        if s.id in ("korm-payg-reduction-mid-month", "korm-payg-increase-mid-month", "korm-stop-reactivate-refused")
    ]
    with reference_broker(defects=["payg_reduction_whole_month"]) as adapter:
        results = run_scenarios(suite, adapter, sim, jobs=1)
    failed = [r for r in results if r.verdict == FAILED]
    assert [r.scenario_id for r in failed] == ["korm-payg-reduction-mid-month"]
    first = failed[0].first_failure
    assert first is not None and first.rule == "KORM-PAYG-2"
    paths = write_reports(
        results,
        tmp_path,
        ReportMeta(
            broker="reference broker",
            suite_digest=suite_digest(suite),
            adapter=f"{adapter.name} (adapter.yaml)",
            notes=["reference broker with seeded defects: payg_reduction_whole_month"],
        ),
    )
    page = paths["html"].read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")

    done = headless(binary, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    seen = json.loads(
        found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )
    assert seen["scrollY"] == 0 and 600 < seen["height"] <= HEIGHT  # the viewport (less a headless frame)
    assert 0 < seen["top"] < seen["bottom"] <= seen["height"], seen  # the whole card within the first screen
    text = seen["text"]
    assert "korm-payg-reduction-mid-month" in text
    assert "KORM-PAYG-2" in text and title("KORM-PAYG-2") in text  # the rule and its sentence
    assert "the broker counts 620 units, the vendor bills 665" in text  # the first wrong figure
    assert "change_quantity s1 quantity=20" in text  # the step that led to it
    assert POLICY in text  # the customer's invoice is wrong too: the broker's own policy
    assert "reference-broker 0.2.0 (payg_reduction_whole_month)" in page  # the broker's build, as it reports it

    shot = tmp_path / "report.png"
    done = headless(binary, f"--screenshot={shot}", paths["html"].as_uri())
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]
    keep = os.environ.get("KSIM_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, ROOT / keep)
