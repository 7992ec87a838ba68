"""The /_sim control plane: partners, clocks, reset, audit, approval codes, legacy seeds, KSS prepaid licences and
code pools. Admin token only."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from flask import Blueprint, Response, request

import ksimkit
from ksimkit.simulators.core import audit, clock_mode, partners, terms
from ksimkit.simulators.core.catalog import Profile
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.due import DueSource
from ksimkit.simulators.core.errors import Problem, conflict
from ksimkit.simulators.core.store import audit_log
from ksimkit.simulators.core.store import partners as partners_table
from ksimkit.simulators.core.web import (
    bearer_token,
    is_admin,
    json_body,
    json_response,
    require_admin,
    runtime,
    unauthorized,
)
from ksimkit.simulators.korm import rules as korm_rules
from ksimkit.simulators.kss import control as kss_control

CONTRACT = "admin.openapi.yaml"
bp = Blueprint("admin", __name__, url_prefix="/_sim")


@bp.before_request
def _admin_only() -> None:
    if request.endpoint not in ("admin.health", "admin.get_contract", "admin.get_time"):
        require_admin()


def _datetime(value: str, field: str = "now") -> dt.datetime:
    """RFC 3339 date-time (either case of T and Z); a zone-less one is read in the partner's zone later."""
    try:
        parsed = dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        parsed.astimezone(dt.UTC)  # out-of-range offsets at the calendar's ends overflow here
        return parsed
    except (ValueError, OverflowError):
        raise Problem(
            422,
            "VALIDATION_ERROR",
            f"{value!r} is not a usable RFC 3339 date-time",
            errors=[{"path": f"/{field}", "message": "expected a date-time between years 1 and 9999"}],
        ) from None


def _query_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,10}", raw, re.ASCII) or not low <= int(raw) <= high:
        raise Problem(
            422,
            "VALIDATION_ERROR",
            f"query parameter {name} must be an integer from {low} to {high}",
            errors=[{"path": f"/query/{name}", "message": f"integer {low}..{high}"}],
        )
    return int(raw)


def _admin_context(conn: Any, partner_id: str) -> CallContext:
    partner = partners.load_partner(conn, partner_id)
    return CallContext(partner=partner, profile=runtime().profile, actor="ksim-admin")


def _clockwork() -> tuple[Sequence[DueSource], Profile]:
    """What a clock move needs from the app: the served services' due-event sources and the vendor profile."""
    return runtime().services.due_sources, runtime().profile


@bp.get("/health")
def health() -> Response:
    return json_response({"status": "ok", "version": ksimkit.__version__})


@bp.get("/openapi.yaml")
def get_contract() -> Response:
    return Response(runtime().contracts[CONTRACT].text, mimetype="application/yaml")


@bp.post("/partners")
def create_partner() -> Response:
    body = json_body(CONTRACT, "createPartner", optional=True)
    settings = runtime().settings
    with runtime().store.begin() as conn:
        created = partners.create_partner(
            conn,
            faker_seed=settings.faker_seed,
            default_timezone=settings.default_timezone,
            name=body.get("name"),
            programme=body.get("programme", "reseller"),
            msp_registered=body.get("msp_registered"),
            timezone=body.get("timezone"),
            billing_period=body.get("billing_period", "calendar_month"),
            now=_datetime(body["now"]) if "now" in body else None,
            strict_contract=body.get("strict_contract"),
            partner_id=body.get("id"),
            token=body.get("token"),
            kss_username=(body.get("kss") or {}).get("username"),
            kss_password=(body.get("kss") or {}).get("password"),
        )
    return json_response(created, 201, {"Location": f"/_sim/partners/{created['id']}"})


@bp.get("/partners")
def list_partners() -> Response:
    with runtime().store.begin() as conn:
        return json_response({"items": partners.list_partners_json(conn)})


@bp.get("/partners/<partner_id>")
def get_partner(partner_id: str) -> Response:
    with runtime().store.begin() as conn:
        return json_response(partners.get_partner_json(conn, partner_id))


# Settings that reinterpret what a partner already did (its dates, free months, periods, trial caps, discounts).
RETROACTIVE = ("programme", "billing_period", "timezone")


