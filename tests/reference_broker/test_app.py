"""The broker's own API: its refusals, settings and entry point."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ksimkit.examples.reference_broker import __main__ as main
from ksimkit.examples.reference_broker.app import create_app
from ksimkit.examples.reference_broker.defects import DEFECTS, ENV


def test_broker_refusals_are_problem_json_with_an_outcome(world: Any, broker: Any) -> None:
    w = world(now="2026-04-15T09:00:00Z")
    with httpx.Client(base_url=broker.url) as http:
        answer = http.post(
            "/tenants/tnt_nope/subscriptions", json={"ref": "a", "customer": "c", "sku": "x", "quantity": 1}
        )
        assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"
        assert (answer.json()["outcome"], answer.json()["code"]) == ("refused", "TENANT_NOT_FOUND")
        assert http.post("/tenants", json={"now": "2026-04-15T09:00:00Z"}).json()["code"] == "VALIDATION_ERROR"
        assert (
            http.post(
                f"/tenants/{w.tenant}/subscriptions", content=b"{", headers={"Content-Type": "application/json"}
            ).json()["code"]
            == "MALFORMED_JSON"
        )
        assert http.post(f"/tenants/{w.tenant}/subscriptions", json={"ref": "a"}).status_code == 422
        assert http.get(f"/tenants/{w.tenant}/invoices/2026-13").json()["code"] == "INVALID_PERIOD"
        assert http.post(f"/tenants/{w.tenant}/clock", json={"now": "2026-01-01"}).json()["code"] == "CLOCK_BACKWARDS"
    w.order("s1", "acme", "KESB-SELECT-PAYG-20-49", 25)
    assert w.order("s1", "acme", "KESB-SELECT-PAYG-20-49", 25, expect="refused")["code"] == "REF_EXISTS"
    assert w.count("s1", 3, expect="refused")["code"] == "WRONG_SERVICE"
    assert w.quantity("nope", 3, expect="refused")["code"] == "SUBSCRIPTION_NOT_FOUND"
    assert w.http.delete(f"/tenants/{w.tenant}").json()["stopped"] is True
    assert w.quantity("s1", 30, expect="refused")["code"] == "TENANT_STOPPED"
    assert w.sub("s1")["status"] == "active"  # still readable


def test_unknown_defects_are_refused(world: Any, ksim_admin: Any) -> None:
    with pytest.raises(AssertionError, match="UNKNOWN_DEFECT"):
        world(now="2026-04-15T09:00:00Z", defects=["no_such_defect"])
    with pytest.raises(ValueError, match="no_such_defect"):
        create_app("sqlite://", defects={"no_such_defect"})


def test_process_defects_from_the_environment_apply_to_every_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "stop_day_billed, kss_msp_tier_ignored")
    app = create_app("sqlite://", defects={"payg_reduction_whole_month"})
    assert app.extensions["reference_broker"].defects == {
        "stop_day_billed",
        "kss_msp_tier_ignored",
        "payg_reduction_whole_month",
    }
    assert create_app("sqlite://", use_env=False).extensions["reference_broker"].defects == frozenset()
    with app.test_client() as client:
        assert client.get("/health").json["defects"] == sorted(app.extensions["reference_broker"].defects)
        assert {d["name"] for d in client.get("/defects").json["items"]} == set(DEFECTS)


def test_main_arguments() -> None:
    args = main.parse_args(["--port", "9000", "--database-url", "sqlite:///x.db", "--defects", "stop_day_billed"])
    assert (args.port, args.database_url, args.defects) == (9000, "sqlite:///x.db", {"stop_day_billed"})
    with pytest.raises(SystemExit):
        main.parse_args(["--defects", "nope"])
