"""KSS state as JSON, for the partner portal (``/kss/v1``), the control plane and scenario checks."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.clock import iso_utc
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.errors import not_found
from ksimkit.simulators.kss.handlers import subscription_info
from ksimkit.simulators.kss.tables import history, subscriptions


def prepaid_json(row: Any, today: dt.date) -> dict[str, Any]:
    return {
        "id": row.id,
        "customer_id": row.customer_id,
        "product_id": row.product_id,
        "licence_count": row.licence_count,
        "expires_on": row.expires_on.isoformat(),
        "active": row.expires_on > today,  # KSS-PREPAID-1: active while not expired
        "created_at": iso_utc(row.created_at),
    }


def get_subscription(conn: Connection, ctx: CallContext, subscriber_id: str) -> dict[str, Any]:
    """A subscription and its history as JSON, for the control plane and scenario checks."""
    row = conn.execute(
        sa.select(subscriptions).where(
            subscriptions.c.partner_id == ctx.partner_id, subscriptions.c.subscriber_id == subscriber_id
        )
    ).first()
    if row is None:
        raise not_found("SUBSCRIBER_NOT_FOUND", f"no KSS subscriber {subscriber_id!r}", rule="SIM-AUTH-1")
    entries = conn.execute(
        sa.select(history)
        .where(history.c.partner_id == ctx.partner_id, history.c.subscriber_id == subscriber_id)
        .order_by(history.c.id)
    ).all()
    info = subscription_info(conn, ctx, row)

    def opt(value: dt.datetime | None) -> str | None:
        return None if value is None else iso_utc(value)

    return {
        "subscriber_id": row.subscriber_id,
        "customer_id": row.customer_id,
        "product_id": row.product_id,
        "license_count": row.license_count,
        "activation_code": row.activation_code,
        "status": row.status,
        "status_change_time": iso_utc(row.status_change_time),
        "start_time": iso_utc(row.start_time),
        "end_time": opt(row.end_time),
        "trial_end": opt(row.trial_end),
        "trial_used": row.trial_used,
        "paused_at": opt(row.paused_at),
        "pause_until": opt(row.pause_until),
        "first_activation_time": None if row.first_activation_time is None else iso_utc(row.first_activation_time),
        "max_license_count_this_period": info.max_license_count_this_period,
        "created_at": iso_utc(row.created_at),
        "history": [
            {
                "effective": iso_utc(e.effective),
                "source": e.source,
                "event": e.event,
                "status": e.status,
                "license_count": e.license_count,
                "product_id": e.product_id,
                "end_time": opt(e.end_time),
            }
            for e in entries
        ],
    }
