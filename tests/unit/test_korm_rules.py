"""KORM SS rules, called directly on a real SQLite store. Figures are computed by hand in the comments.

Prices (packaged profile): KESB-SELECT PAYG 20-49 = 2.82/licence/month, PAYG 50-99 = 2.70,
KESB-SELECT YEARLY 20-49 = 28.20/licence/year.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from ksimkit.simulators.core.catalog import load_profile
from ksimkit.simulators.core.errors import SimulatorError
from ksimkit.simulators.korm import billing, rules
from ksimkit.simulators.korm.errors import SubscriptionDeleted
from ksimkit.simulators.korm.rules import Order
from ksimkit.simulators.korm.tables import subscriptions

PAYG_20 = "KESB-SELECT-PAYG-20-49"
PAYG_50 = "KESB-SELECT-PAYG-50-99"
YEAR_20 = "KESB-SELECT-YEARLY-20-49"


def refused(code: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """The refusal (a KORM rule's ``KormError``, or a core ``Problem``) with this code."""
    with pytest.raises(SimulatorError) as info:
        fn(*args, **kwargs)
    assert getattr(info.value, "code", None) == code, info.value
    return info.value


def lines(world: Any, period: str, kind: str | None = None) -> list[dict[str, Any]]:
    found = world.call(billing.statement, period)["lines"]
    return [line for line in found if kind is None or line["kind"] == kind]


def count_subscriptions(world: Any) -> int:
    with world.store.begin() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(subscriptions)).scalar_one()


def test_KORM_PLAN_1_payg_and_yearly_for_every_product() -> None:
    profile = load_profile()
    products = {s.product_id for s in profile.skus.values()}
    assert len(products) == 14
    for product in products:
        assert {s.billing_model for s in profile.skus.values() if s.product_id == product} == {"payg", "yearly"}
    assert profile.skus[PAYG_20].price_period == "month"
    assert profile.skus[YEAR_20].price_period == "year"


def test_KORM_TRIAL_1_trial_is_refused_and_nothing_is_created(world: Any) -> None:
    problem = refused("TRIAL_NOT_SUPPORTED", world.call, rules.order, Order("c1", PAYG_20, 25, trial=True))
    assert problem.rule == "KORM-TRIAL-1"
    refused("TRIAL_NOT_SUPPORTED", world.call, rules.order, Order("c1", PAYG_20, 25, trial_days=14))
    assert count_subscriptions(world) == 0
    # Billable from the activation date: the first day is charged.
    world.call(rules.order, Order("c1", PAYG_20, 25))
    assert lines(world, "2026-04")[0]["days"] == 16


def test_KORM_ACT_1_nothing_before_the_activation_date(world: Any) -> None:
    sub = world.call(rules.order, Order("c1", PAYG_20, 25, activation_date=dt.date(2026, 5, 1)))
    assert sub["status"] == "pending"
    refused("NOT_YET_ACTIVE", world.call, rules.change_quantity, sub["id"], 30)
    refused("NOT_YET_ACTIVE", world.call, rules.stop, sub["id"])
    refused(
        "INVALID_ACTIVATION_DATE",
        world.call,
        rules.order,
        Order("c1", PAYG_20, 25, activation_date=dt.date(2026, 4, 1)),
    )
    assert lines(world, "2026-04") == []
    world.go_to("2026-05-01")
    # A change dated before activation is refused even once active.
    refused("NOT_YET_ACTIVE", world.call, rules.change_quantity, sub["id"], 30, dt.date(2026, 4, 30))
    assert world.call(rules.change_quantity, sub["id"], 30)["quantity"] == 30


def test_KORM_PAYG_1_count_up_and_down_at_any_time(world: Any) -> None:
    sub = world.call(rules.order, Order("c1", PAYG_20, 25))
    assert world.call(rules.change_quantity, sub["id"], 40)["quantity"] == 40
    assert world.call(rules.change_quantity, sub["id"], 21)["quantity"] == 21
    world.go_to("2026-04-16")
    assert world.call(rules.change_quantity, sub["id"], 49)["quantity"] == 49


