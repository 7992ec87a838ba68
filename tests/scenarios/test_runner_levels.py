"""The runner meets brokers where they are: capabilities declared (undeclared: not applicable), the vendor's refusal
code read from ksim's journal, invoice data the broker does not expose reported as not checked, the customer
billing policy and units declared, two certification levels, pooled partners."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from ksimkit.scenarios.brokers.adapter_file import BillingPolicy
from ksimkit.scenarios.brokers.base import Charge, StepResult
from ksimkit.scenarios.errors import PoolError
from ksimkit.scenarios.model import Scenario
from ksimkit.scenarios.pool import PartnerPool, PoolMember, load_pool
from ksimkit.scenarios.results import FAILED, FULL, NOT_APPLICABLE, NOT_CHECKED, PASSED, VENDOR_SIDE
from ksimkit.scenarios.runner import run_scenario, run_scenarios
from ksimkit.scenarios.simulator import Simulator
from ksimkit.simulators.client import KsimAdmin
from tests.scenarios.scripted_broker import KormOnlyBroker
from tests.scenarios.test_runner import LOST_ANSWER, PAYG_REDUCTION

LEGACY = """
id: legacy-x
title: A legacy subscription is free until the 1st of the next month
rules: [KORM-LEG-1]
service: korm
setup:
  start: 2026-04-15T09:00:00Z
  legacy: [{ref: L1, customer: acme, sku: KESB-SELECT-PAYG-20-49, quantity: 25, activation_date: 2026-04-15}]
steps:
  - advance: 2026-05-20
expect:
  charges:
    - {period: 2026-04, ref: L1, units: 0, amount: "0.00"}
"""


class SilentBroker(KormOnlyBroker):
    """Relays none of the vendor's codes: tells its customer its own."""

    def _refused(self, response: Any) -> StepResult:  # type: ignore[override]
        return StepResult("refused", code="E-OWN")


class LocalRefusalBroker(SilentBroker):
    """Refuses a reactivation itself, never asking the vendor."""

    def reactivate(self, ref: str) -> StepResult:
        return StepResult("refused", code="E-OWN")


class NoInvoices(KormOnlyBroker):
    def charges(self, period: str) -> list[Charge]:
        raise NotImplementedError("this broker exposes no invoices")


class OwnPolicy(KormOnlyBroker):
    """Bills whole months in advance at its own prices, in licence-months; its expected vendor cost is right."""

    billing = BillingPolicy(policy="own", units="licence_months")

    def __init__(self, cost_off: Decimal = Decimal("0")) -> None:
        super().__init__()
        self.cost_off = cost_off

    def charges(self, period: str) -> list[Charge]:
        return [
            dataclasses.replace(c, units=1, amount=Decimal("99.00"), vendor_cost=c.vendor_cost + self.cost_off)
            for c in super().charges(period)
        ]


class Declared(KormOnlyBroker):
    capabilities = frozenset({"yearly"})


@pytest.fixture
def scenarios(make_scenario: Callable[[str, str], Scenario]) -> dict[str, Scenario]:
    return {
        name: make_scenario(name, text)
        for name, text in (("payg-reduction", PAYG_REDUCTION), ("lost-answer", LOST_ANSWER), ("legacy-x", LEGACY))
    }


def test_a_scenario_needing_an_undeclared_capability_is_not_applicable(
    scenarios: dict[str, Scenario], sim: Simulator
) -> None:
    result = run_scenario(scenarios["legacy-x"], Declared(), sim)
    assert result.verdict == NOT_APPLICABLE and "legacy" in (result.reason or "")
    assert result.partner_id is None  # decided before anything ran
    assert run_scenario(scenarios["payg-reduction"], Declared(), sim).verdict == PASSED


def test_KORM_STOP_1_the_vendors_refusal_code_is_read_from_ksims_journal(
    scenarios: dict[str, Scenario], sim: Simulator
) -> None:
    result = run_scenario(scenarios["payg-reduction"], SilentBroker(), sim)
    assert result.verdict == PASSED, result.failures
    assert result.steps[-1].code == "SUBSCRIPTION_DELETED (the vendor's, from ksim's journal)"


