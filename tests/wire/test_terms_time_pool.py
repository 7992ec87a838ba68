"""What a broker certified as it is reads from ksim: its vendor terms (GET /_sim/partners/{id}/terms), its KSS price
list (GET /kss/v1/prices), its clock (GET /_sim/partners/{id}/time) — and pooled partners with fixed credentials
(fixed at creation, reset to a new start)."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ksimkit.simulators.client import KsimAdmin, KsimError
from ksimkit.simulators.core.catalog import load_profile

pytestmark = pytest.mark.wire
ADMIN = {"Authorization": "Bearer test-admin"}


def _fixed_ids() -> dict[str, str]:
    n = secrets.token_hex(6)
    return {"id": f"ptn_{n}", "token": f"pool-token-{n}", "username": f"pool-{n}"}


def test_KSS_MSP_1_terms_document_holds_every_price_and_the_msp_tiers(server: Any) -> None:
    profile = load_profile()
    with KsimAdmin(server.url, "test-admin") as admin:
        partner = admin.create_partner(
            programme="msp", billing_period="30_days", timezone="Europe/Berlin", now="2026-04-15T09:00:00Z"
        )
        terms = partner.terms()
    assert (terms["programme"], terms["billing_period"], terms["timezone"]) == ("msp", "30_days", "Europe/Berlin")
    assert terms["msp_registered"] is True and terms["currency"] == profile.currency
    skus = {s["sku"]: s for s in terms["korm"]["skus"]}
    assert set(skus) == set(profile.skus)
    assert Decimal(skus["KESB-SELECT-PAYG-20-49"]["price"]) == profile.skus["KESB-SELECT-PAYG-20-49"].price
    kss = terms["kss"]
    assert kss["msp_tiers_apply"] is True
    assert [(t["from_licences"], Decimal(t["percent"])) for t in kss["msp_tiers"]] == [
        (t.from_licences, t.percent) for t in profile.msp_tiers
    ]
    products = {p["product_id"]: p["price"] for p in kss["products"]}
    assert products == {pid: f"{p.price:.2f}" for pid, p in profile.kss_products.items() if "msp" in p.programmes}


def test_KSS_MSP_1_price_list_over_kss_rest_is_the_partners_own(server: Any) -> None:
    with KsimAdmin(server.url, "test-admin") as admin:
        xsp = admin.create_partner(programme="xsp", now="2026-04-15T09:00:00Z")
        reseller = admin.create_partner(programme="reseller", now="2026-04-15T09:00:00Z")
        with xsp.kss_rest() as kss:
            xsp_list = kss.get("/prices")
        with reseller.kss_rest() as kss:
            reseller_list = kss.get("/prices")
        anonymous = httpx.get(server.url + "/kss/v1/prices", timeout=10)
    assert xsp_list.status_code == 200 and reseller_list.status_code == 200
    assert "KIS" in {p["product_id"] for p in xsp_list.json()["products"]}
    assert "KIS" not in {p["product_id"] for p in reseller_list.json()["products"]}
    assert xsp_list.json()["msp_tiers_apply"] is False and xsp_list.json()["trial_cap"] == {"months": 2, "days": 0}
    assert xsp_list.json() == admin_terms_kss(server, xsp.id)
    assert anonymous.status_code == 401 and anonymous.headers["content-type"].startswith("application/problem+json")


def admin_terms_kss(server: Any, partner_id: str) -> dict[str, Any]:
    with KsimAdmin(server.url, "test-admin") as admin:
        return admin.request("GET", f"/partners/{partner_id}/terms")["kss"]  # type: ignore[no-any-return]


def test_SIM_CLOCK_1_time_endpoint_follows_the_partner_clock_for_its_own_token(server: Any) -> None:
    with KsimAdmin(server.url, "test-admin") as admin:
        partner = admin.create_partner(now="2026-04-15T09:00:00Z", timezone="Asia/Tokyo")
        own = {"Authorization": f"Bearer {partner.token}"}
        first = httpx.get(partner.time_url, headers=own, timeout=10)
        partner.advance(to="2026-05-01")
        moved = httpx.get(partner.time_url, headers=own, timeout=10)
        text = httpx.get(partner.time_url, params={"format": "faketime"}, headers=ADMIN, timeout=10)
    assert first.json()["now"] == "2026-04-15T09:00:00Z" and first.json()["epoch"] == 1776243600
    assert moved.json()["now"] == "2026-04-30T15:00:00Z"  # 00:00 on 1 May in Tokyo
    assert moved.json()["today"] == "2026-05-01" and moved.json()["faketime"] == "@2026-04-30 15:00:00"
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert text.text == "@2026-04-30 15:00:00\n"


def test_SIM_AUTH_1_time_endpoint_refuses_another_partners_token(server: Any) -> None:
    with KsimAdmin(server.url, "test-admin") as admin:
        mine = admin.create_partner(now="2026-04-15T09:00:00Z")
        other = admin.create_partner(now="2026-04-15T09:00:00Z")
    refused = httpx.get(mine.time_url, headers={"Authorization": f"Bearer {other.token}"}, timeout=10)
    missing = httpx.get(mine.time_url, timeout=10)
    assert refused.status_code == 401 and missing.status_code == 401
    assert refused.json()["code"] == "UNAUTHORIZED"


def test_SIM_ERR_1_time_endpoint_unknown_format_is_a_problem(server: Any) -> None:
    with KsimAdmin(server.url, "test-admin") as admin:
        partner = admin.create_partner(now="2026-04-15T09:00:00Z")
    answer = httpx.get(partner.time_url, params={"format": "xml"}, headers=ADMIN, timeout=10)
    assert answer.status_code == 422 and answer.json()["code"] == "VALIDATION_ERROR"


def test_SIM_AUTH_1_pooled_partner_has_the_fixed_credentials_and_they_are_unique(server: Any) -> None:
    fixed = _fixed_ids()
    with KsimAdmin(server.url, "test-admin") as admin:
        partner = admin.create_partner(
            partner_id=fixed["id"],
            token=fixed["token"],
            kss_username=fixed["username"],
            kss_password="pool-secret",
            now="2026-04-15T09:00:00Z",
        )
        assert (partner.id, partner.token, partner.kss_username, partner.kss_password) == (
            fixed["id"],
            fixed["token"],
            fixed["username"],
            "pool-secret",
        )
        with partner.korm() as korm:
            assert korm.get("/products").status_code == 200
        for taken in ({"partner_id": fixed["id"]}, {"token": fixed["token"]}, {"kss_username": fixed["username"]}):
            with pytest.raises(KsimError) as caught:
                admin.create_partner(**taken)
            assert caught.value.status == 409 and caught.value.code == "CREDENTIALS_IN_USE"
        count = len(admin.partners())
        with pytest.raises(KsimError) as bad:
            admin.create_partner(token="short")
        assert bad.value.status == 422 and len(admin.partners()) == count


def test_SIM_CLOCK_1_reset_to_a_new_start_reuses_a_partner(server: Any) -> None:
    with KsimAdmin(server.url, "test-admin") as admin:
        partner = admin.create_partner(now="2026-06-01T00:00:00Z")
        with partner.korm() as korm:
            korm.post("/subscriptions", json={"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25})
        clock = partner.reset(now="2025-01-10T08:00:00Z")
        assert clock.now.isoformat().startswith("2025-01-10T08:00:00")
        with partner.korm() as korm:
            assert korm.get("/subscriptions").json()["items"] == []
        partner.advance(days=1)
        assert partner.reset().now.isoformat().startswith("2025-01-10T08:00:00")  # the new start stays the start


LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@pytest.mark.skipif(
    not __import__("os").path.exists(LIBFAKETIME) or not __import__("shutil").which("curl"),
    reason="libfaketime (apt-get install libfaketime) and curl are needed for the recipe",
)
def test_SIM_CLOCK_1_the_documented_libfaketime_recipe_follows_the_partner_clock(server: Any, tmp_path: Any) -> None:
    """docs/certify-your-broker.md: the adapter's clock step writes the time endpoint's faketime form into the file a
    broker running under libfaketime reads; the broker's system clock is then the partner's."""
    import datetime as dt
    import os
    import subprocess

    from ksimkit.scenarios.brokers.base import TenantSetup
    from ksimkit.scenarios.brokers.http import HttpAdapter

    clock_file = tmp_path / "broker-clock"
    with KsimAdmin(server.url, "test-admin") as admin:
        partner = admin.create_partner(now="2026-04-15T09:00:00Z")
        adapter = HttpAdapter.from_dict(
            {
                "methods": {
                    "advance_clock": {
                        "command": [
                            "sh",
                            "-c",
                            "curl -sf '{time_url}?format=faketime' "
                            f"-H 'Authorization: Bearer test-admin' > {clock_file}",
                        ]
                    },
                    "stop": {"command": ["true"]},
                }
            },
            source="faketime.yaml",
        )
        broker = adapter.broker()
        broker.start(
            TenantSetup(
                scenario_id="ft",
                korm_url=partner.korm_url,
                korm_token=partner.token,
                kss_wsdl_url=partner.kss_soap_url + "?wsdl",
                kss_username=partner.kss_username,
                kss_password=partner.kss_password,
                now=dt.datetime(2026, 4, 15, 9, tzinfo=dt.UTC),
                timezone="UTC",
                partner_id=partner.id,
            )
        )
        partner.advance(to="2026-06-01")
        broker.advance_clock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    assert clock_file.read_text() == "@2026-06-01 00:00:00\n"
    env = {
        **os.environ,
        "LD_PRELOAD": LIBFAKETIME,
        "FAKETIME_TIMESTAMP_FILE": str(clock_file),
        "FAKETIME_NO_CACHE": "1",
        "TZ": "UTC",
    }
    seen = subprocess.run(["date", "-u", "+%F"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert seen == "2026-06-01"