def test_KORM_PAYG_2_licence_days_priced_by_days_in_month(world: Any) -> None:
    # 25 licences from 15 April: April 25 x 16 = 400 licence-days; 400 x 2.82 / 30 = 37.60.
    sub = world.call(rules.order, Order("c1", PAYG_20, 25))
    world.go_to("2026-05-10")
    world.call(rules.change_quantity, sub["id"], 20)
    april = lines(world, "2026-04")
    assert [(line["units"], line["days"], line["amount"]) for line in april] == [(400, 16, "37.60")]
    # May: 25 x 9 (1-9 May) + 20 x 22 (10-31 May) = 665 licence-days; 665 x 2.82 / 31 = 60.4935... -> 60.49.
    may = lines(world, "2026-05")
    assert [(line["units"], line["days"], line["amount"]) for line in may] == [(665, 31, "60.49")]
    assert may[0]["unit_price"] == "0.090968"  # 2.82 / 31
    statement = world.call(billing.statement, "2026-05")
    assert statement["provisional"] is True  # the partner's today (10 May) is inside May
    assert world.call(billing.statement, "2026-04")["provisional"] is False


def test_KORM_PAYG_2_several_changes_in_one_day_last_one_counts(world: Any) -> None:
    sub = world.call(rules.order, Order("c1", PAYG_20, 25))
    world.call(rules.change_quantity, sub["id"], 40)
    world.call(rules.change_quantity, sub["id"], 30)
    # 30 x 16 = 480 licence-days; 480 x 2.82 / 30 = 45.12.
    assert [(line["units"], line["amount"]) for line in lines(world, "2026-04")] == [(480, "45.12")]


def test_KORM_RANGE_1_quantity_must_stay_in_the_band(world: Any) -> None:
    refused("OUT_OF_RANGE", world.call, rules.order, Order("c1", PAYG_20, 19))
    sub = world.call(rules.order, Order("c1", PAYG_20, 25))
    problem = refused("OUT_OF_RANGE", world.call, rules.change_quantity, sub["id"], 50)
    assert problem.rule == "KORM-RANGE-1"
    refused("OUT_OF_RANGE", world.call, rules.change_quantity, sub["id"], 19)
    assert world.call(rules.get_subscription, sub["id"])["quantity"] == 25


def test_KORM_PAYG_3_plan_switch_rates_days_at_each_band(world: Any) -> None:
    world.go_to("2026-06-01")
    sub = world.call(rules.order, Order("c1", PAYG_20, 45))
    world.go_to("2026-06-11")
    switched = world.call(rules.switch_plan, sub["id"], PAYG_50, 60)
    assert (switched["sku"], switched["quantity"]) == (PAYG_50, 60)
    assert switched["activation_code"] == sub["activation_code"]
    # 45 x 10 days = 450 ld x 2.82 / 30 = 42.30; 60 x 20 days = 1200 ld x 2.70 / 30 = 108.00.
    june = {line["sku"]: (line["units"], line["amount"]) for line in lines(world, "2026-06")}
    assert june == {PAYG_20: (450, "42.30"), PAYG_50: (1200, "108.00")}
    refused("SAME_PLAN", world.call, rules.switch_plan, sub["id"], PAYG_50)
    refused("SWITCH_TO_OTHER_PRODUCT", world.call, rules.switch_plan, sub["id"], "KESB-ADV-PAYG-50-99")
    refused("SWITCH_TO_OTHER_PRODUCT", world.call, rules.switch_plan, sub["id"], "KESB-SELECT-YEARLY-50-99")
    refused("OUT_OF_RANGE", world.call, rules.switch_plan, sub["id"], "KESB-SELECT-PAYG-100-249")
    refused("UNKNOWN_SKU", world.call, rules.switch_plan, sub["id"], "NOPE")


def test_KORM_YEAR_1_yearly_reduction_refused(world: Any) -> None:
    sub = world.call(rules.order, Order("c1", YEAR_20, 30))
    problem = refused("DECREASE_NOT_ALLOWED", world.call, rules.change_quantity, sub["id"], 25)
    assert problem.rule == "KORM-YEAR-1"
    assert world.call(rules.get_subscription, sub["id"])["quantity"] == 30


def test_KORM_YEAR_2_yearly_switch_refused(world: Any) -> None:
    sub = world.call(rules.order, Order("c1", YEAR_20, 30))
    problem = refused("SWITCH_NOT_ALLOWED", world.call, rules.switch_plan, sub["id"], "KESB-SELECT-YEARLY-50-99", 60)
    assert problem.rule == "KORM-YEAR-2"


