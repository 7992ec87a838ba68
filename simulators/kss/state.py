"""The KSS subscription state every item handler shares: its statuses, reading a subscription, the checks that
refuse a unit on its state (``KssError``), and the writes of a change (row, history snapshot, audit entry).

Every change writes a snapshot row to ``kss_history`` (billing's input) and an audit entry (KSS-AUDIT-1).
An accepted change is never undone: nothing takes effect before a subscription's last change
(``not_before_last_change``), so partner snapshots are monotonic in time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core import audit
from ksimkit.simulators.core.catalog import KssProduct
from ksimkit.simulators.core.clock import iso_utc
from ksimkit.simulators.core.codes import issue_code
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.kss.errors import KssCode, KssError
from ksimkit.simulators.kss.tables import code_pools, history, prepaid, subscriptions

NOT_STARTED, STARTED, PAUSED, SOFT, HARD = "NotStarted", "Started", "Paused", "SoftCancelled", "HardCancelled"
CANCEL_WINDOW = dt.timedelta(days=14)  # 304


@dataclass(frozen=True)
class Call:
    """What one unit needs besides its item."""

    conn: Connection
    ctx: CallContext
    tolerance: dt.timedelta

    @property
    def now(self) -> dt.datetime:
        return self.ctx.clock.now


# The statements of every call, built once (building a statement per call costs about as much as running it).
_ROW = sa.select(subscriptions).where(
    subscriptions.c.partner_id == sa.bindparam("p_id"), subscriptions.c.subscriber_id == sa.bindparam("s_id")
)
_PREPAID_HELD = sa.select(sa.func.coalesce(sa.func.sum(prepaid.c.licence_count), 0)).where(
    prepaid.c.partner_id == sa.bindparam("p_id"),
    prepaid.c.customer_id == sa.bindparam("c_id"),
    prepaid.c.product_id == sa.bindparam("product"),
    prepaid.c.expires_on > sa.bindparam("today"),
)
_LAST_CHANGE = sa.select(sa.func.max(history.c.effective)).where(
    history.c.partner_id == sa.bindparam("p_id"),
    history.c.subscriber_id == sa.bindparam("s_id"),
    history.c.source == "partner",
)
_INSERT_SNAPSHOT = sa.insert(history)
_POOL = sa.select(code_pools.c.remaining).where(code_pools.c.partner_id == sa.bindparam("p_id"))


# ---------------------------------------------------------------- reading and checks


def subscription_row(conn: Connection, partner_id: str, subscriber_id: str) -> Any:
    """The partner's subscription row, or None."""
    return conn.execute(_ROW, {"p_id": partner_id, "s_id": subscriber_id}).first()


def row_of(call: Call, subscriber_id: str) -> Any:
    return subscription_row(call.conn, call.ctx.partner_id, subscriber_id)


def known(call: Call, subscriber_id: str) -> Any:
    """The partner's subscription; another partner's SubscriberId is as unknown as a made-up one (SIM-AUTH-1)."""
    row = row_of(call, subscriber_id)
    if row is None:
        raise KssError(KssCode.UNKNOWN_SUBSCRIBER, f"SubscriberId {subscriber_id!r} is unknown")
    return row


def live(call: Call, subscriber_id: str) -> Any:
    """A known subscription that is not hard-cancelled."""
    row = known(call, subscriber_id)
    if row.status == HARD:
        raise KssError(
            KssCode.HARD_CANCELLED,
            f"subscription {subscriber_id!r} is hard-cancelled; only Activate brings it back",
            "KSS-STOP-1",
        )
    return row


def check_started(row: Any) -> None:
    if row.status == NOT_STARTED:
        raise KssError(
            KssCode.NOT_YET_ACTIVATED,
            f"subscription {row.subscriber_id!r} starts at {iso_utc(row.start_time)}; not yet activated",
        )


def check_within_term(call: Call, row: Any) -> None:
    check_started(row)
    if row.status == SOFT and row.end_time is not None and row.end_time <= call.now:
        raise KssError(
            KssCode.SOFT_CANCELLED,
            f"subscription {row.subscriber_id!r} ended at {iso_utc(row.end_time)} (soft-cancelled)",
        )


