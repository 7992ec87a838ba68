"""A tiny broker REST API for the adapter and CLI tests: a Flask app that serves the scripted broker's tenants,
with an API deliberately unlike the reference broker's (other paths, a body-less outcome: refusals are 4xx)."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Any

from flask import Flask, jsonify, request

from ksimkit.scenarios.brokers.base import LegacySubscription, TenantSetup
from tests.scenarios.scripted_broker import ScriptedBroker

ADAPTER_YAML = """
name: tiny-broker
base_url: http://tiny.invalid
timeout: 20
headers: {X-Api-Key: "${TINY_BROKER_KEY:-k-123}"}
result: {outcome: http_status, code: error.code, message: error.detail, activation_code: subscription.code}
methods:
  start:
    url: /v2/tenants
    body:
      setup: {scenario: "{scenario_id}", korm: {url: "{korm_url}", token: "{korm_token}"},
              kss: {wsdl: "{kss_wsdl_url}", user: "{kss_username}", password: "{kss_password}"},
              clock: "{now}", zone: "{timezone}", prices: "{prices}", legacy: "{legacy}"}
    tenant_id: tenant.id
  stop_tenant: {method: DELETE, url: "/v2/tenants/{tenant}"}
  advance_clock: {method: PUT, url: "/v2/tenants/{tenant}/clock", body: {at: "{to}"}}
  order:
    url: /v2/tenants/{tenant}/orders
    body: {ref: "{ref}", customer: "{customer}", sku: "{sku}", licences: "{quantity}", approval: "{approval_code}"}
  change_quantity: {url: "/v2/tenants/{tenant}/orders/{ref}/licences", body: {licences: "{quantity}"}}
  stop: {url: "/v2/tenants/{tenant}/orders/{ref}/stop"}
  reactivate: {url: "/v2/tenants/{tenant}/orders/{ref}/reactivate"}
  activate:
    url: /v2/tenants/{tenant}/kss
    body: {ref: "{ref}", customer: "{customer}", product: "{product}", count: "{count}", trial_days: "{trial_days}"}
  change_count: {url: "/v2/tenants/{tenant}/kss/{ref}/count", body: {count: "{count}"}}
  charges:
    url: /v2/tenants/{tenant}/billing
    params: {month: "{period}"}
    items: invoice.rows
    fields: {ref: subscription, customer: customer, units: qty, amount: price.customer, vendor_cost: price.vendor}
  activation_code: {url: "/v2/tenants/{tenant}/orders/{ref}", value: subscription.code}
"""


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def create_app(defects: frozenset[str] = frozenset()) -> Flask:
    app = Flask("tiny-broker")
    tenants: dict[str, ScriptedBroker] = {}
    seen_keys: list[str] = []
    app.config["seen_keys"] = seen_keys
    app.config["tenants"] = tenants

    @app.before_request
    def _key() -> Any:
        seen_keys.append(request.headers.get("X-Api-Key", ""))
        return None

    def broker(tenant: str) -> ScriptedBroker:
        return tenants[tenant]

    def step(result: Any) -> Any:
        if result.outcome == "done":
            return jsonify({"subscription": {"code": result.activation_code}}), 200
        return jsonify({"error": {"code": result.code, "detail": result.message}}), 409

    @app.post("/v2/tenants")
    def start() -> Any:
        setup = request.get_json()["setup"]
        tenant = TenantSetup(
            scenario_id=setup["scenario"],
            korm_url=setup["korm"]["url"],
            korm_token=setup["korm"]["token"],
            kss_wsdl_url=setup["kss"]["wsdl"],
            kss_username=setup["kss"]["user"],
            kss_password=setup["kss"]["password"],
            now=_time(setup["clock"]),
            timezone=setup["zone"],
            prices={k: Decimal(v) for k, v in (setup.get("prices") or {}).items()},
            legacy=tuple(
                LegacySubscription(**{**item, "activation_date": dt.date.fromisoformat(item["activation_date"])})
                for item in setup.get("legacy") or []
            ),
        )
        tenant_id = "t-" + secrets.token_hex(4)
        tenants[tenant_id] = ScriptedBroker(defects)
        tenants[tenant_id].start(tenant)
        return jsonify({"tenant": {"id": tenant_id}}), 201

    @app.delete("/v2/tenants/<tenant>")
    def stop_tenant(tenant: str) -> Any:
        tenants.pop(tenant).stop_tenant()
        return "", 204

    @app.put("/v2/tenants/<tenant>/clock")
    def clock(tenant: str) -> Any:
        broker(tenant).advance_clock(_time(request.get_json()["at"]))
        return jsonify({"ok": True})

    @app.post("/v2/tenants/<tenant>/orders")
    def order(tenant: str) -> Any:
        body = request.get_json()
        return step(
            broker(tenant).order(body["ref"], body["customer"], body["sku"], body["licences"], body.get("approval"))
        )

    @app.post("/v2/tenants/<tenant>/orders/<ref>/licences")
    def licences(tenant: str, ref: str) -> Any:
        return step(broker(tenant).change_quantity(ref, request.get_json()["licences"]))

    @app.post("/v2/tenants/<tenant>/orders/<ref>/stop")
    def stop(tenant: str, ref: str) -> Any:
        return step(broker(tenant).stop(ref))

    @app.post("/v2/tenants/<tenant>/orders/<ref>/reactivate")
    def reactivate(tenant: str, ref: str) -> Any:
        return step(broker(tenant).reactivate(ref))

    @app.post("/v2/tenants/<tenant>/kss")
    def activate(tenant: str) -> Any:
        body = request.get_json()
        return step(
            broker(tenant).activate(
                body["ref"], body["customer"], body["product"], body["count"], body.get("trial_days", 0)
            )
        )

    @app.post("/v2/tenants/<tenant>/kss/<ref>/count")
    def count(tenant: str, ref: str) -> Any:
        return step(broker(tenant).change_count(ref, request.get_json()["count"]))

    @app.get("/v2/tenants/<tenant>/orders/<ref>")
    def get_order(tenant: str, ref: str) -> Any:
        code = broker(tenant).activation_code(ref)
        if code is None:
            return jsonify({"error": {"code": "NOT_FOUND"}}), 404
        return jsonify({"subscription": {"ref": ref, "code": code}})

    @app.get("/v2/tenants/<tenant>/billing")
    def billing(tenant: str) -> Any:
        rows = [
            {
                "subscription": c.ref,
                "customer": c.customer,
                "qty": c.units,
                "price": {"customer": str(c.amount), "vendor": str(c.vendor_cost)},
            }
            for c in broker(tenant).charges(request.args["month"])
        ]
        return jsonify({"invoice": {"rows": rows}})

    return app
