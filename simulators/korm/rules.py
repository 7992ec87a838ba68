"""KORM SS rules: the subscription state machine and every rule check (no HTTP here).

Every change is a dated row in ``korm_history``; billing reads that history. Changes take effect on the
partner's today (SIM-CLOCK-1). A function here either applies its whole change or raises a ``KormError``
(``korm/errors.py``); the front end answers it.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core import audit
from ksimkit.simulators.core.catalog import Sku
from ksimkit.simulators.core.clock import iso_utc
from ksimkit.simulators.core.codes import issue_code
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.korm.errors import (
    InvalidRequest,
    StateConflict,
    SubscriptionDeleted,
    SubscriptionNotFound,
)
from ksimkit.simulators.korm.plans import LEGACY, PAYG, YEARLY, check_band, next_anniversary, sku_of
from ksimkit.simulators.korm.tables import approval_codes, history, subscriptions


@dataclass(frozen=True)
class Order:
    customer_id: str
    sku: str
    quantity: int
    activation_date: dt.date | None = None
    approval_code: str | None = None
    trial: bool = False
    trial_days: int = 0
    external_ref: str | None = None


# ---------------------------------------------------------------- reading


def status_of(row: Any, today: dt.date) -> str:
    if row.stopped_on is not None:
        return "deleted"
    return "pending" if row.activation_date > today else "active"


# The hot reads and writes, built once (building a statement per call costs about as much as running it).
_HISTORY_OF = (
    sa.select(history.c.effective_date, history.c.change, history.c.quantity, history.c.sku, history.c.at)
    .where(history.c.subscription_id == sa.bindparam("s_id"))
    .order_by(history.c.id)
)
_OWNED = sa.select(subscriptions).where(
    subscriptions.c.id == sa.bindparam("s_id"), subscriptions.c.partner_id == sa.bindparam("p_id")
)
_INSERT_HISTORY = sa.insert(history)
_INSERT_SUBSCRIPTION = sa.insert(subscriptions)
_SET_QUANTITY = sa.update(subscriptions).where(subscriptions.c.id == sa.bindparam("s_id"))


def to_json(conn: Connection, row: Any, today: dt.date) -> dict[str, Any]:
    entries = conn.execute(_HISTORY_OF, {"s_id": row.id}).all()
    anniversary = None
    if row.billing_model == YEARLY and row.stopped_on is None:
        anniversary = next_anniversary(row.activation_date, max(today, row.activation_date)).isoformat()
    return {
        "id": row.id,
        "customer_id": row.customer_id,
        "sku": row.sku,
        "product_id": row.product_id,
        "billing_model": row.billing_model,
        "quantity": row.quantity,
        "status": status_of(row, today),
        "activation_code": row.activation_code,
        "activation_date": row.activation_date.isoformat(),
        "stopped_on": row.stopped_on.isoformat() if row.stopped_on else None,
        "approval_code": row.approval_code,
        "discount_percent": f"{row.discount_percent:.2f}",
        "migrated_on": row.migrated_on.isoformat() if row.migrated_on else None,
        "next_anniversary": anniversary,
        "external_ref": row.external_ref,
        "created_at": iso_utc(row.created_at),
        "updated_at": iso_utc(row.updated_at),
        "history": [
            {
                "effective_date": e.effective_date.isoformat(),
                "change": e.change,
                "quantity": e.quantity,
                "sku": e.sku,
                "at": iso_utc(e.at),
            }
            for e in entries
        ],
    }


def _owned(conn: Connection, ctx: CallContext, subscription_id: str) -> Any:
    """The partner's subscription; another partner's id is indistinguishable from an unknown one (SIM-AUTH-1)."""
    row = conn.execute(_OWNED, {"s_id": subscription_id, "p_id": ctx.partner_id}).first()
    if row is None:
        raise SubscriptionNotFound(subscription_id)
    return row


def _live(conn: Connection, ctx: CallContext, subscription_id: str) -> Any:
    row = _owned(conn, ctx, subscription_id)
    if row.stopped_on is not None:
        raise SubscriptionDeleted(subscription_id, row.stopped_on)
    return row


def get_subscription(conn: Connection, ctx: CallContext, subscription_id: str) -> dict[str, Any]:
    return to_json(conn, _live(conn, ctx, subscription_id), ctx.clock.today)


def list_subscriptions(
    conn: Connection,
    ctx: CallContext,
    *,
    customer_id: str | None = None,
    status: str | None = None,
    include_deleted: bool = False,
) -> list[dict[str, Any]]:
    query = sa.select(subscriptions).where(subscriptions.c.partner_id == ctx.partner_id)
    if customer_id is not None:
        query = query.where(subscriptions.c.customer_id == customer_id)
    today = ctx.clock.today
    rows = conn.execute(query.order_by(subscriptions.c.created_at, subscriptions.c.id)).all()
    items = []
    for row in rows:
        state = status_of(row, today)
        if state == "deleted" and not (include_deleted or status == "deleted"):
            continue
        if status is not None and state != status:
            continue
        items.append(to_json(conn, row, today))
    return items


# ---------------------------------------------------------------- checks


def _effective_today(ctx: CallContext, row: Any, effective_date: dt.date | None) -> dt.date:
    """Changes take effect on the vendor's today, and never before activation (KORM-ACT-1)."""
    today = ctx.clock.today
    if row.activation_date > today or (effective_date is not None and effective_date < row.activation_date):
        raise StateConflict(
            "NOT_YET_ACTIVE",
            f"subscription {row.id} is active from {row.activation_date.isoformat()}; "
            "no operation is available before its activation date",
            rule="KORM-ACT-1",
            activation_date=row.activation_date.isoformat(),
        )
    if effective_date is not None and effective_date != today:
        raise InvalidRequest(
            "INVALID_EFFECTIVE_DATE",
            f"changes take effect on the vendor's today ({today.isoformat()}), not {effective_date.isoformat()}",
        )
    return today


