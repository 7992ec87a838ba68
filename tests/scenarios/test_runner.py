"""The runner end to end: a scripted broker (tests/scenarios/scripted_broker.py) that talks to the real simulator,
real scenarios, and the comparisons that catch a broker's mistakes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from ksimkit.scenarios.attribution import POLICY
from ksimkit.scenarios.brokers.base import StepResult, TenantSetup
from ksimkit.scenarios.model import Scenario
from ksimkit.scenarios.results import ERROR, FAILED, NOT_APPLICABLE, PASSED
from ksimkit.scenarios.runner import run_scenario, run_scenarios
from ksimkit.scenarios.simulator import Simulator, fault_rule
from tests.scenarios.scripted_broker import KormOnlyBroker, ScriptedBroker

PAYG_REDUCTION = """
id: payg-reduction
title: A PAYG reduction is billed by licence-days
rules: [KORM-PAYG-1, KORM-PAYG-2, KORM-STOP-1]
service: korm
setup:
  start: 2026-04-15T09:00:00Z
steps:
  - order: {ref: s1, customer: acme, sku: KESB-SELECT-PAYG-20-49, quantity: 25}
  - advance: 2026-05-10
  - change_quantity: {ref: s1, quantity: 20}
  - advance: 2026-06-01
  - stop: {ref: s1}
  - reactivate: {ref: s1}
    expect: {outcome: refused, code: SUBSCRIPTION_DELETED}
expect:
  vendor:
    - {ref: s1, status: deleted, quantity: 20}
    - {customer: acme, subscriptions: 1, active_subscriptions: 0}
  charges:
    - {period: 2026-04, ref: s1, units: 400, amount: "37.60", vendor_cost: "37.60"}
    - {period: 2026-05, ref: s1, units: 665, amount: "60.49"}
  reconcile: [2026-04, 2026-05]
"""

STOP_REORDER = """
id: stop-reorder
title: A new order after a stop gets a new code
rules: [KORM-STOP-2, KORM-LEG-1]
service: korm
setup:
  start: 2026-04-15T09:00:00Z
  legacy: [{ref: L1, customer: globex, sku: KESB-SELECT-PAYG-20-49, quantity: 25, activation_date: 2026-04-10}]
steps:
  - order: {ref: s1, customer: acme, sku: KESC-PAYG-10-14, quantity: 10}
  - stop: {ref: s1}
  - order: {ref: s2, customer: acme, sku: KESC-PAYG-10-14, quantity: 10}
    expect: {activation_code: {different_from: s1}}
expect:
  vendor:
    - {ref: s2, activation_code: {different_from: s1}, status: active}
    - {ref: L1, activation_code: unchanged, quantity: 25}
    - {customer: acme, subscriptions: 2, active_subscriptions: 1}
  charges:
    - {period: 2026-04, ref: s2, units: 160, amount: "13.33"}
    - {period: 2026-04, ref: L1, units: 0, amount: "0.00"}
  reconcile: [2026-04]
"""

LOST_ANSWER = """
id: lost-answer
title: An order whose answer was lost is applied once
rules: [SIM-IDEM-1]
service: korm
setup:
  start: 2026-04-15T09:00:00Z
steps:
  - fault: {operation: createSubscription, kind: status, status: 503, when: after, count: 1}
  - order: {ref: s1, customer: acme, sku: KESB-SELECT-PAYG-20-49, quantity: 25}
expect:
  vendor:
    - {customer: acme, subscriptions: 1}
  charges:
    - {period: 2026-04, ref: s1, units: 400, amount: "37.60"}
  reconcile: [2026-04]
"""

KSS_CODE = """
id: kss-code
title: A licence change keeps the code; the increase costs from the current period
rules: [KSS-CODE-1, KSS-QTY-2, KSS-TRIAL-1]
service: kss
setup:
  start: 2026-03-01T09:00:00Z
  programme: xsp
steps:
  - activate: {ref: home, customer: smith, product: KIS, count: 3}
  - advance: 2026-03-10
  - change_count: {ref: home, count: 5}
    expect: {activation_code: {same_as: home}}
  - activate: {ref: long, customer: jones, product: KIS, count: 1, trial_days: 90}
    expect: {outcome: refused, code: 701}
expect:
  vendor:
    - {ref: home, status: Started, count: 5, product: KIS, activation_code: unchanged}
    - {customer: jones, subscriptions: 0}
  charges:
    - {period: 2026-03, ref: home, units: 5, amount: "14.95"}
  reconcile: [2026-03]
