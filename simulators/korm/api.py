"""KORM SS over REST (/korm/v1): parse, call the rules, render; the rules' refusals as problem+json. No rule is
decided here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request, url_for

from ksimkit.simulators.core import harness
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.errors import Problem
from ksimkit.simulators.core.web import (
    authenticate_partner,
    call_context,
    idempotent,
    json_body,
    json_response,
    parse_date,
    problem_response,
    runtime,
)
from ksimkit.simulators.korm import billing, rules
from ksimkit.simulators.korm.errors import (
    InvalidRequest,
    KormError,
    StateConflict,
    SubscriptionDeleted,
    SubscriptionNotFound,
)
from ksimkit.simulators.korm.plans import CATALOG_MODELS

CONTRACT = "korm-ss.openapi.yaml"
bp = Blueprint("korm", __name__, url_prefix="/korm/v1")

# The HTTP status of each kind of refusal of the rules.
STATUS_OF: dict[type[KormError], int] = {
    SubscriptionNotFound: 404,
    SubscriptionDeleted: 410,
    StateConflict: 409,
    InvalidRequest: 422,
}


def problem_of(error: KormError) -> Problem:
    """A refusal of the rules as the problem+json answer it gets: its kind's status, its code, detail, rule and
    extra fields."""
    status = next(STATUS_OF[kind] for kind in type(error).__mro__ if kind in STATUS_OF)
    return Problem(status, error.code, error.detail, rule=error.rule, **error.extra)


@bp.app_errorhandler(KormError)
def _refused(error: KormError) -> Response:
    # app-wide: the control plane's KORM test data (approval codes, legacy subscriptions) calls the same rules
    return problem_response(problem_of(error))


def _identify(conn: Any) -> CallContext:
    return call_context(authenticate_partner(conn))


MAX_PATH_ID = 64  # the contract's maxLength of the path parameters subscription_id and sku


def _check_path_ids() -> None:
    """A path id longer than the contract allows is a 422 VALIDATION_ERROR (SIM-ERR-1), not an unknown id."""
    for name in ("subscription_id", "sku"):
        value = (request.view_args or {}).get(name)
        if value is not None and len(value) > MAX_PATH_ID:
            message = f"is longer than {MAX_PATH_ID} characters"
            raise Problem(
                422,
                "VALIDATION_ERROR",
                f"path/{name}: {message}",
                rule="SIM-ERR-1",
                errors=[{"path": f"path/{name}", "message": message}],
            )


def _run(action: Callable[[Any, CallContext], Response], *, write: bool = False) -> Response:
    """One transaction per request, through the test harness: authenticate, check the path ids, act; a refusal
    (a ``Problem`` or a rules' ``KormError``) rolls everything back."""

    def work(conn: Any, ctx: CallContext, fault: object) -> Response:
        _check_path_ids()
        if write:
            return idempotent(conn, ctx.partner_id, lambda: action(conn, ctx))
        return action(conn, ctx)

    return harness.serve(_identify, work)


def _flag(name: str) -> bool:
    raw = request.args.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise Problem(
            422,
            "VALIDATION_ERROR",
            f"query parameter {name} must be true or false",
            errors=[{"path": f"/query/{name}", "message": "expected true or false"}],
        )
    return raw == "true"


@bp.get("/openapi.yaml")
def get_contract() -> Response:
    return Response(runtime().contracts[CONTRACT].text, mimetype="application/yaml")


@bp.get("/products")
def list_products() -> Response:
    product_id = request.args.get("product_id")
    model = request.args.get("billing_model")

    def action(conn: Any, ctx: CallContext) -> Response:
        if model is not None and model not in CATALOG_MODELS:
            raise Problem(
                422,
                "VALIDATION_ERROR",
                "billing_model must be payg or yearly",
                errors=[{"path": "/query/billing_model", "message": "expected payg or yearly"}],
            )
        items = [
            s.to_json()
            for s in ctx.profile.skus.values()
            if (product_id is None or s.product_id == product_id) and (model is None or s.billing_model == model)
        ]
        return json_response({"items": items})

    return _run(action)


@bp.get("/products/<sku>")
def get_product(sku: str) -> Response:
    def action(conn: Any, ctx: CallContext) -> Response:
        found = ctx.profile.sku(sku)
        if found is None:
            raise Problem(404, "SKU_NOT_FOUND", f"no SKU {sku!r} in the catalog")
        return json_response(found.to_json())

    return _run(action)


@bp.post("/subscriptions")
def create_subscription() -> Response:
    def action(conn: Any, ctx: CallContext) -> Response:
        body = json_body(CONTRACT, "createSubscription")
        order = rules.Order(
            customer_id=body["customer_id"],
            sku=body["sku"],
            quantity=body["quantity"],
            activation_date=parse_date(body.get("activation_date")),
            approval_code=body.get("approval_code"),
            trial=body.get("trial", False),
            trial_days=body.get("trial_days", 0),
            external_ref=body.get("external_ref"),
        )
        sub = rules.order(conn, ctx, order)
        location = url_for("korm.get_subscription", subscription_id=sub["id"])
        return json_response(sub, 201, {"Location": location})

    return _run(action, write=True)


@bp.get("/subscriptions")
def list_subscriptions() -> Response:
    status = request.args.get("status")

    def action(conn: Any, ctx: CallContext) -> Response:
        if status is not None and status not in ("pending", "active", "deleted"):
            raise Problem(
                422,
                "VALIDATION_ERROR",
                "status must be pending, active or deleted",
                errors=[{"path": "/query/status", "message": "expected pending, active or deleted"}],
            )
        include_deleted = _flag("include_deleted")
        items = rules.list_subscriptions(
            conn, ctx, customer_id=request.args.get("customer_id"), status=status, include_deleted=include_deleted
        )
        return json_response({"items": items})

    return _run(action)


@bp.get("/subscriptions/<subscription_id>")
def get_subscription(subscription_id: str) -> Response:
    return _run(lambda conn, ctx: json_response(rules.get_subscription(conn, ctx, subscription_id)))


@bp.post("/subscriptions/<subscription_id>/quantity")
def change_quantity(subscription_id: str) -> Response:
    def action(conn: Any, ctx: CallContext) -> Response:
        body = json_body(CONTRACT, "changeQuantity")
        return json_response(
            rules.change_quantity(conn, ctx, subscription_id, body["quantity"], parse_date(body.get("effective_date")))
        )

    return _run(action, write=True)


@bp.post("/subscriptions/<subscription_id>/switch-plan")
def switch_plan(subscription_id: str) -> Response:
    def action(conn: Any, ctx: CallContext) -> Response:
        body = json_body(CONTRACT, "switchPlan")
        return json_response(
            rules.switch_plan(
                conn, ctx, subscription_id, body["sku"], body.get("quantity"), parse_date(body.get("effective_date"))
            )
        )

    return _run(action, write=True)


@bp.post("/subscriptions/<subscription_id>/stop")
def stop_subscription(subscription_id: str) -> Response:
    def action(conn: Any, ctx: CallContext) -> Response:
        body = json_body(CONTRACT, "stopSubscription", optional=True)
        return json_response(rules.stop(conn, ctx, subscription_id, parse_date(body.get("effective_date"))))

    return _run(action, write=True)


@bp.post("/subscriptions/<subscription_id>/reactivate")
def reactivate_subscription(subscription_id: str) -> Response:
    def action(conn: Any, ctx: CallContext) -> Response:
        json_body(CONTRACT, "reactivateSubscription", optional=True)
        return json_response(rules.reactivate(conn, ctx, subscription_id))

    return _run(action, write=True)


@bp.post("/migrations")
def migrate_legacy() -> Response:
    def action(conn: Any, ctx: CallContext) -> Response:
        json_body(CONTRACT, "migrateLegacy", optional=True)
        return json_response(rules.migrate_legacy(conn, ctx))

    return _run(action, write=True)


@bp.get("/billing/<period>")
def get_statement(period: str) -> Response:
    return _run(lambda conn, ctx: json_response(billing.statement(conn, ctx, period)))
