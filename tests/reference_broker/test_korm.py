"""The clean reference broker on KORM SS: it bills its customers by the vendor's rules and its books reconcile."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

PAYG = "KESB-SELECT-PAYG-20-49"


def test_KORM_PAYG_2_worked_example_billed_by_licence_days_and_reconciled(world: Any) -> None:
    w = world(now="2026-04-15T09:00:00Z")
    ordered = w.order("s1", "acme", PAYG, 25)
    assert ordered["activation_code"]
    w.advance("2026-05-10")
    w.quantity("s1", 20)
    w.advance("2026-06-01")
    assert w.charged("2026-04", "s1") == (400, Decimal("37.60"))
    assert w.charged("2026-05", "s1") == (665, Decimal("60.49"))
    assert w.invoice("2026-05")["final"] is True
    assert w.reconcile("2026-04") == [] and w.reconcile("2026-05") == []


YEARLY = "KESB-ADV-YEARLY-20-49"  # 39.50 per licence per year


def test_KORM_YEAR_1_KORM_YEAR_2_KORM_YEAR_3_KORM_YEAR_4_yearly_fee_refusals_and_pro_rata_increase(world: Any) -> None:
    w = world(now="2026-04-15T09:00:00Z")
    w.order("y1", "globex", YEARLY, 20)
    assert w.quantity("y1", 18, expect="refused")["code"] == "DECREASE_NOT_ALLOWED"
    refused = w.call(
        "/subscriptions/y1/switch-plan", {"sku": "KESB-ADV-YEARLY-50-99", "quantity": 60}, expect="refused"
    )
    assert refused["code"] == "SWITCH_NOT_ALLOWED"
    w.advance("2026-06-01")
    w.quantity("y1", 30)
    w.advance("2027-05-01")
    assert w.charged("2026-04", "y1") == (20, Decimal("790.00"))
    # 10 added licences x 39.50 x 318 days left (1 June 2026 to 15 April 2027) / 365
    assert w.charged("2026-06", "y1") == (10, Decimal("344.14"))
    assert w.charged("2027-04", "y1") == (30, Decimal("1185.00"))
    assert w.sub("y1")["quantity"] == 30
    for period in ("2026-04", "2026-05", "2026-06", "2027-04"):
        assert w.reconcile(period) == []


def test_KORM_STOP_1_KORM_STOP_2_reactivation_refused_and_a_new_order_gets_a_new_code(world: Any) -> None:
    w = world(now="2026-04-15T09:00:00Z")
    first = w.order("s1", "acme", PAYG, 25)["activation_code"]
    w.advance("2026-05-10")
    w.call("/subscriptions/s1/stop")
    answer = w.call("/subscriptions/s1/reactivate", expect="refused")
    assert answer["code"] == "SUBSCRIPTION_DELETED"
    assert w.sub("s1")["status"] == "deleted"
    assert w.quantity("s1", 30, expect="refused")["code"] == "SUBSCRIPTION_DELETED"
    second = w.order("s2", "acme", PAYG, 25)["activation_code"]
    assert second != first
    w.advance("2026-06-01")
    assert w.charged("2026-05", "s1") == (25 * 9, Decimal("20.47"))  # 225 x 2.82 / 31; the stop day not billed
    assert w.charged("2026-05", "s2") == (25 * 22, Decimal("50.03"))
    assert w.reconcile("2026-05") == []


def test_KORM_APPR_1_customer_pays_list_and_the_discount_is_the_brokers(world: Any) -> None:
    w = world(
        now="2026-04-15T09:00:00Z", approval_codes=[{"percent": "15", "expires_on": "2026-12-31", "code": "APR-15"}]
    )
    assert w.order("s1", "acme", PAYG, 25, approval_code="NOPE", expect="refused")["code"] == "INVALID_APPROVAL_CODE"
    w.order("s1", "acme", PAYG, 25, approval_code="APR-15")
    w.advance("2026-05-01")
    (line,) = w.lines("2026-04", "s1")
    assert (line["units"], line["amount"], line["vendor_cost"]) == (400, "37.60", "31.96")
    assert w.reconcile("2026-04") == []


def test_KORM_PAYG_3_plan_switch_split_by_band_at_the_tenants_prices(world: Any) -> None:
    w = world(now="2026-04-15T09:00:00Z", prices={PAYG: "3.10"})  # our price for 20-49; 50-99 at list (2.70)
    w.order("s1", "acme", PAYG, 25)
    w.advance("2026-05-20")
    assert w.quantity("s1", 60, expect="refused")["code"] == "OUT_OF_RANGE"
    w.call("/subscriptions/s1/switch-plan", {"sku": "KESB-SELECT-PAYG-50-99", "quantity": 60})
    w.advance("2026-06-01")
    lines = {line["plan"]: line for line in w.lines("2026-05", "s1")}
    assert lines[PAYG]["units"] == 25 * 19 and lines[PAYG]["amount"] == "47.50"  # 475 x 3.10 / 31
    assert lines[PAYG]["vendor_cost"] == "43.21"  # 475 x 2.82 / 31 at list
    assert lines["KESB-SELECT-PAYG-50-99"]["units"] == 60 * 12
    assert lines["KESB-SELECT-PAYG-50-99"]["amount"] == lines["KESB-SELECT-PAYG-50-99"]["vendor_cost"] == "62.71"
    assert w.reconcile("2026-05") == []


def test_KORM_LEG_1_KORM_LEG_2_KORM_MIG_1_legacy_taken_over_billed_at_the_maximum_then_migrated(world: Any) -> None:
    legacy = [{"ref": "L1", "customer": "acme", "sku": PAYG, "quantity": 25, "activation_date": "2026-03-10"}]
    w = world(now="2026-04-15T09:00:00Z", legacy=legacy)
    assert w.sub("L1")["billing_model"] == "legacy"
    w.quantity("L1", 20)
    assert w.call("/migrate", expect="refused")["code"] == "MIGRATION_NOT_ALLOWED"
    w.advance("2026-05-01")
    w.call("/migrate")
    assert w.sub("L1")["billing_model"] == "payg"
    w.advance("2026-06-01")
    assert w.charged("2026-04", "L1") == (25, Decimal("70.50"))  # the month's maximum x 2.82
    assert w.charged("2026-05", "L1") == (20 * 31, Decimal("56.40"))  # PAYG from the migration day
    assert w.reconcile("2026-04") == [] and w.reconcile("2026-05") == []


def test_SIM_IDEM_1_a_lost_order_answer_is_retried_with_the_same_key_and_orders_once(
    world: Any, lossy_proxy: Any
) -> None:
    w = world(now="2026-04-15T09:00:00Z", vendor_url=lossy_proxy.url)
    lossy_proxy.lose[("POST", "/korm/v1/subscriptions")] = 1
    code = w.order("s1", "acme", PAYG, 25)["activation_code"]
    keys = [key for method, path, key in lossy_proxy.seen if (method, path) == ("POST", "/korm/v1/subscriptions")]
    assert len(keys) == 2 and keys[0] is not None and keys[0] == keys[1]
    assert [s["activation_code"] for s in w.korm_subscriptions("acme")] == [code]


def test_every_korm_post_carries_an_idempotency_key(world: Any, lossy_proxy: Any) -> None:
    w = world(now="2026-04-15T09:00:00Z", vendor_url=lossy_proxy.url)
    w.order("s1", "acme", PAYG, 25)
    w.advance("2026-05-10")
    w.quantity("s1", 30)
    w.call("/subscriptions/s1/switch-plan", {"sku": "KESB-SELECT-PAYG-50-99", "quantity": 60})
    w.call("/subscriptions/s1/stop")
    w.call("/subscriptions/s1/reactivate", expect="refused")
    posts = [(path, key) for method, path, key in lossy_proxy.seen if method == "POST" and path.startswith("/korm/")]
    assert len(posts) == 5 and all(key for _, key in posts)
    assert len({key for _, key in posts}) == 5


def test_dates_in_the_tenants_time_zone(world: Any) -> None:
    w = world(now="2026-04-14T23:00:00Z", timezone="Europe/Berlin")  # 15 April, 01:00 in Berlin
    w.order("s1", "acme", PAYG, 25)
    w.advance("2026-05-10")
    w.quantity("s1", 20)
    w.advance("2026-06-01")
    assert w.charged("2026-04", "s1") == (400, Decimal("37.60"))
    assert w.charged("2026-05", "s1") == (665, Decimal("60.49"))
    assert w.reconcile("2026-04") == [] and w.reconcile("2026-05") == []