def test_KORM_STOP_1_a_refusal_the_vendor_never_gave_fails(scenarios: dict[str, Scenario], sim: Simulator) -> None:
    result = run_scenario(scenarios["payg-reduction"], LocalRefusalBroker(), sim)
    assert result.verdict == FAILED
    assert result.steps[-1].explanation == (
        "expected the vendor to refuse with SUBSCRIPTION_DELETED; ksim's journal "
        "shows the vendor answered no error code (the broker told its customer "
        "E-OWN)"
    )
    assert result.levels == {VENDOR_SIDE: FAILED, FULL: FAILED}


def test_a_broker_without_invoices_earns_the_vendor_side_level(scenarios: dict[str, Scenario], sim: Simulator) -> None:
    result = run_scenario(scenarios["payg-reduction"], NoInvoices(), sim)
    assert result.verdict == PASSED and result.levels == {VENDOR_SIDE: PASSED, FULL: NOT_CHECKED}
    assert result.charges == [] and result.reconciliation == []
    assert result.not_checked == [
        "customer charges and reconciliation: the broker exposes no invoices (no charges "
        "method): vendor-side checks only"
    ]
    assert all(check.ok for check in result.vendor_checks) and result.vendor_checks


def test_KORM_PAYG_2_invoice_failures_keep_the_vendor_side_level(
    scenarios: dict[str, Scenario], sim: Simulator
) -> None:
    wrong = KormOnlyBroker(frozenset({"extra_unit"}))
    full = run_scenario(scenarios["payg-reduction"], wrong, sim)
    assert full.verdict == FAILED and full.levels == {VENDOR_SIDE: PASSED, FULL: FAILED}
    vendor_side = run_scenario(
        scenarios["payg-reduction"], KormOnlyBroker(frozenset({"extra_unit"})), sim, level=VENDOR_SIDE
    )
    assert vendor_side.verdict == PASSED and vendor_side.failures  # the invoice failures are still reported
    with pytest.raises(ValueError, match="level is one of vendor_side, full"):
        run_scenario(scenarios["payg-reduction"], KormOnlyBroker(), sim, level="gold")


def test_KORM_PAYG_2_own_billing_policy_skips_customer_charges_but_reconciles_strictly(
    scenarios: dict[str, Scenario], sim: Simulator
) -> None:
    result = run_scenario(scenarios["payg-reduction"], OwnPolicy(), sim)
    assert result.verdict == PASSED, result.failures
    assert result.charges == [] and all(row.ok for row in result.reconciliation) and result.reconciliation
    assert any("own policy" in note for note in result.not_checked)
    assert any(note.startswith("units: the broker reports licence-months") for note in result.not_checked)
    off = run_scenario(scenarios["payg-reduction"], OwnPolicy(Decimal("0.01")), sim)
    assert off.verdict == FAILED and off.levels[VENDOR_SIDE] == PASSED
    assert off.failures[0].startswith("reconciliation 2026-04 s1: the broker expects a vendor cost of 37.61")


class NoCostNoUnits(KormOnlyBroker):
    """Invoices with amounts only: no units, no expected vendor cost on its lines."""

    def charges(self, period: str) -> list[Charge]:
        return [dataclasses.replace(c, units=None, vendor_cost=None) for c in super().charges(period)]


def test_KORM_PAYG_2_invoices_without_units_or_vendor_cost_check_the_amounts_only(
    scenarios: dict[str, Scenario], sim: Simulator
) -> None:
    result = run_scenario(scenarios["payg-reduction"], NoCostNoUnits(), sim)
    assert result.verdict == PASSED, result.failures
    assert [(c.ok, c.amount) for c in result.charges] == [(True, "37.60"), (True, "60.49")]
    assert result.not_checked == [
        "units: the broker's invoice lines carry none",
        "reconciliation of costs: the broker's invoice lines carry no vendor cost (what it expects to pay)",
    ]
    assert result.levels == {VENDOR_SIDE: PASSED, FULL: PASSED}

    class WrongAmount(NoCostNoUnits):
        def charges(self, period: str) -> list[Charge]:
            return [dataclasses.replace(c, amount=c.amount + 1) for c in super().charges(period)]

    wrong = run_scenario(scenarios["payg-reduction"], WrongAmount(), sim)
    assert wrong.verdict == FAILED and wrong.failures[0].startswith("charge 2026-04 s1 (line")


