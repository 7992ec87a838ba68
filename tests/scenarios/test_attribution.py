"""Which rule each check belongs to (scenarios/attribution.py): written beside it or derived from what it
checks; a rule's verdict in a scenario from its own checks only; the packaged suites name every rule their checks
belong to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ksimkit import scenarios
from ksimkit.scenarios.attribution import (
    BILLS,
    END,
    NOT_REACHED,
    POLICY,
    Finding,
    bill_events,
    planned_positions,
    rule_verdicts,
    scenario_checks,
)
from ksimkit.scenarios.brokers.reference import reference_broker
from ksimkit.scenarios.errors import ScenarioFileError
from ksimkit.scenarios.loader import load_suite
from ksimkit.scenarios.model import Scenario
from ksimkit.scenarios.results import FAILED, PASSED
from ksimkit.scenarios.runner import run_scenarios
from ksimkit.scenarios.simulator import Simulator

SUITE = load_suite([Path(scenarios.__file__).parent / "suites"])

TWO_RULES = """
id: korm-attr
title: a stop refused after a reduction
rules: [KORM-PAYG-2, KORM-STOP-1, SIM-AUTH-1]
service: korm
setup:
  start: 2026-04-15T09:00:00Z
steps:
  - order: {ref: s1, customer: acme, sku: KESB-SELECT-PAYG-20-49, quantity: 25}
  - advance: 2026-05-10
  - change_quantity: {ref: s1, quantity: 20}
  - stop: {ref: s1}
  - reactivate: {ref: s1}
    expect: {code: SUBSCRIPTION_DELETED}
expect:
  vendor:
    - {ref: s1, status: deleted}
    - {customer: acme, subscriptions: 1, rule: SIM-AUTH-1}
  charges:
    - {period: 2026-04, ref: s1, units: 400, amount: "37.60"}
    - {period: 2026-05, ref: s1, units: 225, amount: "20.47", vendor_cost: "20.47"}
  reconcile: [2026-04, {period: 2026-05, rule: KORM-PAYG-2}]
"""


def test_each_check_belongs_to_the_rule_it_checks(make_scenario: Callable[[str, str], Scenario]) -> None:
    scenario = make_scenario("korm-attr", TWO_RULES)
    checks = {what: rule for rule, _, what in scenario_checks(scenario)}
    by_start = lambda prefix: {r for w, r in checks.items() if w.startswith(prefix)}  # noqa: E731
    assert by_start("step 3") == {"KORM-PAYG-2"}  # change_quantity: KORM-PAYG-1 is not named, its bill rule is
    assert by_start("step 5") == {"KORM-STOP-1"}  # SUBSCRIPTION_DELETED is KORM-STOP-1's refusal
    assert by_start("vendor (line 16)") == {"KORM-STOP-1"}  # a status: the stop rule
    assert by_start("vendor (line 17)") == {"SIM-AUTH-1"}  # written beside it
    assert {r for w, r in checks.items() if "the customer's invoice" in w} == {POLICY}  # never a vendor rule
    assert checks["charge 2026-05 s1 (line 20): vendor cost"] == "KORM-PAYG-2"  # the reconcile item's rule
    assert checks["reconciliation 2026-04 s1"] == "KORM-PAYG-2"  # derived: a plain PAYG month
    assert bill_events(scenario, "2026-05", "s1")[0] == "KORM-STOP-1"  # derived: May's bill ends with the stop
    assert planned_positions(scenario)[POLICY] == BILLS


def test_a_checks_rule_must_be_one_the_scenario_names(write_scenario: Callable[..., Path]) -> None:
    path = write_scenario("korm-attr", TWO_RULES.replace("rule: SIM-AUTH-1", "rule: KORM-YEAR-1"))
    with pytest.raises(ScenarioFileError) as caught:
        load_suite([path])
    assert "rule 'KORM-YEAR-1' of a check is not one of the scenario's rules" in str(caught.value)


def test_a_rule_fails_on_its_own_checks_and_the_rest_is_not_reached() -> None:
    rules = ["KORM-PAYG-1", "KORM-PAYG-2", "KORM-STOP-1", "SIM-CLOCK-1"]
    planned = {"KORM-PAYG-1": 2, "KORM-PAYG-2": BILLS, "KORM-STOP-1": END, POLICY: BILLS}
    wrong_bill = [
        Finding("KORM-PAYG-1", 2, True),
        Finding("KORM-STOP-1", END, True),
        Finding(POLICY, BILLS, False),
        Finding("KORM-PAYG-2", BILLS, True),
    ]
    assert rule_verdicts(rules, wrong_bill, planned) == {  # the customer's invoice alone: only the policy is red
        "KORM-PAYG-1": PASSED,
        "KORM-PAYG-2": PASSED,
        "KORM-STOP-1": PASSED,
        "SIM-CLOCK-1": NOT_REACHED,
        POLICY: FAILED,
    }
    wrong_step = [Finding("KORM-PAYG-1", 2, False), Finding("KORM-STOP-1", END, False), Finding(POLICY, BILLS, False)]
    assert rule_verdicts(rules, wrong_step, planned) == {  # later failures follow from the first
        "KORM-PAYG-1": FAILED,
        "KORM-PAYG-2": NOT_REACHED,
        "KORM-STOP-1": NOT_REACHED,
        "SIM-CLOCK-1": NOT_REACHED,
        POLICY: NOT_REACHED,
    }
    stopped = [Finding("KORM-PAYG-1", 2, True), Finding("KORM-PAYG-2", 3, False)]
    assert rule_verdicts(rules, stopped, planned, stopped_at=3)["KORM-STOP-1"] == NOT_REACHED


def test_the_packaged_suites_name_every_rule_their_checks_belong_to() -> None:
    problems = {s.id: sorted({r for r, _, _ in scenario_checks(s)} - set(s.rules) - {POLICY}) for s in SUITE}
    assert {k: v for k, v in problems.items() if v} == {}


def test_KSS_CODE_1_a_changed_code_fails_at_its_step_and_what_follows_is_not_reached(sim: Simulator) -> None:
    chosen = [s for s in SUITE if s.id == "kss-increase-charged-current-period"]
    with reference_broker(defects=["kss_new_code_after_licence_change"]) as adapter:
        (result,) = run_scenarios(chosen, adapter, sim, jobs=1)
    first = result.first_failure
    assert result.verdict == FAILED and first is not None and first.rule == "KSS-CODE-1"
    assert "activation code changed" in first.text and first.position < END  # at the step, not in the bills
    verdicts = result.rule_verdicts
    assert verdicts["KSS-CODE-1"] == FAILED
    assert {r for r, v in verdicts.items() if v == FAILED} == {"KSS-CODE-1"}  # the bills it breaks: not reached
    assert verdicts["KSS-QTY-2"] == NOT_REACHED
