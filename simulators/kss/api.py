"""KSS partner-portal REST API (/kss/v1): read-only views of the KSS rules. Parse, call the rules, render.

KSS 3.0 has no public REST API for any of this: it is ksim's own partner portal, modelled on seed 002's
"monthly collective bill" (KSS-BILL-1), "monthly report" (KSS-REPORT-1) and "modifications recorded by name
and timestamp" (KSS-AUDIT-1). Orders and changes go through the SOAP service; nothing here writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request

from ksimkit.simulators.core import audit, harness, terms
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.errors import Problem
from ksimkit.simulators.core.web import authenticate_partner, call_context, json_response, runtime
from ksimkit.simulators.kss import billing, views

CONTRACT = "kss-rest.openapi.yaml"
MAX_ID = 200  # a SubscriberId is stored in up to 200 characters
bp = Blueprint("kss", __name__, url_prefix="/kss/v1")


def _run(action: Callable[[Any, CallContext], Response]) -> Response:
    """One transaction per request, through the test harness: authenticate, then act (SIM-AUTH-1: everything is
    the caller's own)."""
    return harness.serve(
        lambda conn: call_context(authenticate_partner(conn)), lambda conn, ctx, fault: action(conn, ctx)
    )


def _invalid(where: str, message: str) -> Problem:
    return Problem(
        422, "VALIDATION_ERROR", f"{where}: {message}", rule="SIM-ERR-1", errors=[{"path": where, "message": message}]
    )


def _query_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,10}", raw, re.ASCII) or not low <= int(raw) <= high:
        raise _invalid(f"query/{name}", f"expected an integer from {low} to {high}")
    return int(raw)


def _query_id(name: str) -> str | None:
    raw = request.args.get(name)
    if raw is not None and not 1 <= len(raw) <= MAX_ID:
        raise _invalid(f"query/{name}", f"expected 1 to {MAX_ID} characters")
    return raw


@bp.get("/openapi.yaml")
def get_contract() -> Response:
    return Response(runtime().contracts[CONTRACT].text, mimetype="application/yaml")


@bp.get("/prices")
def get_prices() -> Response:
    """A ksim convenience: the partner's KSS price list and MSP tiers (the vendor's service has no such call)."""
    return _run(lambda conn, ctx: json_response(terms.kss_price_list(ctx.profile, ctx.partner)))


@bp.get("/bills/<period>")
def get_bill(period: str) -> Response:
    """KSS-BILL-1: one collective bill per month over all the partner's customers."""
    return _run(lambda conn, ctx: json_response(billing.bill(conn, ctx, period)))


@bp.get("/reports/<period>")
def get_report(period: str) -> Response:
    """KSS-REPORT-1: the subscriptions running in the month, per customer."""
    return _run(lambda conn, ctx: json_response(billing.report(conn, ctx, period)))


@bp.get("/audit")
def list_audit() -> Response:
    """KSS-AUDIT-1: the partner's own KSS modifications, oldest first, with who made them and when."""

    def action(conn: Any, ctx: CallContext) -> Response:
        limit = _query_int("limit", 100, 1, 1000)
        offset = _query_int("offset", 0, 0, 2_147_483_647)
        object_id = _query_id("object_id")
        items, total = audit.entries(
            conn, ctx.partner_id, limit=limit, offset=offset, service="kss", object_id=object_id
        )
        return json_response({"items": items, "total": total})

    return _run(action)


@bp.get("/subscriptions/<subscriber_id>")
def get_subscription(subscriber_id: str) -> Response:
    """One subscription with its dated history (another partner's SubscriberId is unknown: SIM-AUTH-1)."""

    def action(conn: Any, ctx: CallContext) -> Response:
        if len(subscriber_id) > MAX_ID:
            raise _invalid("path/subscriber_id", f"is longer than {MAX_ID} characters")
        return json_response(views.get_subscription(conn, ctx, subscriber_id))

    return _run(action)