def test_KORM_YEAR_3_increase_charged_pro_rata_for_the_rest_of_the_year(make_world: Any) -> None:
    world = make_world(now=dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC))
    sub = world.call(rules.order, Order("c1", YEAR_20, 20))
    world.go_to("2026-07-02")
    world.call(rules.change_quantity, sub["id"], 30)
    # 10 added licences x 28.20 x 183 days left (2 Jul 2026 .. 1 Jan 2027) / 365 = 141.386... -> 141.39.
    increase = lines(world, "2026-07", "yearly_increase")
    assert [(line["units"], line["days"], line["amount"]) for line in increase] == [(10, 183, "141.39")]


def test_KORM_YEAR_4_year_fee_on_activation_and_each_anniversary_no_refund(make_world: Any) -> None:
    world = make_world(now=dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC))
    sub = world.call(rules.order, Order("c1", YEAR_20, 20))
    # 20 x 28.20 = 564.00 in January 2026; nothing in February.
    assert [(line["units"], line["amount"]) for line in lines(world, "2026-01", "yearly_fee")] == [(20, "564.00")]
    assert lines(world, "2026-02") == []
    world.go_to("2026-07-02")
    world.call(rules.change_quantity, sub["id"], 30)
    # Anniversary on 1 January 2027 at the count then in force: 30 x 28.20 = 846.00.
    assert [(line["units"], line["amount"]) for line in lines(world, "2027-01", "yearly_fee")] == [(30, "846.00")]
    world.go_to("2027-03-01")
    world.call(rules.stop, sub["id"])
    # The stop refunds nothing (January 2027 still billed) and no anniversary follows.
    assert lines(world, "2027-01", "yearly_fee")[0]["amount"] == "846.00"
    assert lines(world, "2027-03") == [] and lines(world, "2028-01") == []


def test_KORM_STOP_1_stopped_is_deleted_for_good(world: Any) -> None:
    sub = world.call(rules.order, Order("c1", PAYG_20, 25))
    world.go_to("2026-04-20")
    stopped = world.call(rules.stop, sub["id"])
    assert (stopped["status"], stopped["stopped_on"]) == ("deleted", "2026-04-20")
    for fn, args in [
        (rules.get_subscription, ()),
        (rules.change_quantity, (30,)),
        (rules.switch_plan, (PAYG_50, 60)),
        (rules.stop, ()),
        (rules.reactivate, ()),
    ]:
        problem = refused("SUBSCRIPTION_DELETED", world.call, fn, sub["id"], *args)
        assert isinstance(problem, SubscriptionDeleted) and problem.rule == "KORM-STOP-1"  # 410 on the wire
    # 15..19 April: 25 x 5 = 125 licence-days (the stop day is not counted); nothing in May.
    assert [(line["units"], line["to"]) for line in lines(world, "2026-04")] == [(125, "2026-04-20")]
    assert lines(world, "2026-05") == []
    assert world.call(rules.list_subscriptions) == []
    assert len(world.call(rules.list_subscriptions, include_deleted=True)) == 1


def test_KORM_STOP_1_reactivate_of_a_live_subscription_is_refused_too(world: Any) -> None:
    sub = world.call(rules.order, Order("c1", PAYG_20, 25))
    refused("SUBSCRIPTION_ACTIVE", world.call, rules.reactivate, sub["id"])


def test_KORM_STOP_2_a_new_order_gets_a_never_seen_code(world: Any) -> None:
    first = world.call(rules.order, Order("c1", PAYG_20, 25))
    world.call(rules.stop, first["id"])
    seen = {first["activation_code"]}
    for _ in range(20):
        again = world.call(rules.order, Order("c1", PAYG_20, 25))
        assert again["activation_code"] not in seen
        seen.add(again["activation_code"])
        world.call(rules.stop, again["id"])


def test_KORM_APPR_1_approval_discount_lowers_vendor_bill_only(world: Any) -> None:
    world.call(rules.create_approval_code, percent=Decimal("15"), expires_on=dt.date(2026, 12, 31), code="APR-GOOD")
    world.call(rules.create_approval_code, percent=Decimal("10"), expires_on=dt.date(2026, 4, 1), code="APR-OLD")
    sub = world.call(rules.order, Order("c1", PAYG_20, 25, approval_code="APR-GOOD"))
    assert (sub["approval_code"], sub["discount_percent"]) == ("APR-GOOD", "15.00")
    # List price stays 37.60; the vendor bills 37.60 - 15% (5.64) = 31.96.
    line = lines(world, "2026-04")[0]
    assert (line["gross"], line["discount"], line["amount"]) == ("37.60", "5.64", "31.96")
    before = count_subscriptions(world)
    refused("APPROVAL_CODE_USED", world.call, rules.order, Order("c2", PAYG_20, 25, approval_code="APR-GOOD"))
    refused("APPROVAL_CODE_EXPIRED", world.call, rules.order, Order("c2", PAYG_20, 25, approval_code="APR-OLD"))
    refused("INVALID_APPROVAL_CODE", world.call, rules.order, Order("c2", PAYG_20, 25, approval_code="APR-NOPE"))
    assert count_subscriptions(world) == before


