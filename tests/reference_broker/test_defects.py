"""Each seeded defect changes the broker's behaviour the way its README row says (and the clean broker does not).

Every test runs the same steps with the defect on a tenant and, where it helps to see the deviation, without.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ksimkit.examples.reference_broker.defects import DEFECTS

PAYG = "KESB-SELECT-PAYG-20-49"  # 2.82 per licence per month
YEARLY = "KESB-ADV-YEARLY-20-49"  # 39.50 per licence per year


def defect(name: str) -> list[str]:
    assert name in DEFECTS, name
    return [name]


def test_korm_reactivate_after_stop(world: Any) -> None:
    w = world(now="2026-04-15T09:00:00Z", defects=defect("korm_reactivate_after_stop"))
    w.order("s1", "acme", PAYG, 25)
    w.advance("2026-05-10")
    w.call("/subscriptions/s1/stop")
    w.advance("2026-05-20")
    answer = w.call("/subscriptions/s1/reactivate")  # the clean broker: refused SUBSCRIPTION_DELETED
    assert answer["outcome"] == "done" and answer["code"] is None
    assert w.sub("s1")["status"] == "active"
    w.advance("2026-06-01")
    assert w.charged("2026-05", "s1")[0] == 25 * 9 + 25 * 12  # billed again from the 20th
    assert w.reconcile("2026-05") == [("s1", (525, Decimal("47.76")), (225, Decimal("20.47")))]


@pytest.mark.parametrize("defects, may", [([], 665), (["payg_reduction_whole_month"], 620)])
def test_payg_reduction_whole_month(world: Any, defects: list[str], may: int) -> None:
    w = world(now="2026-04-15T09:00:00Z", defects=defects)
    w.order("s1", "acme", PAYG, 25)
    w.advance("2026-05-10")
    w.quantity("s1", 20)
    w.advance("2026-06-01")
    assert w.charged("2026-04", "s1") == (400, Decimal("37.60"))
    assert w.charged("2026-05", "s1")[0] == may  # 20 x 31 with the defect
    assert (w.reconcile("2026-05") == []) is (may == 665)


def test_yearly_decrease_locally(world: Any) -> None:
    w = world(now="2026-04-15T09:00:00Z", defects=defect("yearly_decrease_locally"))
    w.order("y1", "globex", YEARLY, 25)
    w.advance("2026-05-10")
    answer = w.quantity("y1", 20)  # the clean broker: refused DECREASE_NOT_ALLOWED
    assert answer["outcome"] == "done"
    assert w.sub("y1")["quantity"] == 20
    assert [s["quantity"] for s in w.korm_subscriptions("globex")] == [25]  # the vendor never heard of it
    w.advance("2027-05-01")
    assert w.charged("2027-04", "y1") == (20, Decimal("790.00"))
    assert w.reconcile("2027-04") == [("y1", (20, Decimal("790.00")), (25, Decimal("987.50")))]


def test_yearly_increase_full_year(world: Any) -> None:
    w = world(now="2026-04-15T09:00:00Z", defects=defect("yearly_increase_full_year"))
    w.order("y1", "globex", YEARLY, 20)
    w.advance("2026-06-01")
    w.quantity("y1", 30)
    w.advance("2026-07-01")
    assert w.charged("2026-06", "y1") == (10, Decimal("395.00"))  # pro rata would be 344.14
    assert w.reconcile("2026-06") == [("y1", (10, Decimal("395.00")), (10, Decimal("344.14")))]


def test_stop_day_billed(world: Any) -> None:
    w = world(now="2026-04-15T09:00:00Z", defects=defect("stop_day_billed"))
    w.order("s1", "acme", PAYG, 25)
    w.advance("2026-05-10")
    w.call("/subscriptions/s1/stop")
    w.advance("2026-06-01")
    assert w.charged("2026-05", "s1")[0] == 25 * 10  # 1 to 10 May; the vendor bills 1 to 9
    assert w.reconcile("2026-05") != []


def test_approval_discount_to_customer(world: Any) -> None:
    w = world(
        now="2026-04-15T09:00:00Z",
        defects=defect("approval_discount_to_customer"),
        approval_codes=[{"percent": "15", "expires_on": "2026-12-31", "code": "APR-15"}],
    )
    w.order("s1", "acme", PAYG, 25, approval_code="APR-15")
    w.advance("2026-05-01")
    (line,) = w.lines("2026-04", "s1")
    assert (line["amount"], line["vendor_cost"]) == ("31.96", "31.96")  # the customer should pay list: 37.60
    assert w.reconcile("2026-04") == []  # what the vendor bills is still expected right


def test_double_order_after_lost_answer(world: Any, lossy_proxy: Any) -> None:
    w = world(now="2026-04-15T09:00:00Z", defects=defect("double_order_after_lost_answer"), vendor_url=lossy_proxy.url)
    lossy_proxy.lose[("POST", "/korm/v1/subscriptions")] = 1
    code = w.order("s1", "acme", PAYG, 25)["activation_code"]
    keys = [key for method, path, key in lossy_proxy.seen if (method, path) == ("POST", "/korm/v1/subscriptions")]
    assert keys == [None, None]
    vendor = w.korm_subscriptions("acme")
    assert len(vendor) == 2 and code in {s["activation_code"] for s in vendor}


@pytest.mark.parametrize("defects, april", [([], 15), (["kss_reduction_current_period"], 8)])
def test_kss_reduction_current_period(world: Any, defects: list[str], april: int) -> None:
    w = world(now="2026-03-01T09:00:00Z", programme="xsp", defects=defects)
    w.activate("k1", "home", "KIS", 10)
    w.advance("2026-03-20")
    w.count("k1", 15)
    w.advance("2026-04-05")
    w.count("k1", 8)
    w.advance("2026-05-01")
    assert w.charged("2026-03", "k1") == (15, Decimal("44.85"))
    assert w.charged("2026-04", "k1")[0] == april
    assert (w.reconcile("2026-04") == []) is (april == 15)


def test_kss_trial_days_charged(world: Any) -> None:
    w = world(now="2026-03-10T09:00:00Z", programme="xsp", defects=defect("kss_trial_days_charged"))
    w.activate("k1", "home", "KIS", 3, trial_days=30)
    w.advance("2026-04-01")
    assert w.charged("2026-03", "k1") == (3, Decimal("8.97"))  # the vendor charges nothing in March
    assert w.reconcile("2026-03") == [("k1", (3, Decimal("8.97")), (0, 0))]


@pytest.mark.parametrize("defects, may", [([], 2), (["kss_second_trial_after_product_change"], 0)])
def test_kss_second_trial_after_product_change(world: Any, defects: list[str], may: int) -> None:
    """Caught when the product changes on the 1st with a trial as long as the month (xsp allows 2 months)."""
    w = world(now="2026-03-01T09:00:00Z", programme="xsp", defects=defects)
    w.activate("k1", "home", "KIS", 2, trial_days=45)
    w.advance("2026-05-01")
    w.call("/kss/subscriptions/k1/product", {"product": "KTS"})
    w.advance("2026-06-01")
    assert w.charged("2026-04", "k1")[0] == 2
    assert w.charged("2026-05", "k1")[0] == may
    assert (w.reconcile("2026-05") == []) is (may == 2)


def test_kss_free_month_charged(world: Any) -> None:
    w = world(now="2026-03-02T09:00:00Z", programme="reseller", defects=defect("kss_free_month_charged"))
    w.activate("r1", "acme", "KESB-SELECT", 10)
    w.advance("2026-04-01")
    assert w.charged("2026-03", "r1") == (10, Decimal("30.00"))
    assert w.reconcile("2026-03") == [("r1", (10, Decimal("30.00")), (0, 0))]


def test_kss_last_month_dropped_after_soft_cancel(world: Any) -> None:
    w = world(now="2026-03-01T09:00:00Z", programme="xsp", defects=defect("kss_last_month_dropped_after_soft_cancel"))
    w.activate("k1", "home", "KTS", 1)
    w.advance("2026-04-10")
    w.call("/kss/subscriptions/k1/cancel-at-month-end", {"month": "2026-04"})
    w.advance("2026-05-01")
    assert w.charged("2026-03", "k1")[0] == 1
    assert w.lines("2026-04", "k1") == []  # KSS-STOP-1: the last month is still charged
    assert w.reconcile("2026-04") == [("k1", (0, 0), (1, Decimal("3.99")))]


def test_kss_msp_tier_ignored(world: Any) -> None:
    w = world(now="2026-03-02T09:00:00Z", programme="msp", defects=defect("kss_msp_tier_ignored"))
    w.activate("m1", "acme", "KESB-SELECT", 30)
    w.activate("m2", "globex", "KESB-SELECT", 30)
    w.advance("2026-05-01")
    assert [line["vendor_cost"] for line in w.lines("2026-04")] == ["90.00", "90.00"]  # the vendor bills 85.50
    assert w.reconcile("2026-04") == [
        ("m1", (30, Decimal("90.00")), (30, Decimal("85.50"))),
        ("m2", (30, Decimal("90.00")), (30, Decimal("85.50"))),
    ]


def test_kss_new_code_after_licence_change(world: Any) -> None:
    w = world(now="2026-03-01T09:00:00Z", programme="xsp", defects=defect("kss_new_code_after_licence_change"))
    first = w.activate("k1", "home", "KIS", 10)["activation_code"]
    w.advance("2026-03-20")
    answer = w.count("k1", 15)
    assert answer["activation_code"] != first  # KSS-CODE-1: the code should stay
    assert w.sub("k1")["activation_code"] == answer["activation_code"] and w.sub("k1")["vendor_id"] != "k1"
    with w.partner.kss_rest() as kss:
        old = kss.get("/subscriptions/k1").json()
        new = kss.get(f"/subscriptions/{w.sub('k1')['vendor_id']}").json()
    assert (old["status"], old["activation_code"]) == ("HardCancelled", first)
    assert (new["status"], new["activation_code"], new["customer_id"]) == ("Started", answer["activation_code"], "home")


@pytest.mark.parametrize("defects", [[], ["korm_malformed_answer_crashes"]])
def test_korm_malformed_answer_crashes(world: Any, defects: list[str]) -> None:
    w = world(now="2026-04-15T09:00:00Z", defects=defects)
    w.partner.inject_fault("malformed", service="korm", operation="createSubscription", when="after", times=1)
    answer = w.order("s1", "acme", PAYG, 25, expect=None)
    if defects:  # the garbled answer is an error to the customer, though the vendor placed the order
        assert answer["outcome"] != "done"
    else:  # retried with the same Idempotency-Key: the vendor's first answer, one subscription
        assert answer["outcome"] == "done" and answer["activation_code"]
    assert len(w.korm_subscriptions("acme")) == 1


@pytest.mark.parametrize("defects", [[], ["kss_soap_fault_not_retried"]])
def test_kss_soap_fault_not_retried(world: Any, defects: list[str]) -> None:
    w = world(now="2026-03-01T09:00:00Z", programme="xsp", defects=defects)
    w.partner.inject_fault("soap_fault", service="kss", operation="Activate", times=1)
    answer = w.activate("k1", "home", "KIS", 10, expect=None)
    assert answer["outcome"] == ("refused" if defects else "done")
    with w.partner.kss_rest() as kss:
        status = kss.get("/subscriptions/k1").status_code
    assert status == (404 if defects else 200)


def test_every_defect_has_a_test() -> None:
    """Each defect of the list has its own test here, named after it."""
    assert {name for name in DEFECTS if callable(globals().get(f"test_{name}"))} == set(DEFECTS)
