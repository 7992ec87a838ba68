"""The control plane's KSS calls (``/_sim``, ``ksimkit.simulators.admin.api``): seeding a partner's prepaid
licences and activation-code pool, simulated device activations, the partner's wire options, and forgetting a
partner's KSS state on reset. They answer JSON and refuse with ``Problem`` (the control plane speaks HTTP).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core import audit
from ksimkit.simulators.core.clock import iso_utc
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.errors import conflict, not_found, unprocessable
from ksimkit.simulators.kss.state import HARD, NOT_STARTED, subscription_row
from ksimkit.simulators.kss.tables import code_pools, history, options, prepaid, subscriptions, transactions
from ksimkit.simulators.kss.views import prepaid_json


def seed_prepaid(
    conn: Connection, ctx: CallContext, customer_id: str, product_id: str, licence_count: int, expires_on: dt.date
) -> dict[str, Any]:
    """Prepaid (non-subscription) licences a customer holds until ``expires_on`` (KSS-PREPAID-1)."""
    if product_id not in ctx.profile.kss_products:
        raise unprocessable("UNKNOWN_PRODUCT", f"no KSS product {product_id!r} in the catalog", rule="KSS-PROD-1")
    if licence_count < 1:
        raise unprocessable("VALIDATION_ERROR", "licence_count must be at least 1")
    result = conn.execute(
        sa.insert(prepaid).values(
            partner_id=ctx.partner_id,
            customer_id=customer_id,
            product_id=product_id,
            licence_count=licence_count,
            expires_on=expires_on,
            created_at=ctx.clock.now,
        )
    )
    key = result.inserted_primary_key
    assert key is not None  # a single-row INSERT always has one
    prepaid_id = key[0]
    audit.record(
        conn,
        ctx.partner_id,
        ctx.clock,
        actor=ctx.actor,
        service="admin",
        action="seed_prepaid",
        object_type="prepaid",
        object_id=str(prepaid_id),
        details={
            "customer_id": customer_id,
            "product_id": product_id,
            "licence_count": licence_count,
            "expires_on": expires_on.isoformat(),
        },
    )
    return prepaid_json(conn.execute(sa.select(prepaid).where(prepaid.c.id == prepaid_id)).one(), ctx.clock.today)


def list_prepaid(conn: Connection, ctx: CallContext) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(prepaid).where(prepaid.c.partner_id == ctx.partner_id).order_by(prepaid.c.id))
    return [prepaid_json(row, ctx.clock.today) for row in rows]


def set_code_pool(conn: Connection, ctx: CallContext, remaining: int | None) -> dict[str, Any]:
    """Limit the partner's activation-code pool to ``remaining`` new codes (0: empty, error 8); None: unlimited."""
    if remaining is not None and remaining < 0:
        raise unprocessable("VALIDATION_ERROR", "remaining must be 0 or more, or null for no limit")
    conn.execute(sa.delete(code_pools).where(code_pools.c.partner_id == ctx.partner_id))
    if remaining is not None:
        conn.execute(sa.insert(code_pools).values(partner_id=ctx.partner_id, remaining=remaining))
    audit.record(
        conn,
        ctx.partner_id,
        ctx.clock,
        actor=ctx.actor,
        service="admin",
        action="set_code_pool",
        object_type="code_pool",
        object_id=ctx.partner_id,
        details={"remaining": remaining},
    )
    return {"remaining": remaining}


_EXT_ANSWERS = sa.select(options.c.ext_answers).where(options.c.partner_id == sa.bindparam("p_id"))


def ext_answers(conn: Connection, partner_id: str) -> bool:
    """Whether the partner opted in to extension attributes in every answer (default: only to requests in ext)."""
    return bool(conn.execute(_EXT_ANSWERS, {"p_id": partner_id}).scalar())


def kss_options(conn: Connection, ctx: CallContext) -> dict[str, Any]:
    return {"ext_answers": ext_answers(conn, ctx.partner_id)}


def set_kss_options(conn: Connection, ctx: CallContext, ext: bool) -> dict[str, Any]:
    """A wire setting, like strict contract mode: it may change at any time and is not audited."""
    conn.execute(sa.delete(options).where(options.c.partner_id == ctx.partner_id))
    if ext:
        conn.execute(sa.insert(options).values(partner_id=ctx.partner_id, ext_answers=True))
    return kss_options(conn, ctx)


def activate_device(conn: Connection, ctx: CallContext, subscriber_id: str, at: dt.datetime | None) -> dict[str, Any]:
    """The control plane's simulated device activation: the subscription's code used on a device at ``at``
    (default now). The first one sets FirstActivationTime (GetInfo/SubscriptionUsage); later ones change nothing."""
    row = subscription_row(conn, ctx.partner_id, subscriber_id)
    if row is None:
        raise not_found("SUBSCRIBER_NOT_FOUND", f"no KSS subscriber {subscriber_id!r}", rule="SIM-AUTH-1")
    at = ctx.clock.now if at is None else at
    if at > ctx.clock.now:
        raise unprocessable(
            "VALIDATION_ERROR",
            f"a device activation at {iso_utc(at)} is after the partner's now {iso_utc(ctx.clock.now)}",
            rule="SIM-CLOCK-1",
        )
    if row.status in (NOT_STARTED, HARD) or at < row.start_time:
        raise conflict(
            "CODE_NOT_USABLE",
            f"the activation code of {subscriber_id!r} cannot be used on a device "
            f"({row.status}, started {iso_utc(row.start_time)}) at {iso_utc(at)}",
        )
    if row.first_activation_time is None:
        conn.execute(
            sa.update(subscriptions)
            .where(
                subscriptions.c.partner_id == ctx.partner_id,
                subscriptions.c.subscriber_id == subscriber_id,
            )
            .values(first_activation_time=at)
        )
        audit.record(
            conn,
            ctx.partner_id,
            ctx.clock,
            actor=ctx.actor,
            service="admin",
            action="device_activation",
            object_type="subscription",
            object_id=subscriber_id,
            details={"at": iso_utc(at)},
        )
        first = at
    else:
        first = row.first_activation_time
    return {"subscriber_id": subscriber_id, "first_activation_time": iso_utc(first)}


def reset(conn: Connection, partner_id: str) -> None:
    """Forget the partner's KSS state (its subscriptions, their history, transactions, code pool, prepaid)."""
    for table in (history, subscriptions, transactions, code_pools, prepaid):
        conn.execute(sa.delete(table).where(table.c.partner_id == partner_id))
