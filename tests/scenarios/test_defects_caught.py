"""The harness checks itself: the clean reference broker passes every packaged scenario, and each seeded defect,
switched on alone over its service's whole suite, is caught by a scenario naming the rule it breaks and turns red
only that rule (plus the broker's own billing policy where the customer's invoice is wrong, and any rule its
checks genuinely break: ``Defect.red`` in examples/reference_broker/defects.py). A rule fails only when one of its
own checks fails (scenarios/attribution.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ksimkit.examples.reference_broker  # noqa: F401  (the broker the suites must catch)
from ksimkit import scenarios
from ksimkit.examples.reference_broker.defects import DEFECTS  # noqa: E402
from ksimkit.scenarios.attribution import POLICY
from ksimkit.scenarios.brokers.reference import reference_broker
from ksimkit.scenarios.loader import load_suite
from ksimkit.scenarios.report import rule_matrix
from ksimkit.scenarios.results import ERROR, FAILED
from ksimkit.scenarios.runner import run_scenarios
from ksimkit.scenarios.simulator import Simulator

SUITE = load_suite([Path(scenarios.__file__).parent / "suites"])


def test_clean_reference_broker_passes_every_scenario(sim: Simulator) -> None:
    with reference_broker() as adapter:
        results = run_scenarios(SUITE, adapter, sim, jobs=4)
    assert len(results) == len(SUITE) >= 60
    assert [(r.scenario_id, r.verdict, r.failures[:2]) for r in results if not r.passed] == []


# The suites' power against the broker does not depend on the simulator's database (the clean run above, and the
# store and wire tests, cover both): on SQLite only, so 16 defects over a whole suite stay inside make test's time.
# jobs=8: the suites' delay faults (6 s past the broker's time-out) then wait side by side.
@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_seeded_defect_is_caught_and_turns_red_only_its_own_rules(defect: str, sim: Simulator) -> None:
    seeded = DEFECTS[defect]
    suite = [s for s in SUITE if s.service == seeded.service]
    with reference_broker(defects=[defect]) as adapter:
        results = run_scenarios(suite, adapter, sim, jobs=8)
    assert not [r.scenario_id for r in results if r.verdict == ERROR]
    caught = [r.scenario_id for r in results if r.verdict == FAILED and seeded.rule in r.rules]
    assert caught, f"{defect} ({seeded.rule}) slipped through every scenario naming {seeded.rule}"
    red = {rule for rule, row in rule_matrix(results).items() if row["verdict"] == FAILED}
    allowed = set(seeded.red_rules) | {POLICY}
    blamed = {rule: [r.scenario_id for r in results if r.rule_verdicts.get(rule) == FAILED] for rule in red - allowed}
    assert not blamed, f"{defect} turned rules red that it does not break: {blamed}"
    assert set(seeded.red_rules) <= red, f"{defect}: {set(seeded.red_rules) - red} stayed green"