@bp.patch("/partners/<partner_id>")
def update_partner(partner_id: str) -> Response:
    """Change a partner's settings. ``msp_registered`` only gates future MSP orders (KSS-MSP-2), so it may change
    at any time; the others reinterpret past data, so they may change only while the partner has done nothing
    (its audit log is empty: every change of every service is audited), e.g. right after creation or a reset."""
    body = json_body(CONTRACT, "updatePartner")
    with runtime().store.begin() as conn:
        current = partners.get_partner_json(conn, partner_id)
        values = {k: v for k, v in body.items() if v != current[k]}
        if "strict_contract" in values:  # the test harness's switch: any time, not audited
            partners.set_strict_contract(conn, partner_id, values.pop("strict_contract"))
        if "programme" in values and "msp_registered" not in body:
            values["msp_registered"] = values["programme"] == "msp"  # the default of createPartner
        if "timezone" in values:
            try:
                ZoneInfo(values["timezone"])
            except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory such as 'America'
                raise Problem(
                    422,
                    "VALIDATION_ERROR",
                    f"unknown time zone {values['timezone']!r}",
                    errors=[{"path": "/timezone", "message": "expected an IANA time zone name"}],
                ) from None
        changing = [k for k in RETROACTIVE if k in values]
        if changing:
            used = conn.execute(
                sa.select(sa.func.count()).select_from(audit_log).where(audit_log.c.partner_id == partner_id)
            ).scalar_one()
            if used:
                raise conflict(
                    "PARTNER_IN_USE",
                    f"{', '.join(changing)} can change only while the partner has no data ({used} audit entries); "
                    "reset the partner or create another one",
                )
        if values:
            conn.execute(sa.update(partners_table).where(partners_table.c.id == partner_id).values(**values))
        return json_response(partners.get_partner_json(conn, partner_id))


@bp.get("/partners/<partner_id>/clock")
def get_clock(partner_id: str) -> Response:
    with runtime().store.begin() as conn:
        return json_response(clock_mode.current(conn, partner_id, *_clockwork()).to_json())


@bp.put("/partners/<partner_id>/clock")
def set_clock(partner_id: str) -> Response:
    body = json_body(CONTRACT, "setClock")
    with runtime().store.begin() as conn:
        return json_response(clock_mode.jump(conn, partner_id, _datetime(body["now"]), *_clockwork()).to_json())


@bp.put("/partners/<partner_id>/clock/mode")
def set_clock_mode(partner_id: str) -> Response:
    body = json_body(CONTRACT, "setClockMode")
    with runtime().store.begin() as conn:
        offset = dt.timedelta(seconds=body["offset_seconds"]) if "offset_seconds" in body else None
        return json_response(clock_mode.set_mode(conn, partner_id, body["mode"], *_clockwork(), offset).to_json())


@bp.post("/partners/<partner_id>/clock/advance")
def advance_clock(partner_id: str) -> Response:
    body = json_body(CONTRACT, "advanceClock")
    with runtime().store.begin() as conn:
        clock = clock_mode.current(conn, partner_id, *_clockwork())
        try:
            if "days" in body:
                target = clock.now + dt.timedelta(days=body["days"])
            elif "hours" in body:
                target = clock.now + dt.timedelta(hours=body["hours"])
            elif len(body["to"]) > 10:
                target = _datetime(body["to"], "to")
            else:  # a bare date: the start of that day in the partner's time zone
                target = dt.datetime.combine(dt.date.fromisoformat(body["to"]), dt.time(), clock.zone)
            return json_response(clock_mode.jump(conn, partner_id, target, *_clockwork()).to_json())
        except OverflowError:
            raise Problem(422, "VALIDATION_ERROR", "the clock cannot move past the year 9999") from None


@bp.get("/partners/<partner_id>/terms")
def get_terms(partner_id: str) -> Response:
    """The partner's vendor terms: programme, billing period, time zone, KORM and KSS prices, MSP tiers."""
    with runtime().store.begin() as conn:
        return json_response(terms.vendor_terms(runtime().profile, partners.load_partner(conn, partner_id)))


@bp.get("/partners/<partner_id>/time")
def get_time(partner_id: str) -> Response:
    """The partner's clock as a broker's clock source: readable with the admin token or the partner's own token.
    ``?format=faketime`` answers libfaketime's absolute form (``@2026-04-15 09:00:00``, UTC) as text."""
    token = bearer_token()
    with runtime().store.begin() as conn:
        own = partners.partner_by_token(conn, token) if token else None
        if not is_admin() and (own is None or own.id != partner_id):
            raise unauthorized("the partner's time needs the admin token or the partner's own token")
        clock = clock_mode.current(conn, partner_id, *_clockwork())  # a running clock is caught up to wall time first
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "faketime"):
        raise Problem(
            422,
            "VALIDATION_ERROR",
            "format is json or faketime",
            errors=[{"path": "/query/format", "message": "json or faketime"}],
        )
    now = clock.now.astimezone(dt.UTC)
    faketime = now.strftime("@%Y-%m-%d %H:%M:%S")
    if fmt == "faketime":
        return Response(faketime + "\n", mimetype="text/plain")
    return json_response({**clock.to_json(), "epoch": int(now.timestamp()), "faketime": faketime})


@bp.delete("/partners/<partner_id>")
def delete_partner(partner_id: str) -> Response:
    """The partner and all of its data, journal and audit go; other partners are untouched."""
    with runtime().store.begin() as conn:
        partners.delete_partner(conn, partner_id, runtime().services.resets)
    return Response(status=204)


