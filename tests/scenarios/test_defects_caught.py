"""The harness checks itself: the clean reference broker passes every packaged scenario, and each seeded defect,
switched on alone, is caught by at least one scenario that names the vendor rule the defect breaks."""
from __future__ import annotations

from pathlib import Path

import pytest

from ksimkit import scenarios
from ksimkit.scenarios.brokers.reference import reference_broker
from ksimkit.scenarios.model import load_suite
from ksimkit.scenarios.runner import FAILED, Simulator, run_scenarios

import ksimkit.examples.reference_broker  # noqa: F401  (the broker the suites must catch)
from ksimkit.examples.reference_broker.defects import DEFECTS  # noqa: E402

SUITE = load_suite([Path(scenarios.__file__).parent / "suites"])


def test_clean_reference_broker_passes_every_scenario(sim: Simulator) -> None:
    with reference_broker() as adapter:
        results = run_scenarios(SUITE, adapter, sim, jobs=4)
    assert len(results) == len(SUITE) >= 60
    assert [(r.scenario_id, r.verdict, r.failures[:2]) for r in results if not r.passed] == []


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_seeded_defect_is_caught_by_a_scenario_naming_its_rule(defect: str, sim: Simulator) -> None:
    rule = DEFECTS[defect].rule
    naming = [s for s in SUITE if rule in s.rules]
    assert naming, f"no scenario names {rule}"
    with reference_broker(defects=[defect]) as adapter:
        results = run_scenarios(naming, adapter, sim, jobs=4)
    caught = [r.scenario_id for r in results if r.verdict == FAILED]
    assert caught, f"{defect} ({rule}) slipped through all {len(naming)} scenarios naming {rule}"