def test_KORM_LEG_1_legacy_free_until_next_month(world: Any) -> None:
    world.call(rules.seed_legacy, customer_id="c1", sku_id=PAYG_20, quantity=25, activation_date=dt.date(2026, 4, 15))
    assert lines(world, "2026-04") == []
    # May is the first charged month: 25 x 2.82 = 70.50.
    assert [(line["kind"], line["units"], line["amount"]) for line in lines(world, "2026-05")] == [
        ("legacy_month", 25, "70.50")
    ]


def test_KORM_LEG_2_legacy_month_at_its_maximum(world: Any) -> None:
    # Seed 000's example: 25 licences mid-April, free until May; reduced to 20 in May; May charged for 25.
    sub = world.call(
        rules.seed_legacy, customer_id="c1", sku_id=PAYG_20, quantity=25, activation_date=dt.date(2026, 4, 15)
    )
    world.go_to("2026-05-10")
    world.call(rules.change_quantity, sub["id"], 20)
    assert [(line["units"], line["amount"]) for line in lines(world, "2026-05")] == [(25, "70.50")]
    # June at 20 all month: 20 x 2.82 = 56.40.
    assert [(line["units"], line["amount"]) for line in lines(world, "2026-06")] == [(20, "56.40")]


def test_KORM_MIG_1_migration_only_on_the_first_keeping_code_customer_count(world: Any) -> None:
    sub = world.call(
        rules.seed_legacy, customer_id="c9", sku_id=PAYG_20, quantity=20, activation_date=dt.date(2026, 3, 3)
    )
    world.go_to("2026-06-15")
    problem = refused("MIGRATION_NOT_ALLOWED", world.call, rules.migrate_legacy)
    assert problem.rule == "KORM-MIG-1"
    assert world.call(rules.get_subscription, sub["id"])["billing_model"] == "legacy"
    world.go_to("2026-07-01")
    result = world.call(rules.migrate_legacy)
    assert result == {"migrated_on": "2026-07-01", "subscription_ids": [sub["id"]]}
    after = world.call(rules.get_subscription, sub["id"])
    assert (after["billing_model"], after["activation_code"], after["customer_id"], after["quantity"]) == (
        "payg",
        sub["activation_code"],
        "c9",
        20,
    )
    # From 1 July PAYG: 20 x 31 = 620 licence-days x 2.82 / 31 = 56.40; June stays a legacy month.
    assert [(line["kind"], line["units"], line["amount"]) for line in lines(world, "2026-07")] == [
        ("licence_days", 620, "56.40")
    ]
    assert [line["kind"] for line in lines(world, "2026-06")] == ["legacy_month"]
    # Now PAYG: a reduction in July is billed by licence-days, and switches are allowed.
    world.go_to("2026-07-11")
    world.call(rules.switch_plan, sub["id"], PAYG_50, 50)


def test_SIM_AUTH_1_another_partners_subscription_is_not_found(make_world: Any) -> None:
    alice, bob = make_world(), make_world()
    sub = alice.call(rules.order, Order("c1", PAYG_20, 25))
    for fn, args in [(rules.get_subscription, ()), (rules.change_quantity, (30,)), (rules.stop, ())]:
        refused("SUBSCRIPTION_NOT_FOUND", bob.call, fn, sub["id"], *args)
    assert bob.call(rules.list_subscriptions) == [] and bob.call(billing.statement, "2026-04")["lines"] == []
    assert alice.call(rules.get_subscription, sub["id"])["quantity"] == 25


def test_SIM_CLOCK_1_each_partner_has_its_own_forward_only_clock(make_world: Any) -> None:
    alice, bob = make_world(), make_world()
    alice.go_to("2026-09-01")
    assert alice.today() == dt.date(2026, 9, 1) and bob.today() == dt.date(2026, 4, 15)
    refused("CLOCK_BACKWARDS", alice.go_to, "2026-08-01")
    # Rules read the partner clock, not the machine's: the order is dated on the partner's today.
    assert alice.call(rules.order, Order("c1", PAYG_20, 25))["activation_date"] == "2026-09-01"