def offered_product(call: Call, product_id: str) -> KssProduct:
    """KSS-PROD-1: the closed catalog (9), then the partner's programme (705), then MSP registration (704)."""
    product = call.ctx.profile.kss_products.get(product_id)
    partner = call.ctx.partner
    if product is None:
        raise KssError(KssCode.UNKNOWN_PRODUCT, f"unknown product {product_id!r}", "KSS-PROD-1")
    if partner.programme not in product.programmes:
        raise KssError(
            KssCode.PRODUCT_NOT_OFFERED,
            f"product {product_id} is not offered to the {partner.programme} programme",
            "KSS-PROD-1",
        )
    if partner.programme == "msp" and not partner.msp_registered:
        raise KssError(KssCode.MSP_NOT_REGISTERED, "the partner is not registered for the MSP programme", "KSS-MSP-2")
    return product


def check_no_prepaid(call: Call, customer_id: str, product_id: str) -> None:
    held = call.conn.execute(
        _PREPAID_HELD,
        {
            "p_id": call.ctx.partner_id,
            "c_id": customer_id,
            "product": product_id,
            "today": call.ctx.clock.today,
        },
    ).scalar_one()
    if held:
        raise KssError(
            KssCode.PREPAID_HELD,
            f"customer {customer_id!r} still holds {held} active prepaid licence(s) of {product_id}",
            "KSS-PREPAID-1",
        )


def _last_change(call: Call, subscriber_id: str) -> dt.datetime | None:
    return call.conn.execute(_LAST_CHANGE, {"p_id": call.ctx.partner_id, "s_id": subscriber_id}).scalar_one()


def not_before_last_change(call: Call, subscriber_id: str, moment: dt.datetime) -> dt.datetime:
    """An accepted change is never undone: nothing takes effect before the last one."""
    last = _last_change(call, subscriber_id)
    return moment if last is None else max(moment, last)


def check_not_too_old(call: Call, moment: dt.datetime, what: str) -> None:
    if moment < call.now - CANCEL_WINDOW:
        raise KssError(KssCode.TOO_FAR_BACK, f"{what} {iso_utc(moment)} is more than 14 days in the past")


# ---------------------------------------------------------------- writing


def snapshot(
    conn: Connection,
    partner_id: str,
    row: Any,
    *,
    event: str,
    effective: dt.datetime,
    recorded_at: dt.datetime,
    source: str,
) -> None:
    """The subscription's state as of ``effective`` in ``kss_history``, billing's input."""
    conn.execute(
        _INSERT_SNAPSHOT,
        {
            "partner_id": partner_id,
            "subscriber_id": row.subscriber_id,
            "effective": effective,
            "recorded_at": recorded_at,
            "source": source,
            "event": event,
            "status": row.status,
            "license_count": row.license_count,
            "product_id": row.product_id,
            "start_time": row.start_time,
            "end_time": row.end_time,
            "trial_end": row.trial_end,
            "paused_at": row.paused_at,
            "pause_until": row.pause_until,
        },
    )


def change(call: Call, row: Any, event: str, effective: dt.datetime, **values: Any) -> Any:
    """Update the subscription, snapshot it in the history, audit it; return the new row."""
    where = (subscriptions.c.partner_id == call.ctx.partner_id, subscriptions.c.subscriber_id == row.subscriber_id)
    call.conn.execute(sa.update(subscriptions).where(*where).values(**values, updated_at=call.now))
    new = row_of(call, row.subscriber_id)
    snapshot(
        call.conn, call.ctx.partner_id, new, event=event, effective=effective, recorded_at=call.now, source="partner"
    )
    audit_change(call, event, new, effective, {k: v for k, v in values.items() if k != "status_change_time"})
    return new


def _json(value: Any) -> Any:
    return iso_utc(value) if isinstance(value, dt.datetime) else value


def audit_change(call: Call, action: str, row: Any, effective: dt.datetime, details: dict[str, Any]) -> None:
    """The partner's change in the audit log (KSS-AUDIT-1), times as ISO text."""
    audit.record(
        call.conn,
        call.ctx.partner_id,
        call.ctx.clock,
        actor=call.ctx.actor,
        service="kss",
        action=action,
        object_type="subscription",
        object_id=row.subscriber_id,
        details={"effective": iso_utc(effective), **{k: _json(v) for k, v in details.items()}},
    )


def draw_code(call: Call) -> str:
    """A fresh code, unless the partner's pool is limited and empty (8)."""
    pool = call.conn.execute(_POOL, {"p_id": call.ctx.partner_id}).first()
    if pool is not None:
        if pool.remaining <= 0:
            raise KssError(KssCode.CODE_POOL_EMPTY, "the activation-code pool of this provider is empty")
        call.conn.execute(
            sa.update(code_pools)
            .where(code_pools.c.partner_id == call.ctx.partner_id)
            .values(remaining=pool.remaining - 1)
        )
    return issue_code(call.conn, call.ctx.partner_id, "kss")