def test_SIM_IDEM_1_pooled_partners_run_one_scenario_each_and_fresh_names_when_state_is_kept(
    scenarios: dict[str, Scenario], server: Any, tmp_path: Any
) -> None:
    import secrets

    tag = secrets.token_hex(5)
    members = [
        PoolMember(
            id=f"ptn_{tag}{i:02d}",
            token=f"pool-{tag}-token-{i}",
            kss_username=f"pool-{tag}-{i}",
            kss_password="pool-secret",
        )
        for i in range(2)
    ]
    pool = PartnerPool(members)
    with KsimAdmin(server.url, "test-admin") as admin:
        pool.provision(admin)
        pool.provision(admin)  # adopted the second time
        assert {m.id for m in members} <= {p["id"] for p in admin.partners()}
        PartnerPool.handle(admin, members[1]).rotate_credentials()
        with pytest.raises(PoolError, match=f"pooled partner {members[1].id} exists on the simulator with other"):
            pool.provision(admin)
    members[1] = dataclasses.replace(
        members[1], id=f"ptn_{tag}99", token=f"pool-{tag}-token-99", kss_username=f"pool-{tag}-99"
    )
    pool = PartnerPool(members)
    with KsimAdmin(server.url, "test-admin") as admin:
        pool.provision(admin)

    class KeepsState(KormOnlyBroker):
        resets_state = False

    sim = Simulator(server.url, "test-admin", pool=pool)
    runs = [scenarios["payg-reduction"], scenarios["lost-answer"], scenarios["payg-reduction"]]
    results = run_scenarios(runs, KeepsState, sim, jobs=8)
    assert [r.verdict for r in results] == [PASSED] * 3, [r.failures or r.reason for r in results]
    assert {r.partner_id for r in results} <= {m.id for m in members}
    with KsimAdmin(server.url, "test-admin") as admin:
        handle = PartnerPool.handle(admin, members[0])
        with handle.korm() as korm:
            items = korm.get("/subscriptions", params={"include_deleted": "true"}).json()["items"]
            customers = {s["customer_id"] for s in items}
    assert customers and all(c.startswith("acme-") for c in customers)  # fresh names, the broker's state kept


def test_a_bad_pool_file_says_what_is_wrong(tmp_path: Any) -> None:
    path = tmp_path / "pool.yaml"
    path.write_text("partners:\n  - {id: ptn_00000000a001, token: short, kss_username: u, kss_password: secret123}\n")
    with pytest.raises(PoolError, match=r"partners\[0\].token: must be 16 to 200 characters"):
        load_pool(path)
    path.write_text("partners: []\n")
    with pytest.raises(PoolError, match="a list of at least one partner"):
        load_pool(path)


def test_the_report_shows_both_levels_and_what_was_not_checked() -> None:
    from ksimkit.scenarios.report import ReportMeta, level_verdicts, render_html, summary
    from ksimkit.scenarios.results import ScenarioResult

    def result(sid: str, verdict: str, levels: dict[str, str], not_checked: list[str] | None = None) -> ScenarioResult:
        return ScenarioResult(
            scenario_id=sid,
            title=sid,
            service="korm",
            rules=["KORM-PAYG-1"],
            source=f"{sid}.yaml",
            verdict=verdict,
            levels=levels,
            not_checked=not_checked or [],
        )

    vendor_only = [
        result("a", PASSED, {VENDOR_SIDE: PASSED, FULL: NOT_CHECKED}, ["customer charges: none"]),
        result("b", NOT_APPLICABLE, {}),
    ]
    assert level_verdicts(vendor_only) == {VENDOR_SIDE: PASSED, FULL: NOT_CHECKED}
    invoices_wrong = [result("a", FAILED, {VENDOR_SIDE: PASSED, FULL: FAILED})]
    assert level_verdicts(invoices_wrong) == {VENDOR_SIDE: PASSED, FULL: FAILED}
    meta = ReportMeta(broker="b")
    assert summary(vendor_only, meta)["levels"] == {VENDOR_SIDE: PASSED, FULL: NOT_CHECKED}
    html = render_html(vendor_only, meta)
    assert "vendor-side (calls to the vendor) certified · full (plus invoices and reconciliation) not checked" in html
    assert "<h3>Not checked</h3><ul><li>customer charges: none</li></ul>" in html