@bp.post("/partners/<partner_id>/credentials")
def rotate_credentials(partner_id: str) -> Response:
    with runtime().store.begin() as conn:
        return json_response(partners.rotate_credentials(conn, partner_id))


@bp.post("/partners/<partner_id>/reset")
def reset_partner(partner_id: str) -> Response:
    body = json_body(CONTRACT, "resetPartner", optional=True)
    start = _datetime(body["now"]) if "now" in body else None
    with runtime().store.begin() as conn:
        partners.reset_partner(conn, partner_id, runtime().services.resets, start)
        return json_response(clock_mode.current(conn, partner_id, *_clockwork()).to_json())  # with its mode


@bp.get("/partners/<partner_id>/audit")
def list_audit(partner_id: str) -> Response:
    limit = _query_int("limit", 100, 1, 1000)
    offset = _query_int("offset", 0, 0, 2_147_483_647)
    service = request.args.get("service")
    if service is not None and service not in ("korm", "kss", "admin"):
        raise Problem(422, "VALIDATION_ERROR", "service is korm, kss or admin")
    with runtime().store.begin() as conn:
        partners.load_partner(conn, partner_id)
        items, total = audit.entries(
            conn, partner_id, limit=limit, offset=offset, service=service, object_id=request.args.get("object_id")
        )
    return json_response({"items": items, "total": total})


@bp.post("/partners/<partner_id>/approval-codes")
def create_approval_code(partner_id: str) -> Response:
    body = json_body(CONTRACT, "createApprovalCode")
    with runtime().store.begin() as conn:
        ctx = _admin_context(conn, partner_id)
        created = korm_rules.create_approval_code(
            conn,
            ctx,
            percent=Decimal(str(body["percent"])),
            expires_on=dt.date.fromisoformat(body["expires_on"]),
            code=body.get("code"),
        )
    return json_response(created, 201)


@bp.get("/partners/<partner_id>/approval-codes")
def list_approval_codes(partner_id: str) -> Response:
    with runtime().store.begin() as conn:
        return json_response({"items": korm_rules.list_approval_codes(conn, _admin_context(conn, partner_id))})


@bp.post("/partners/<partner_id>/korm/legacy-subscriptions")
def seed_legacy_subscription(partner_id: str) -> Response:
    body = json_body(CONTRACT, "seedLegacySubscription")
    with runtime().store.begin() as conn:
        created = korm_rules.seed_legacy(
            conn,
            _admin_context(conn, partner_id),
            customer_id=body["customer_id"],
            sku_id=body["sku"],
            quantity=body["quantity"],
            activation_date=dt.date.fromisoformat(body["activation_date"]),
        )
    return json_response(created, 201)


@bp.post("/partners/<partner_id>/kss/prepaid")
def seed_kss_prepaid(partner_id: str) -> Response:
    body = json_body(CONTRACT, "seedKssPrepaid")
    with runtime().store.begin() as conn:
        created = kss_control.seed_prepaid(
            conn,
            _admin_context(conn, partner_id),
            body["customer_id"],
            body["product_id"],
            body["licence_count"],
            dt.date.fromisoformat(body["expires_on"]),
        )
    return json_response(created, 201)


@bp.get("/partners/<partner_id>/kss/prepaid")
def list_kss_prepaid(partner_id: str) -> Response:
    with runtime().store.begin() as conn:
        return json_response({"items": kss_control.list_prepaid(conn, _admin_context(conn, partner_id))})


@bp.put("/partners/<partner_id>/kss/code-pool")
def set_kss_code_pool(partner_id: str) -> Response:
    body = json_body(CONTRACT, "setKssCodePool")
    with runtime().store.begin() as conn:
        return json_response(kss_control.set_code_pool(conn, _admin_context(conn, partner_id), body["remaining"]))


@bp.post("/partners/<partner_id>/kss/subscriptions/<path:subscriber_id>/device-activations")
def activate_kss_device(partner_id: str, subscriber_id: str) -> Response:
    """A device uses the subscription's activation code: FirstActivationTime is set by the first one."""
    body = json_body(CONTRACT, "activateKssDevice", optional=True)
    with runtime().store.begin() as conn:
        ctx = _admin_context(conn, partner_id)
        ctx = clock_mode.caught_up(conn, ctx, runtime().services.due_sources)
        at = _datetime(body["at"], "at") if "at" in body else None
        return json_response(kss_control.activate_device(conn, ctx, subscriber_id, at), 201)


@bp.get("/partners/<partner_id>/kss/options")
def get_kss_options(partner_id: str) -> Response:
    with runtime().store.begin() as conn:
        return json_response(kss_control.kss_options(conn, _admin_context(conn, partner_id)))


@bp.put("/partners/<partner_id>/kss/options")
def set_kss_options(partner_id: str) -> Response:
    body = json_body(CONTRACT, "setKssOptions")
    with runtime().store.begin() as conn:
        return json_response(kss_control.set_kss_options(conn, _admin_context(conn, partner_id), body["ext_answers"]))