# ---------------------------------------------------------------- changes


def _record(
    conn: Connection, ctx: CallContext, row_id: str, day: dt.date, change: str, model: str, sku: str, qty: int
) -> None:
    conn.execute(
        _INSERT_HISTORY,
        {
            "subscription_id": row_id,
            "partner_id": ctx.partner_id,
            "effective_date": day,
            "change": change,
            "billing_model": model,
            "sku": sku,
            "quantity": qty,
            "at": ctx.clock.now,
        },
    )


def _audit(conn: Connection, ctx: CallContext, action: str, object_id: str, **details: Any) -> None:
    audit.record(
        conn,
        ctx.partner_id,
        ctx.clock,
        actor=ctx.actor,
        service="korm",
        action=action,
        object_type="subscription",
        object_id=object_id,
        details=details,
    )


def _reload(conn: Connection, ctx: CallContext, subscription_id: str) -> dict[str, Any]:
    return to_json(conn, _owned(conn, ctx, subscription_id), ctx.clock.today)


def _create(
    conn: Connection,
    ctx: CallContext,
    *,
    customer_id: str,
    sku: Sku,
    quantity: int,
    activation: dt.date,
    model: str,
    change: str,
    approval_code: str | None = None,
    discount: Decimal = Decimal("0"),
    external_ref: str | None = None,
) -> str:
    subscription_id = "sub_" + secrets.token_hex(8)
    conn.execute(
        _INSERT_SUBSCRIPTION,
        {
            "id": subscription_id,
            "partner_id": ctx.partner_id,
            "customer_id": customer_id,
            "sku": sku.sku,
            "product_id": sku.product_id,
            "billing_model": model,
            "quantity": quantity,
            "activation_code": issue_code(conn, ctx.partner_id, "korm"),  # always fresh (KORM-STOP-2)
            "activation_date": activation,
            "approval_code": approval_code,
            "discount_percent": discount,
            "external_ref": external_ref,
            "created_at": ctx.clock.now,
            "updated_at": ctx.clock.now,
        },
    )
    _record(conn, ctx, subscription_id, activation, change, model, sku.sku, quantity)
    return subscription_id


