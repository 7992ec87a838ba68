"""The clean reference broker on KSS 3.0: zeep against the simulator's WSDL, billing by the vendor's rules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def test_KSS_QTY_2_KSS_QTY_3_worked_example_max_count_per_month_and_reconciled(world: Any) -> None:
    w = world(now="2026-03-01T09:00:00Z", programme="xsp")
    code = w.activate("k1", "home", "KIS", 10)["activation_code"]
    w.advance("2026-03-20")
    assert w.count("k1", 15)["activation_code"] == code
    w.advance("2026-04-05")
    assert w.count("k1", 8)["activation_code"] == code
    w.advance("2026-06-01")
    assert w.charged("2026-03", "k1") == (15, Decimal("44.85"))
    assert w.charged("2026-04", "k1") == (15, Decimal("44.85"))
    assert w.charged("2026-05", "k1") == (8, Decimal("23.92"))
    for period in ("2026-03", "2026-04", "2026-05"):
        assert w.reconcile(period) == []
    assert w.sub("k1")["activation_code"] == code and w.sub("k1")["status"] == "Started"


def test_KSS_TRIAL_1_KSS_TRIAL_2_trial_days_not_charged(world: Any) -> None:
    w = world(now="2026-03-10T09:00:00Z", programme="xsp")
    assert w.activate("k1", "home", "KIS", 3, trial_days=90, expect="refused")["code"] == "701"
    w.activate("k1", "home", "KIS", 3, trial_days=30)
    assert w.sub("k1")["trial_end"] == "2026-04-09T09:00:00Z"
    w.advance("2026-05-01")
    assert w.lines("2026-03", "k1") == []
    assert w.charged("2026-04", "k1") == (3, Decimal("8.97"))
    assert w.reconcile("2026-03") == [] and w.reconcile("2026-04") == []


def test_KSS_FREE_1_reseller_creation_month_free(world: Any) -> None:
    w = world(now="2026-03-02T09:00:00Z", programme="reseller")
    w.activate("r1", "acme", "KESB-SELECT", 10)
    w.advance("2026-05-01")
    assert w.lines("2026-03") == []
    assert w.charged("2026-04", "r1") == (10, Decimal("30.00"))
    assert w.reconcile("2026-03") == [] and w.reconcile("2026-04") == []


def test_KSS_PAUSE_1_a_month_wholly_paused_is_not_charged_and_it_resumes_by_itself(world: Any) -> None:
    w = world(now="2026-03-01T09:00:00Z", programme="xsp")
    w.activate("k1", "home", "KIS", 2)
    w.advance("2026-04-01")
    w.call("/kss/subscriptions/k1/pause", {"until": "2026-05-01"})
    assert w.call("/kss/subscriptions/k1/pause", {"until": "2026-05-01"}, expect="refused")["code"] == "402"
    assert w.sub("k1")["status"] == "Paused"
    w.advance("2026-06-01")
    assert w.sub("k1")["status"] == "Started"
    assert [w.charged(p, "k1")[0] for p in ("2026-03", "2026-04", "2026-05")] == [2, 0, 2]
    for period in ("2026-03", "2026-04", "2026-05"):
        assert w.reconcile(period) == []


def test_KSS_STOP_1_KSS_CODE_1_soft_cancel_charges_the_last_month_renew_keeps_the_code(world: Any) -> None:
    w = world(now="2026-03-01T09:00:00Z", programme="xsp")
    code = w.activate("k1", "home", "KTS", 1)["activation_code"]
    w.advance("2026-04-10")
    w.call("/kss/subscriptions/k1/cancel-at-month-end", {"month": "2026-04"})
    w.advance("2026-05-03")
    assert w.sub("k1")["status"] == "SoftCancelled"
    w.advance("2026-06-01")
    assert w.call("/subscriptions/k1/reactivate")["activation_code"] == code  # Renew, indefinite
    assert w.sub("k1")["status"] == "Started"
    w.advance("2026-07-01")
    assert [w.charged(p, "k1")[0] for p in ("2026-04", "2026-05", "2026-06")] == [1, 0, 1]
    for period in ("2026-04", "2026-05", "2026-06"):
        assert w.reconcile(period) == []


def test_KSS_STOP_1_hard_cancel_then_activate_again_with_the_same_code(world: Any) -> None:
    w = world(now="2026-03-01T09:00:00Z", programme="xsp")
    code = w.activate("k1", "home", "KIS", 4)["activation_code"]
    w.advance("2026-03-15")
    w.call("/kss/subscriptions/k1/hard-cancel")
    assert w.sub("k1")["status"] == "HardCancelled"
    assert w.count("k1", 5, expect="refused")["code"] == "4"
    w.advance("2026-05-10")
    assert w.call("/kss/subscriptions/k1/reactivate")["activation_code"] == code  # Activate the same SubscriberId
    w.advance("2026-06-01")
    assert [w.charged(p, "k1")[0] for p in ("2026-03", "2026-04", "2026-05")] == [4, 0, 4]
    for period in ("2026-03", "2026-04", "2026-05"):
        assert w.reconcile(period) == []


def test_KSS_CODE_1_product_change_keeps_the_code_and_is_charged_at_the_new_product(world: Any) -> None:
    w = world(now="2026-03-01T09:00:00Z", programme="xsp", prices={"KTS": "4.50"})
    code = w.activate("k1", "home", "KIS", 2)["activation_code"]
    assert w.call("/kss/subscriptions/k1/product", {"product": "NOPE"}, expect="refused")["code"] == "9"
    w.advance("2026-04-10")
    assert w.call("/kss/subscriptions/k1/product", {"product": "KTS"})["activation_code"] == code
    w.advance("2026-05-01")
    (line,) = w.lines("2026-04", "k1")
    assert (line["plan"], line["units"], line["amount"], line["vendor_cost"]) == ("KTS", 2, "9.00", "7.98")
    assert w.reconcile("2026-04") == []


def test_KSS_MSP_1_vendor_cost_less_the_volume_tier(world: Any) -> None:
    w = world(now="2026-03-02T09:00:00Z", programme="msp")
    w.activate("m1", "acme", "KESB-SELECT", 30)
    w.activate("m2", "globex", "KESB-SELECT", 30)
    w.advance("2026-05-01")
    lines = w.lines("2026-04")
    assert [(line["amount"], line["vendor_cost"]) for line in lines] == [("90.00", "85.50")] * 2  # 60 licences: 5 %
    assert w.reconcile("2026-04") == []


def test_KSS_PERIOD_1_thirty_day_periods_from_the_first_paid_day(world: Any) -> None:
    w = world(now="2026-03-10T09:00:00Z", programme="xsp", billing_period="30_days")
    assert w.info["billing_period"] == "30_days"  # read from the vendor: TenantSetup does not carry it
    w.activate("k1", "home", "KIS", 5)
    w.advance("2026-04-20")
    w.count("k1", 7)
    w.advance("2026-05-15")
    (march,) = w.lines("2026-03", "k1")
    assert (march["from"], march["to"], march["units"]) == ("2026-03-10", "2026-04-09", 5)
    (april,) = w.lines("2026-04", "k1")
    assert (april["from"], april["to"], april["units"]) == ("2026-04-09", "2026-05-09", 7)
    assert w.invoice("2026-04")["final"] is True
    assert w.reconcile("2026-03") == [] and w.reconcile("2026-04") == []


def test_KSS_PREPAID_1_vendor_refusal_relayed(world: Any) -> None:
    w = world(now="2026-03-02T09:00:00Z", programme="reseller")
    w.partner.seed_kss_prepaid("acme", "KESB-SELECT", 10, "2026-12-31")
    answer = w.activate("r1", "acme", "KESB-SELECT", 10, expect="refused")
    assert answer["code"] == "703" and answer["activation_code"] is None
    assert w.lines("2026-03") == []


def test_SIM_IDEM_1_a_lost_soap_answer_is_retried_under_a_new_transaction_and_activates_once(
    world: Any, lossy_proxy: Any
) -> None:
    w = world(now="2026-03-01T09:00:00Z", programme="xsp", vendor_url=lossy_proxy.url)
    lossy_proxy.lose[("POST", "/kss/soap/upi")] = 1
    code = w.activate("k1", "home", "KIS", 3)["activation_code"]  # the retry answers 1: the broker asks GetInfo
    assert code and w.sub("k1")["activation_code"] == code
    lossy_proxy.lose[("POST", "/kss/soap/upi")] = 1
    assert w.count("k1", 5)["activation_code"] == code  # the retry answers 707: already so
    with w.partner.kss_rest() as kss:
        vendor = kss.get("/subscriptions/k1").json()
        audit = kss.get("/audit", params={"object_id": "k1"}).json()
    assert (vendor["license_count"], vendor["activation_code"]) == (5, code)
    assert [e["action"] for e in audit["items"]] == ["activate", "change_license_count"]
