"""adapter.yaml drives the reference broker through ksim's own HTTP adapter (scenarios/brokers/http.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from ksimkit.scenarios.brokers import base, http

ADAPTER = Path(__file__).resolve().parents[2] / "examples" / "reference_broker" / "adapter.yaml"
BROKER_METHODS = (
    "start",
    "stop_tenant",
    "order",
    "change_quantity",
    "switch_plan",
    "stop",
    "reactivate",
    "migrate",
    "activate",
    "change_count",
    "change_product",
    "pause",
    "resume",
    "cancel_at_month_end",
    "hard_cancel",
    "advance_clock",
    "charges",
    "activation_code",
    "build",
)

UTC = dt.UTC


def test_the_adapter_maps_every_broker_method() -> None:
    data = yaml.safe_load(ADAPTER.read_text(encoding="utf-8"))
    assert set(data["methods"]) == set(BROKER_METHODS)
    adapter = http.HttpAdapter.load(ADAPTER, base_url="http://127.0.0.1:1")
    assert all(adapter.supports(name) for name in BROKER_METHODS)


def _start(adapter: Any, partner: Any, now: dt.datetime, **setup: Any) -> Any:
    broker = adapter.broker()
    broker.start(
        base.TenantSetup(
            scenario_id="adapter-test",
            korm_url=partner.korm_url,
            korm_token=partner.token,
            kss_wsdl_url=partner.kss_soap_url + "?wsdl",
            kss_username=partner.kss_username,
            kss_password=partner.kss_password,
            now=now,
            timezone="UTC",
            **setup,
        )
    )
    return broker


def _advance(broker: Any, partner: Any, day: str) -> None:
    clock = partner.advance(to=day)
    broker.advance_clock(clock.now)


def test_korm_worked_example_through_the_adapter(ksim_admin: Any, broker: Any) -> None:
    adapter = http.HttpAdapter.load(ADAPTER, base_url=broker.url)
    now = dt.datetime(2026, 4, 15, 9, tzinfo=UTC)
    partner = ksim_admin.create_partner(now=now)
    b = _start(adapter, partner, now, prices={"KESB-SELECT-PAYG-20-49": Decimal("2.82")})
    try:
        ordered = b.order("s1", "acme", "KESB-SELECT-PAYG-20-49", 25)
        assert ordered.outcome == "done" and ordered.activation_code == b.activation_code("s1")
        _advance(b, partner, "2026-05-10")
        assert b.change_quantity("s1", 20).outcome == "done"
        same = b.switch_plan("s1", "KESB-SELECT-PAYG-20-49")
        assert (same.outcome, same.code) == ("refused", "SAME_PLAN")
        _advance(b, partner, "2026-06-01")
        assert [(c.period, c.ref, c.units, c.amount) for c in b.charges("2026-04")] == [
            ("2026-04", "s1", 400, Decimal("37.60"))
        ]
        assert [(c.units, c.amount, c.vendor_cost) for c in b.charges("2026-05")] == [
            (665, Decimal("60.49"), Decimal("60.49"))
        ]
        assert b.stop("s1").outcome == "done"
        refused = b.reactivate("s1")
        assert (refused.outcome, refused.code) == ("refused", "SUBSCRIPTION_DELETED")
        assert b.activation_code("nope") is None
    finally:
        b.stop_tenant()


def test_kss_worked_example_through_the_adapter(ksim_admin: Any, broker: Any) -> None:
    adapter = http.HttpAdapter.load(ADAPTER, base_url=broker.url)
    now = dt.datetime(2026, 3, 1, 9, tzinfo=UTC)
    partner = ksim_admin.create_partner(programme="xsp", now=now)
    b = _start(adapter, partner, now)
    try:
        code = b.activate("k1", "home", "KIS", 10).activation_code
        _advance(b, partner, "2026-03-20")
        assert b.change_count("k1", 15).activation_code == code
        _advance(b, partner, "2026-04-05")
        assert b.change_count("k1", 8).activation_code == code
        _advance(b, partner, "2026-05-02")
        assert b.pause("k1", dt.datetime(2026, 5, 20, tzinfo=UTC)).outcome == "done"
        assert b.resume("k1").outcome == "done"
        assert b.cancel_at_month_end("k1", "2026-05").outcome == "done"
        _advance(b, partner, "2026-06-01")
        assert b.reactivate("k1").activation_code == code
        assert b.change_product("k1", "KTS").outcome == "done"
        assert b.hard_cancel("k1").outcome == "done"
        assert [(c.units, c.amount) for c in b.charges("2026-03")] == [(15, Decimal("44.85"))]
        assert [(c.units, c.amount) for c in b.charges("2026-04")] == [(15, Decimal("44.85"))]
        assert [(c.units, c.amount) for c in b.charges("2026-05")] == [(8, Decimal("23.92"))]
        unknown = b.change_count("nope", 3)
        assert (unknown.outcome, unknown.code) == ("refused", "SUBSCRIPTION_NOT_FOUND")
    finally:
        b.stop_tenant()


def test_korm_legacy_named_by_the_tenant_setup(ksim_admin: Any, broker: Any) -> None:
    adapter = http.HttpAdapter.load(ADAPTER, base_url=broker.url)
    now = dt.datetime(2026, 4, 15, 9, tzinfo=UTC)
    partner = ksim_admin.create_partner(now=now)
    seeded = partner.seed_legacy_subscription("acme", "KESB-SELECT-PAYG-20-49", 25, "2026-03-10")
    legacy = base.LegacySubscription(
        ref="L1",
        customer="acme",
        sku="KESB-SELECT-PAYG-20-49",
        quantity=25,
        activation_date=dt.date(2026, 3, 10),
        activation_code=seeded["activation_code"],
        vendor_id=seeded["id"],
    )
    b = _start(adapter, partner, now, legacy=(legacy,))
    try:
        assert b.activation_code("L1") == seeded["activation_code"]
        _advance(b, partner, "2026-05-01")
        assert b.migrate().outcome == "done"
        _advance(b, partner, "2026-06-01")
        assert [(c.ref, c.units, c.amount) for c in b.charges("2026-04")] == [("L1", 25, Decimal("70.50"))]
        assert [(c.ref, c.units) for c in b.charges("2026-05")] == [("L1", 25 * 31)]
    finally:
        b.stop_tenant()