def _use_approval_code(conn: Connection, ctx: CallContext, code: str, subscription_id: str) -> Decimal:
    """KORM-APPR-1: single use, before expiry, this partner's only; the discount stays on the vendor side."""
    row = conn.execute(
        sa.select(approval_codes).where(approval_codes.c.partner_id == ctx.partner_id, approval_codes.c.code == code)
    ).first()
    if row is None:
        raise InvalidRequest("INVALID_APPROVAL_CODE", f"approval code {code!r} is not known", rule="KORM-APPR-1")
    if row.expires_on < ctx.clock.today:
        raise InvalidRequest(
            "APPROVAL_CODE_EXPIRED",
            f"approval code {code!r} expired on {row.expires_on.isoformat()}",
            rule="KORM-APPR-1",
        )
    if row.used_by is not None:
        raise InvalidRequest(
            "APPROVAL_CODE_USED", f"approval code {code!r} was already used by {row.used_by}", rule="KORM-APPR-1"
        )
    conn.execute(
        sa.update(approval_codes)
        .where(approval_codes.c.partner_id == ctx.partner_id, approval_codes.c.code == code)
        .values(used_by=subscription_id)
    )
    return row.percent


def order(conn: Connection, ctx: CallContext, req: Order) -> dict[str, Any]:
    if req.trial or req.trial_days > 0:
        raise InvalidRequest(
            "TRIAL_NOT_SUPPORTED",
            "KORM SS has no free or trial period on any plan: a subscription is billable from its activation date",
            rule="KORM-TRIAL-1",
        )
    sku = sku_of(ctx.profile, req.sku)
    check_band(sku, req.quantity)
    today = ctx.clock.today
    activation = req.activation_date or today
    if activation < today:
        raise InvalidRequest(
            "INVALID_ACTIVATION_DATE",
            f"activation_date {activation.isoformat()} is before the vendor's today ({today.isoformat()})",
            rule="KORM-ACT-1",
        )
    subscription_id = _create(
        conn,
        ctx,
        customer_id=req.customer_id,
        sku=sku,
        quantity=req.quantity,
        activation=activation,
        model=sku.billing_model,
        change="order",
        external_ref=req.external_ref,
    )
    if req.approval_code is not None:
        discount = _use_approval_code(conn, ctx, req.approval_code, subscription_id)
        conn.execute(
            sa.update(subscriptions)
            .where(subscriptions.c.id == subscription_id)
            .values(approval_code=req.approval_code, discount_percent=discount)
        )
    _audit(
        conn,
        ctx,
        "order",
        subscription_id,
        customer_id=req.customer_id,
        sku=sku.sku,
        quantity=req.quantity,
        activation_date=activation.isoformat(),
        approval_code=req.approval_code,
    )
    return _reload(conn, ctx, subscription_id)


def change_quantity(
    conn: Connection, ctx: CallContext, subscription_id: str, quantity: int, effective_date: dt.date | None = None
) -> dict[str, Any]:
    row = _live(conn, ctx, subscription_id)
    day = _effective_today(ctx, row, effective_date)
    sku = sku_of(ctx.profile, row.sku)
    if row.billing_model == YEARLY and quantity < row.quantity:
        raise StateConflict(
            "DECREASE_NOT_ALLOWED",
            f"a Yearly subscription cannot be reduced ({row.quantity} -> {quantity}); only increases are allowed",
            rule="KORM-YEAR-1",
        )
    check_band(sku, quantity)
    if quantity != row.quantity:
        conn.execute(_SET_QUANTITY, {"s_id": row.id, "quantity": quantity, "updated_at": ctx.clock.now})
        _record(conn, ctx, row.id, day, "quantity", row.billing_model, row.sku, quantity)
        _audit(conn, ctx, "change_quantity", row.id, old=row.quantity, new=quantity, effective_date=day.isoformat())
    return _reload(conn, ctx, row.id)


