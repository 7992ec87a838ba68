"""The test harness's part of the /_sim control plane (docs/harness.md): fault rules and the request journal.

Admin token only. The strict contract switch is a partner field (``PATCH /_sim/partners/{id}``).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, request

from ksimkit.simulators.core import faults, harness, journal, partners
from ksimkit.simulators.core.errors import Problem
from ksimkit.simulators.core.web import json_body, json_response, require_admin, runtime

CONTRACT = "admin.openapi.yaml"
bp = Blueprint("admin_harness", __name__, url_prefix="/_sim")

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@bp.before_request
def _admin_only() -> None:
    require_admin()


def _invalid(name: str, message: str) -> Problem:
    return Problem(
        422,
        "VALIDATION_ERROR",
        f"query parameter {name}: {message}",
        rule="SIM-ERR-1",
        errors=[{"path": f"/query/{name}", "message": message}],
    )


def _query_int(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,10}", raw, re.ASCII) or not low <= int(raw) <= high:
        raise _invalid(name, f"expected an integer from {low} to {high}")
    return int(raw)


def _query_bool(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise _invalid(name, "expected true or false")
    return raw == "true"


def _query_text(name: str, choices: tuple[str, ...] | None = None, max_len: int = 64) -> str | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if choices is not None and raw not in choices:
        raise _invalid(name, f"expected one of {', '.join(choices)}")
    if not 1 <= len(raw) <= max_len:
        raise _invalid(name, f"expected 1 to {max_len} characters")
    return raw


def _filters(source: dict[str, Any]) -> journal.Filters:
    return journal.Filters(**{name: source.get(name) for name in journal.Filters.names()})


def _query_filters() -> journal.Filters:
    return journal.Filters(
        service=_query_text("service", faults.SERVICES),
        operation=_query_text("operation"),
        method=_query_text("method", METHODS),
        path=_query_text("path", max_len=2048),
        status=_query_int("status", None, 100, 599),
        conforms=_query_bool("conforms"),
        faulted=_query_bool("faulted"),
    )


# ============================================================================================ faults


@bp.post("/partners/<partner_id>/faults")
def create_fault(partner_id: str) -> Response:
    body = json_body(CONTRACT, "createFault")
    spec = faults.normalise(
        body, harness.operations_by_service(), runtime().settings.fault_seed, runtime().services.fault_kinds
    )
    with runtime().store.begin() as conn:
        partners.load_partner(conn, partner_id)
        created = faults.create(conn, partner_id, spec)
    return json_response(created, 201, {"Location": f"/_sim/partners/{partner_id}/faults/{created['id']}"})


@bp.get("/partners/<partner_id>/faults")
def list_faults(partner_id: str) -> Response:
    with runtime().store.begin() as conn:
        partners.load_partner(conn, partner_id)
        return json_response({"items": faults.list_rules(conn, partner_id)})


@bp.delete("/partners/<partner_id>/faults")
def clear_faults(partner_id: str) -> Response:
    with runtime().store.begin() as conn:
        partners.load_partner(conn, partner_id)
        faults.delete(conn, partner_id)
    return Response(status=204)


@bp.get("/partners/<partner_id>/faults/<fault_id>")
def get_fault(partner_id: str, fault_id: str) -> Response:
    with runtime().store.begin() as conn:
        partners.load_partner(conn, partner_id)
        return json_response(faults.get(conn, partner_id, fault_id))


@bp.delete("/partners/<partner_id>/faults/<fault_id>")
def delete_fault(partner_id: str, fault_id: str) -> Response:
    with runtime().store.begin() as conn:
        partners.load_partner(conn, partner_id)
        faults.delete(conn, partner_id, fault_id)
    return Response(status=204)


# ============================================================================================ journal


@bp.get("/partners/<partner_id>/journal")
def list_journal(partner_id: str) -> Response:
    filters = _query_filters()
    limit = _query_int("limit", 100, 1, 1000)
    offset = _query_int("offset", 0, 0, 2_147_483_647)
    assert limit is not None and offset is not None
    with runtime().store.begin() as conn:
        partners.load_partner(conn, partner_id)
        items, total = journal.entries(conn, partner_id, filters, limit=limit, offset=offset)
    return json_response({"items": items, "total": total})


@bp.delete("/partners/<partner_id>/journal")
def clear_journal(partner_id: str) -> Response:
    with runtime().store.begin() as conn:
        partners.load_partner(conn, partner_id)
        journal.clear(conn, partner_id)
    return Response(status=204)


def _expected(body: dict[str, Any]) -> dict[str, int]:
    expected: dict[str, int] = {k: body[k] for k in ("count", "at_least", "at_most") if k in body}
    if "count" in expected and len(expected) > 1:
        raise Problem(
            422,
            "VALIDATION_ERROR",
            "give count, or at_least and/or at_most, not both",
            rule="SIM-ERR-1",
            errors=[{"path": "/count", "message": "count excludes at_least and at_most"}],
        )
    if expected.get("at_least", 0) > expected.get("at_most", 2**31):
        raise Problem(
            422,
            "VALIDATION_ERROR",
            "at_least is more than at_most",
            rule="SIM-ERR-1",
            errors=[{"path": "/at_least", "message": "more than at_most"}],
        )
    return expected or {"at_least": 1}


def _describe(filters: journal.Filters, expected: dict[str, int]) -> str:
    how = {"count": "exactly {}", "at_least": "at least {}", "at_most": "at most {}"}
    wanted = " and ".join(how[k].format(v) for k, v in expected.items())
    where = ", ".join(f"{k}={v}" for k, v in filters.to_json().items()) or "any request"
    return f"{wanted} journal entries matching {where}"


@bp.post("/partners/<partner_id>/journal/verify")
def verify_journal(partner_id: str) -> Response:
    body = json_body(CONTRACT, "verifyJournal", optional=True)
    expected = _expected(body)
    filters = _filters(body)
    with runtime().store.begin() as conn:
        partners.load_partner(conn, partner_id)
        ok, matched, seen = journal.verify(
            conn,
            partner_id,
            filters,
            count=expected.get("count"),
            at_least=expected.get("at_least"),
            at_most=expected.get("at_most"),
        )
    wanted = _describe(filters, expected)
    if not ok:
        shown = (
            "; ".join(
                f"#{e['id']} {e['method']} {e['path']} -> {e['status'] if e['status'] is not None else 'dropped'}"
                f"{'' if e['conforms'] else ' (non-conforming)'}"
                for e in seen[-5:]
            )
            or "nothing"
        )
        raise Problem(
            409,
            "VERIFICATION_FAILED",
            f"expected {wanted}, found {matched}; latest: {shown}",
            matched=matched,
            expected=expected,
            where=filters.to_json(),
            seen=seen,
        )
    return json_response({"matched": matched, "expected": expected, "where": filters.to_json()})
