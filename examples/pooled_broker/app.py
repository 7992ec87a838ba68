"""The pooled example broker's REST API: "companies" bound to fixed vendor accounts, its own ids, codes and invoices.

The broker is the reference broker's engine (``ksimkit.examples.reference_broker.service``) behind another
operator's API, the way a partner's ERP is not shaped like ksim's Broker protocol:

- **No tenant API.** Its vendor accounts are configured once, from a pool file (``pool.yaml``: per company a KORM
  token and KSS credentials); ``POST /admin/companies/{company}/reset`` only empties a company's books (tests).
- **Its own ids.** An order answers a number (``SO-…``) that later calls use; the scenario's ref never reaches it.
- **Its own codes.** ``{"status": "ACCEPTED"|"REJECTED", "error": {"code": "E-…"}}``; the vendor's codes are not
  relayed (ksim reads them from its journal).
- **Its own clock.** Moved by its CLI (``python -m ksimkit.examples.pooled_broker clock``), which runs the month
  end like a scheduled job.
- **Its own invoice shape.** ``{"invoice": {"rows": [{"order", "client", "seats", "total", "our_cost"}]}}``.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from ksimkit.examples.reference_broker.service import BrokerError, BrokerService, Step, parse_moment
from ksimkit.examples.reference_broker.store import Store
from ksimkit.scenarios.pool import load_pool

# The broker's own refusal codes: what it tells its customers, whatever the vendor's code was.
OWN_CODES: dict[str, str] = {
    "SUBSCRIPTION_DELETED": "E-ORDER-CLOSED",
    "DECREASE_NOT_ALLOWED": "E-NO-DECREASE",
    "OUT_OF_RANGE": "E-SEATS-RANGE",
    "UNKNOWN_SKU": "E-NO-SUCH-PLAN",
    "SWITCH_NOT_ALLOWED": "E-NO-SWITCH",
    "SAME_PLAN": "E-NO-SWITCH",
    "SWITCH_TO_OTHER_PRODUCT": "E-NO-SWITCH",
    "MIGRATION_NOT_ALLOWED": "E-NO-MIGRATION",
    "NOT_YET_ACTIVE": "E-NOT-ACTIVE",
    "INVALID_APPROVAL_CODE": "E-DISCOUNT",
    "APPROVAL_CODE_USED": "E-DISCOUNT",
    "APPROVAL_CODE_EXPIRED": "E-DISCOUNT",
    "701": "E-TRIAL",
    "703": "E-PREPAID",
    "704": "E-NOT-REGISTERED",
    "705": "E-NO-SUCH-PLAN",
    "707": "E-NO-CHANGE",
}


def _own_code(code: str | None) -> str:
    if code is None:
        return "E-REFUSED"
    return OWN_CODES.get(code, "E-REFUSED")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def create_app(database_url: str, pool_path: str) -> Flask:
    """The broker as a WSGI app; ``pool_path`` is read once, here (its vendor accounts)."""
    accounts = {(m.tenant or m.id): m for m in load_pool(pool_path)}
    service = BrokerService(Store(database_url))
    books: dict[str, str] = {}  # company -> the engine's tenant holding its current books
    lock = threading.Lock()
    app = Flask("pooled_broker")
    app.extensions["pooled_broker"] = service

    @app.errorhandler(BrokerError)
    def _broker_error(exc: BrokerError) -> Response:
        return _json(
            {
                "status": "REJECTED",
                "error": {"code": _own_code(exc.code) if exc.status < 500 else "E-DOWN", "message": exc.message},
            },
            exc.status,
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return _json(
            {"status": "REJECTED", "error": {"code": "E-BAD-REQUEST", "message": exc.description}}, exc.code or 500
        )

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise BrokerError(400, "MALFORMED_JSON", "send a JSON object")
        return data

    def tenant(company: str) -> str:
        with lock:
            found = books.get(company)
        if found is None:
            raise BrokerError(404, "NO_COMPANY", f"company {company!r} has no books yet (reset it)")
        return found

    def answer(step: Step, number: str | None = None) -> Response:
        if step.outcome == "done":
            return _json({"status": "ACCEPTED", "order": {"number": number, "licence_key": step.activation_code}})
        return _json({"status": "REJECTED", "error": {"code": _own_code(step.code), "message": step.message}})

    route: Callable[..., Any] = app.route

    @route("/admin/companies/<company>/reset", methods=["POST"])
    def reset(company: str) -> Response:
        """Empty the company's books and open new ones from ``now`` (its vendor account stays the configured one)."""
        account = accounts.get(company)
        if account is None:
            raise BrokerError(404, "NO_COMPANY", f"no company {company!r} in the pool file")
        data = body()
        vendor = str(data.get("vendor_url") or "").rstrip("/")
        created = service.create_tenant(
            {
                "scenario_id": company,
                "korm_url": f"{vendor}/korm/v1",
                "korm_token": account.token,
                "kss_wsdl_url": f"{vendor}/kss/soap/upi?wsdl",
                "kss_username": account.kss_username,
                "kss_password": account.kss_password,
                "kss_rest_url": f"{vendor}/kss/v1",
                "now": data.get("now"),
                "timezone": data.get("timezone"),
                "prices": data.get("prices") or {},
                "programme": data.get("programme"),
                "billing_period": data.get("billing_period"),
            }
        )
        with lock:
            books[company] = created["id"]
        return _json({"company": company, "books": created["id"]})

    @route("/admin/companies/<company>/clock", methods=["POST"])
    def clock(company: str) -> Response:
        """Move the company's clock; the month end runs as its scheduled job would."""
        result = service.set_clock(tenant(company), body().get("now"))
        return _json({"company": company, "now": result["now"], "closed": result["closed"]})

    @route("/api/companies/<company>/orders", methods=["POST"])
    def order(company: str) -> Response:
        data, number = body(), "SO-" + secrets.token_hex(5).upper()
        if data.get("kind") == "kss":
            step = service.activate(
                tenant(company),
                number,
                str(data["client"]),
                str(data["plan"]),
                int(data["seats"]),
                int(data.get("trial_days") or 0),
            )
        else:
            step = service.order(
                tenant(company),
                number,
                str(data["client"]),
                str(data["plan"]),
                int(data["seats"]),
                data.get("discount_code"),
            )
        return answer(step, number)

    @route("/api/companies/<company>/orders/<number>", methods=["GET"])
    def get_order(company: str, number: str) -> Response:
        sub = service.subscription(tenant(company), number)
        return _json(
            {
                "order": {
                    "number": number,
                    "client": sub["customer"],
                    "licence_key": sub["activation_code"],
                    "state": sub["status"],
                }
            }
        )

    @route("/api/companies/<company>/orders/<number>/<action>", methods=["POST"])
    def change(company: str, number: str, action: str) -> Response:
        t, data = tenant(company), body() if request.get_data().strip() else {}
        if action == "seats":
            kss = service.subscription(t, number)["service"] == "kss"
            step = (service.change_count if kss else service.change_quantity)(t, number, int(data["seats"]))
        elif action == "plan":
            step = service.switch_plan(t, number, str(data["plan"]), data.get("seats"))
        elif action == "product":
            step = service.change_product(t, number, str(data["plan"]))
        elif action == "cancel":
            step = service.stop(t, number)
        elif action == "renew":
            step = service.reactivate(t, number)
        elif action == "hold":
            until = data.get("until")
            with service.store.begin() as conn:
                zone = service.tenant(conn, t).zone
            step = service.pause(t, number, None if until is None else parse_moment(until, zone, "until"))
        elif action == "release":
            step = service.resume(t, number)
        elif action == "cancel-at-month-end":
            step = service.cancel_at_month_end(t, number, str(data["month"]))
        elif action == "terminate":
            step = service.hard_cancel(t, number)
        else:
            raise BrokerError(404, "NO_ACTION", f"no action {action!r}")
        return answer(step, number)

    @route("/api/companies/<company>/invoices", methods=["GET"])
    def invoice(company: str) -> Response:
        month = request.args.get("month", "")
        issued = service.invoice(tenant(company), month)
        rows = [
            {
                "order": line["ref"],
                "client": line["customer"],
                "seats": line["units"],
                "total": line["amount"],
                "our_cost": line["vendor_cost"],
            }
            for line in issued["lines"]
        ]
        return _json({"invoice": {"month": month, "final": issued["final"], "rows": rows}})

    return app