def switch_plan(
    conn: Connection,
    ctx: CallContext,
    subscription_id: str,
    sku_id: str,
    quantity: int | None = None,
    effective_date: dt.date | None = None,
) -> dict[str, Any]:
    row = _live(conn, ctx, subscription_id)
    day = _effective_today(ctx, row, effective_date)
    if row.billing_model != PAYG:
        raise StateConflict(
            "SWITCH_NOT_ALLOWED",
            f"a {row.billing_model} subscription cannot switch plan; only PAYG subscriptions can"
            + (" (migrate legacy subscriptions first)" if row.billing_model == LEGACY else ""),
            rule="KORM-YEAR-2" if row.billing_model == YEARLY else "KORM-PAYG-3",
        )
    target = sku_of(ctx.profile, sku_id)
    if target.sku == row.sku:
        raise InvalidRequest("SAME_PLAN", f"the subscription is already on {row.sku}", rule="KORM-PAYG-3")
    if target.product_id != row.product_id or target.billing_model != PAYG:
        raise InvalidRequest(
            "SWITCH_TO_OTHER_PRODUCT",
            f"a plan switch moves to another band of the same product and model ({row.product_id}, payg), "
            f"not to {target.sku}",
            rule="KORM-PAYG-3",
        )
    new_quantity = row.quantity if quantity is None else quantity
    check_band(target, new_quantity)
    conn.execute(
        sa.update(subscriptions)
        .where(subscriptions.c.id == row.id)
        .values(sku=target.sku, quantity=new_quantity, updated_at=ctx.clock.now)
    )
    _record(conn, ctx, row.id, day, "switch", PAYG, target.sku, new_quantity)
    _audit(
        conn,
        ctx,
        "switch_plan",
        row.id,
        old_sku=row.sku,
        new_sku=target.sku,
        old=row.quantity,
        new=new_quantity,
        effective_date=day.isoformat(),
    )
    return _reload(conn, ctx, row.id)


def stop(
    conn: Connection, ctx: CallContext, subscription_id: str, effective_date: dt.date | None = None
) -> dict[str, Any]:
    """KORM-STOP-1: the vendor deletes the subscription; the stop day is not billed (half-open)."""
    row = _live(conn, ctx, subscription_id)
    day = _effective_today(ctx, row, effective_date)
    conn.execute(
        sa.update(subscriptions).where(subscriptions.c.id == row.id).values(stopped_on=day, updated_at=ctx.clock.now)
    )
    _record(conn, ctx, row.id, day, "stop", row.billing_model, row.sku, row.quantity)
    _audit(conn, ctx, "stop", row.id, stopped_on=day.isoformat())
    return _reload(conn, ctx, row.id)


def reactivate(conn: Connection, ctx: CallContext, subscription_id: str) -> dict[str, Any]:
    """Never succeeds: a stopped subscription is gone for good (KORM-STOP-1); a live one is not stopped."""
    row = _live(conn, ctx, subscription_id)
    raise StateConflict(
        "SUBSCRIPTION_ACTIVE",
        f"subscription {row.id} is not stopped; there is nothing to reactivate",
        rule="KORM-STOP-1",
    )


def migrate_legacy(conn: Connection, ctx: CallContext) -> dict[str, Any]:
    """KORM-MIG-1: every legacy subscription to PAYG at once, on the first day of a month; code and count kept."""
    today = ctx.clock.today
    if today.day != 1:
        raise StateConflict(
            "MIGRATION_NOT_ALLOWED",
            f"legacy subscriptions migrate only on the first day of a month; today is {today.isoformat()}",
            rule="KORM-MIG-1",
        )
    rows = conn.execute(
        sa.select(subscriptions)
        .where(
            subscriptions.c.partner_id == ctx.partner_id,
            subscriptions.c.billing_model == LEGACY,
            subscriptions.c.stopped_on.is_(None),
        )
        .order_by(subscriptions.c.created_at, subscriptions.c.id)
    ).all()
    for row in rows:
        conn.execute(
            sa.update(subscriptions)
            .where(subscriptions.c.id == row.id)
            .values(billing_model=PAYG, migrated_on=today, updated_at=ctx.clock.now)
        )
        _record(conn, ctx, row.id, max(today, row.activation_date), "migrate", PAYG, row.sku, row.quantity)
        _audit(conn, ctx, "migrate", row.id, migrated_on=today.isoformat())
    return {"migrated_on": today.isoformat(), "subscription_ids": [r.id for r in rows]}


