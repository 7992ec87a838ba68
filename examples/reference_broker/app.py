"""The reference broker's REST API (JSON), a Flask app over :class:`BrokerService`.

Every customer-facing step answers ``{"outcome": "done"|"refused", "code", "message", "activation_code"}``:
HTTP 200 when the broker could ask the vendor (the vendor's refusal is relayed with its code), 502 when the
vendor could not be reached, and the broker's own refusals (unknown tenant or subscription, a bad request) as
``application/problem+json`` that carries ``outcome: refused`` and a ``code`` too. Routes: README.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from ksimkit.examples.reference_broker import defects as defect_list
from ksimkit.examples.reference_broker.service import BrokerError, BrokerService, Step, parse_moment
from ksimkit.examples.reference_broker.store import Store


def _json(body: Any, status: int = 200, mimetype: str = "application/json") -> Response:
    return Response(json.dumps(body), status=status, mimetype=mimetype)


def _problem(status: int, code: str, message: str) -> Response:
    return _json(
        {
            "outcome": "refused",
            "code": code,
            "message": message,
            "activation_code": None,
            "title": code,
            "status": status,
            "detail": message,
        },
        status,
        "application/problem+json",
    )


def _body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BrokerError(400, "MALFORMED_JSON", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise BrokerError(400, "MALFORMED_JSON", "the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise BrokerError(422, "VALIDATION_ERROR", f"{name} is required")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BrokerError(422, "VALIDATION_ERROR", f"{name} has the wrong type")
    return value


def _count(body: dict[str, Any], name: str, *, required: bool = True, minimum: int = 1) -> Any:
    value = _field(body, name, int, required=required)
    if value is not None and value < minimum:
        raise BrokerError(422, "VALIDATION_ERROR", f"{name} must be at least {minimum}")
    return value


def create_app(
    database_url: str = "sqlite:///reference-broker.db",
    defects: frozenset[str] | set[str] = frozenset(),
    *,
    use_env: bool = True,
) -> Flask:
    """The broker as a WSGI app. ``defects`` (and ``REFERENCE_BROKER_DEFECTS`` unless ``use_env`` is false) apply to
    every tenant of this process, on top of each tenant's own."""
    process_defects = defect_list.parse(defects) | (defect_list.from_env() if use_env else frozenset())
    service = BrokerService(Store(database_url), process_defects)
    app = Flask("reference_broker")
    app.extensions["reference_broker"] = service

    @app.errorhandler(BrokerError)
    def _broker_error(exc: BrokerError) -> Response:
        return _problem(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return _problem(
            exc.code or 500,
            {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.code or 500, "HTTP_ERROR"),
            exc.description or exc.name,
        )

    def step(result: Step) -> Response:
        return _json(result.to_json(), result.status)

    def route(rule: str, methods: list[str]) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
        return app.route(rule, methods=methods)

    @route("/health", ["GET"])
    def health() -> Response:
        return _json({"status": "ok", "defects": sorted(process_defects)})

    @route("/build", ["GET"])
    def build() -> Response:
        # What a certificate names as the broker's build: the ksim release it ships with, plus its seeded defects.
        from ksimkit import __version__

        defects = "+".join(sorted(process_defects)) or "no-defects"
        return _json({"build": f"reference-broker {__version__} ({defects})"})

    @route("/defects", ["GET"])
    def list_defects() -> Response:
        return _json(
            {"items": [{"name": d.name, "wrong": d.wrong, "rule": d.rule} for d in defect_list.DEFECTS.values()]}
        )

    # ---------------------------------------------------------------- tenants and the clock

    @route("/tenants", ["POST"])
    def create_tenant() -> Response:
        return _json(service.create_tenant(_body()), 201)

    @route("/tenants/<tenant>", ["GET"])
    def get_tenant(tenant: str) -> Response:
        return _json(service.tenant_json(tenant))

    @route("/tenants/<tenant>", ["DELETE"])
    def stop_tenant(tenant: str) -> Response:
        return _json(service.stop_tenant(tenant))

    @route("/tenants/<tenant>/clock", ["GET"])
    def get_clock(tenant: str) -> Response:
        info = service.tenant_json(tenant)
        return _json({"now": info["now"], "today": info["today"], "timezone": info["timezone"]})

    @route("/tenants/<tenant>/clock", ["POST", "PUT"])
    def set_clock(tenant: str) -> Response:
        return _json(service.set_clock(tenant, _field(_body(), "now", str)))

    @route("/tenants/<tenant>/invoices/<period>", ["GET"])
    def get_invoice(tenant: str, period: str) -> Response:
        return _json(service.invoice(tenant, period))

    # ---------------------------------------------------------------- subscriptions (both services)

    @route("/tenants/<tenant>/subscriptions", ["GET"])
    def list_subscriptions(tenant: str) -> Response:
        return _json({"items": service.subscriptions(tenant)})

    @route("/tenants/<tenant>/subscriptions/<ref>", ["GET"])
    @route("/tenants/<tenant>/kss/subscriptions/<ref>", ["GET"])
    def get_subscription(tenant: str, ref: str) -> Response:
        return _json(service.subscription(tenant, ref))

    @route("/tenants/<tenant>/subscriptions/<ref>/reactivate", ["POST"])
    @route("/tenants/<tenant>/kss/subscriptions/<ref>/reactivate", ["POST"])
    def reactivate(tenant: str, ref: str) -> Response:
        return step(service.reactivate(tenant, ref))

    # ---------------------------------------------------------------- KORM SS

    @route("/tenants/<tenant>/subscriptions", ["POST"])
    def order(tenant: str) -> Response:
        body = _body()
        return step(
            service.order(
                tenant,
                _field(body, "ref", str),
                _field(body, "customer", str),
                _field(body, "sku", str),
                _count(body, "quantity"),
                _field(body, "approval_code", str, required=False),
            )
        )

    @route("/tenants/<tenant>/subscriptions/<ref>/quantity", ["POST"])
    def change_quantity(tenant: str, ref: str) -> Response:
        return step(service.change_quantity(tenant, ref, _count(_body(), "quantity")))

    @route("/tenants/<tenant>/subscriptions/<ref>/switch-plan", ["POST"])
    def switch_plan(tenant: str, ref: str) -> Response:
        body = _body()
        return step(
            service.switch_plan(tenant, ref, _field(body, "sku", str), _count(body, "quantity", required=False))
        )

    @route("/tenants/<tenant>/subscriptions/<ref>/stop", ["POST"])
    def stop(tenant: str, ref: str) -> Response:
        return step(service.stop(tenant, ref))

    @route("/tenants/<tenant>/migrate", ["POST"])
    def migrate(tenant: str) -> Response:
        return step(service.migrate(tenant))

    # ---------------------------------------------------------------- KSS 3.0

    @route("/tenants/<tenant>/kss/subscriptions", ["POST"])
    def activate(tenant: str) -> Response:
        body = _body()
        return step(
            service.activate(
                tenant,
                _field(body, "ref", str),
                _field(body, "customer", str),
                _field(body, "product", str),
                _count(body, "count"),
                _count(body, "trial_days", required=False, minimum=0) or 0,
            )
        )

    @route("/tenants/<tenant>/kss/subscriptions/<ref>/count", ["POST"])
    def change_count(tenant: str, ref: str) -> Response:
        return step(service.change_count(tenant, ref, _count(_body(), "count")))

    @route("/tenants/<tenant>/kss/subscriptions/<ref>/product", ["POST"])
    def change_product(tenant: str, ref: str) -> Response:
        return step(service.change_product(tenant, ref, _field(_body(), "product", str)))

    @route("/tenants/<tenant>/kss/subscriptions/<ref>/pause", ["POST"])
    def pause(tenant: str, ref: str) -> Response:
        until = _field(_body(), "until", str, required=False)
        with service.store.begin() as conn:
            zone = service.tenant(conn, tenant).zone
        return step(service.pause(tenant, ref, None if until is None else parse_moment(until, zone, "until")))

    @route("/tenants/<tenant>/kss/subscriptions/<ref>/resume", ["POST"])
    def resume(tenant: str, ref: str) -> Response:
        return step(service.resume(tenant, ref))

    @route("/tenants/<tenant>/kss/subscriptions/<ref>/cancel-at-month-end", ["POST"])
    def cancel_at_month_end(tenant: str, ref: str) -> Response:
        return step(service.cancel_at_month_end(tenant, ref, _field(_body(), "month", str)))

    @route("/tenants/<tenant>/kss/subscriptions/<ref>/hard-cancel", ["POST"])
    def hard_cancel(tenant: str, ref: str) -> Response:
        return step(service.hard_cancel(tenant, ref))

    return app