"""


@pytest.fixture
def korm_scenarios(make_scenario: Callable[[str, str], Scenario]) -> dict[str, Scenario]:
    return {
        name: make_scenario(name, text)
        for name, text in (
            ("payg-reduction", PAYG_REDUCTION),
            ("stop-reorder", STOP_REORDER),
            ("lost-answer", LOST_ANSWER),
        )
    }


def test_a_correct_broker_passes_and_the_result_holds_every_comparison(
    korm_scenarios: dict[str, Scenario], sim: Simulator
) -> None:
    result = run_scenario(korm_scenarios["payg-reduction"], ScriptedBroker(), sim)
    assert result.verdict == PASSED, result.failures or result.reason
    assert result.partner_id and result.partner_id.startswith("ptn_") and result.broker == "ScriptedBroker"
    assert result.rule_verdicts == {"KORM-PAYG-1": PASSED, "KORM-PAYG-2": PASSED, "KORM-STOP-1": PASSED, POLICY: PASSED}
    steps = result.steps
    assert [s.outcome for s in steps] == ["done", "ok", "done", "ok", "done", "refused"]
    assert steps[5].code == "SUBSCRIPTION_DELETED" and steps[5].expected == "refused (SUBSCRIPTION_DELETED)"
    assert steps[0].activation_code and steps[2].at == "2026-05-10T00:00:00Z"
    assert [(c.period, c.ref, c.units, c.amount, c.ok) for c in result.charges] == [
        ("2026-04", "s1", 400, "37.60", True),
        ("2026-05", "s1", 665, "60.49", True),
    ]
    assert [
        (r.period, r.ref, r.broker_units, r.vendor_units, r.broker_cost, r.vendor_amount, r.ok)
        for r in result.reconciliation
    ] == [("2026-04", "s1", 400, 400, "37.60", "37.60", True), ("2026-05", "s1", 665, 665, "60.49", "60.49", True)]
    assert all(check.ok for check in result.vendor_checks) and len(result.vendor_checks) == 4
    timeline = result.timeline
    assert timeline is not None and timeline.start == "2026-04-15"
    # to the last day before the final clock (1 June 00:00, when it was stopped)
    assert timeline.start == "2026-04-15" and timeline.end == "2026-05-31"
    assert timeline.series == {"s1": [("2026-04-15", 25), ("2026-05-10", 20)]}
    assert [(p["period"], p["expected"], p["broker"], p["vendor"]) for p in timeline.periods] == [
        ("2026-04", "37.60", "37.60", "37.60"),
        ("2026-05", "60.49", "60.49", "60.49"),
    ]
    as_json = result.to_dict()
    assert as_json["verdict"] == "passed" and as_json["timeline"]["series"]["s1"][0] == ["2026-04-15", 25]


def test_legacy_seeds_codes_and_two_scenarios_in_parallel(korm_scenarios: dict[str, Scenario], sim: Simulator) -> None:
    seen: list[str] = []
    scenarios = [korm_scenarios["stop-reorder"], korm_scenarios["lost-answer"]]
    results = run_scenarios(scenarios, ScriptedBroker, sim, jobs=2, on_result=lambda r: seen.append(r.scenario_id))
    assert [r.scenario_id for r in results] == ["stop-reorder", "lost-answer"] and sorted(seen) == sorted(
        ["stop-reorder", "lost-answer"]
    )
    for result in results:
        assert result.verdict == PASSED, (result.scenario_id, result.failures, result.reason)
    assert results[0].partner_id != results[1].partner_id  # one partner each
    legacy = [c for c in results[0].charges if c.ref == "L1"]
    assert legacy and legacy[0].units == 0  # free until the 1st of the next month (KORM-LEG-1)


def test_wrong_charges_and_reconciliation_are_explained(korm_scenarios: dict[str, Scenario], sim: Simulator) -> None:
    result = run_scenario(korm_scenarios["payg-reduction"], ScriptedBroker(frozenset({"extra_unit"})), sim)
    assert result.verdict == FAILED
    assert result.rule_verdicts["KORM-PAYG-2"] == FAILED
    bad = [c for c in result.charges if not c.ok]
    assert [(c.period, c.units, c.expected_units) for c in bad] == [("2026-04", 401, 400), ("2026-05", 666, 665)]
    assert bad[0].explanation == "the broker billed 1 line(s): units 401, expected 400"
    assert any(
        "reconciliation 2026-04 s1: the broker counts 401 units, the vendor bills 400" in f for f in result.failures
    )
    assert any(f.startswith("charge 2026-04 s1 (line 20)") for f in result.failures)


def test_a_wrong_outcome_is_a_failed_step(korm_scenarios: dict[str, Scenario], sim: Simulator) -> None:
    result = run_scenario(korm_scenarios["payg-reduction"], ScriptedBroker(frozenset({"reactivate_done"})), sim)
    assert result.verdict == FAILED
    step = result.steps[5]
    assert not step.ok and step.outcome == "done"
    assert step.explanation == "expected refused (SUBSCRIPTION_DELETED), the broker told its customer done"
    assert result.failures[0].startswith("step 6 (reactivate s1, line 13): expected refused")


def test_a_lost_answer_reordered_without_the_key_makes_two_subscriptions(
    korm_scenarios: dict[str, Scenario], sim: Simulator
) -> None:
    result = run_scenario(korm_scenarios["lost-answer"], ScriptedBroker(frozenset({"retry_without_key"})), sim)
    assert result.verdict == FAILED
    assert any("the vendor holds 2 subscription(s) for acme" in f for f in result.failures)
    unclaimed = [r for r in result.reconciliation if r.ref is None]
    assert (
        len(unclaimed) == 1
        and unclaimed[0].vendor_units == 400
        and "no ref of the broker" in (unclaimed[0].explanation or "")
    )
    assert len(result.timeline.series) == 2 if result.timeline else False  # both vendor subscriptions are drawn


def test_a_kss_scenario_over_soap(make_scenario: Callable[[str, str], Scenario], sim: Simulator) -> None:
    result = run_scenario(make_scenario("kss-code", KSS_CODE), ScriptedBroker(), sim)
    assert result.verdict == PASSED, result.failures or result.reason
    assert result.steps[3].code == "701" and result.steps[3].outcome == "refused"
    assert [(c.ref, c.units, c.amount) for c in result.charges] == [("home", 5, "14.95")]
    assert result.timeline is not None and result.timeline.series["home"][:2] == [("2026-03-01", 3), ("2026-03-10", 5)]


def test_a_step_the_broker_does_not_support_makes_the_scenario_not_applicable(
    make_scenario: Callable[[str, str], Scenario], sim: Simulator
) -> None:
    result = run_scenario(make_scenario("kss-code", KSS_CODE), KormOnlyBroker(), sim)
    assert result.verdict == NOT_APPLICABLE
    assert result.reason and "the broker does not support activate" in result.reason
    assert [s.outcome for s in result.steps] == ["not_applicable", "skipped", "skipped", "skipped"]
    assert result.rule_verdicts == {
        "KSS-CODE-1": NOT_APPLICABLE,
        "KSS-QTY-2": NOT_APPLICABLE,
        "KSS-TRIAL-1": NOT_APPLICABLE,
    }


class ExplodingBroker(ScriptedBroker):
    def change_quantity(self, ref: str, quantity: int) -> StepResult:
        raise RuntimeError("database is locked")


class NoCodeBroker(ScriptedBroker):
    def activation_code(self, ref: str) -> str | None:
        raise NotImplementedError


def test_a_broker_that_raises_fails_the_scenario_with_the_step(
    korm_scenarios: dict[str, Scenario], sim: Simulator
) -> None:
    result = run_scenario(korm_scenarios["payg-reduction"], ExplodingBroker(), sim)
    assert result.verdict == FAILED
    assert result.steps[2].outcome == "error" and "RuntimeError: database is locked" in (
        result.steps[2].explanation or ""
    )
    assert [s.outcome for s in result.steps[3:]] == ["skipped", "skipped", "skipped"]
    assert "step 3 (change_quantity s1 quantity=20, line 10)" in result.failures[0]


def test_without_activation_codes_the_vendor_check_cannot_match(
    korm_scenarios: dict[str, Scenario], sim: Simulator
) -> None:
    result = run_scenario(korm_scenarios["payg-reduction"], NoCodeBroker(), sim)
    assert result.verdict == FAILED
    assert any(
        "the broker holds no activation code for s1, and no vendor subscription matches it" in f
        for f in result.failures
    )


def test_an_unreachable_simulator_is_an_error(korm_scenarios: dict[str, Scenario]) -> None:
    result = run_scenario(
        korm_scenarios["payg-reduction"], ScriptedBroker(), Simulator("http://127.0.0.1:9", "x", timeout=2)
    )
    assert (
        result.verdict == ERROR and result.reason and "the simulator did not answer (create a partner)" in result.reason
    )
    assert result.rule_verdicts["KORM-PAYG-2"] == ERROR


def test_a_broker_factory_that_fails(korm_scenarios: dict[str, Scenario], sim: Simulator) -> None:
    def factory() -> Any:
        raise OSError("no broker today")

    [result] = run_scenarios([korm_scenarios["lost-answer"]], factory, sim, jobs=1)
    assert result.verdict == ERROR and "could not make a broker: OSError: no broker today" in (result.reason or "")


def test_the_tenant_setup_the_broker_gets(korm_scenarios: dict[str, Scenario], sim: Simulator) -> None:
    got: list[TenantSetup] = []

    class Spy(ScriptedBroker):
        def start(self, tenant: TenantSetup) -> None:
            got.append(tenant)
            super().start(tenant)

    run_scenario(korm_scenarios["stop-reorder"], Spy(), sim)
    tenant = got[0]
    assert tenant.scenario_id == "stop-reorder" and tenant.now == dt.datetime(2026, 4, 15, 9, tzinfo=dt.UTC)
    assert tenant.korm_url == sim.url + "/korm/v1" and tenant.kss_wsdl_url == sim.url + "/kss/soap/upi?wsdl"
    assert tenant.timezone == "UTC" and tenant.prices == {}
    [legacy] = tenant.legacy
    assert (legacy.ref, legacy.customer, legacy.quantity) == ("L1", "globex", 25)
    assert legacy.vendor_id.startswith("sub_") and len(legacy.activation_code) == 23


def test_fault_rule_maps_count_to_times() -> None:
    assert fault_rule({"operation": "createSubscription", "kind": "status", "count": 2}) == {
        "operation": "createSubscription",
        "kind": "status",
        "times": 2,
    }
    assert fault_rule({"kind": "unit_error", "error_code": 99}) == {
        "kind": "unit_error",
        "error_code": 99,
        "times": 1,
        "service": "kss",
    }