# ---------------------------------------------------------------- control plane


def seed_legacy(
    conn: Connection, ctx: CallContext, *, customer_id: str, sku_id: str, quantity: int, activation_date: dt.date
) -> dict[str, Any]:
    """A pre-2021 subscription (KORM-LEG-1/2), for migration tests; it may start in the past."""
    sku = sku_of(ctx.profile, sku_id)
    if sku.billing_model != PAYG:
        raise InvalidRequest("UNKNOWN_SKU", f"legacy subscriptions use a PAYG SKU (monthly price), not {sku.sku}")
    check_band(sku, quantity)
    subscription_id = _create(
        conn,
        ctx,
        customer_id=customer_id,
        sku=sku,
        quantity=quantity,
        activation=activation_date,
        model=LEGACY,
        change="legacy_order",
    )
    _audit(
        conn,
        ctx,
        "seed_legacy",
        subscription_id,
        sku=sku.sku,
        quantity=quantity,
        activation_date=activation_date.isoformat(),
    )
    return _reload(conn, ctx, subscription_id)


def approval_code_json(row: Any) -> dict[str, Any]:
    return {
        "code": row.code,
        "percent": f"{row.percent:.2f}",
        "expires_on": row.expires_on.isoformat(),
        "used_by": row.used_by,
        "created_at": iso_utc(row.created_at),
    }


def create_approval_code(
    conn: Connection, ctx: CallContext, *, percent: Decimal, expires_on: dt.date, code: str | None = None
) -> dict[str, Any]:
    if not Decimal("0") < percent <= Decimal("100"):
        raise InvalidRequest("VALIDATION_ERROR", "percent must be above 0 and at most 100")
    code = code or "APR-" + secrets.token_hex(4).upper()
    exists = conn.execute(
        sa.select(approval_codes.c.code).where(
            approval_codes.c.partner_id == ctx.partner_id, approval_codes.c.code == code
        )
    ).first()
    if exists is not None:
        raise StateConflict("APPROVAL_CODE_EXISTS", f"approval code {code!r} exists already")
    conn.execute(
        sa.insert(approval_codes).values(
            partner_id=ctx.partner_id,
            code=code,
            percent=percent.quantize(Decimal("0.01")),
            expires_on=expires_on,
            created_at=ctx.clock.now,
        )
    )
    audit.record(
        conn,
        ctx.partner_id,
        ctx.clock,
        actor=ctx.actor,
        service="admin",
        action="create_approval_code",
        object_type="approval_code",
        object_id=code,
        details={"percent": str(percent), "expires_on": expires_on.isoformat()},
    )
    row = conn.execute(
        sa.select(approval_codes).where(approval_codes.c.partner_id == ctx.partner_id, approval_codes.c.code == code)
    ).one()
    return approval_code_json(row)


def list_approval_codes(conn: Connection, ctx: CallContext) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(approval_codes)
        .where(approval_codes.c.partner_id == ctx.partner_id)
        .order_by(approval_codes.c.created_at)
    )
    return [approval_code_json(r) for r in rows]


def reset(conn: Connection, partner_id: str) -> None:
    ids = sa.select(subscriptions.c.id).where(subscriptions.c.partner_id == partner_id)
    conn.execute(sa.delete(history).where(history.c.subscription_id.in_(ids)))
    conn.execute(sa.delete(subscriptions).where(subscriptions.c.partner_id == partner_id))
    conn.execute(sa.delete(approval_codes).where(approval_codes.c.partner_id == partner_id))
