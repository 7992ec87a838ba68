"""KORM SS due events: what the vendor does when a partner's clock passes a date (SIM-CLOCK-1).

Listed as KORM's due-event source (``korm.service``); each is audited with service ``korm`` and actor ``ksim-vendor``,
dated 00:00 (partner's zone) of its day:

- ``anniversary`` (KORM-YEAR-4): each anniversary of a Yearly subscription not stopped by then; the year's fee
  falls due, at the count in force that day. Details: the anniversary, which year (1, 2, ...), the SKU, the
  count (``quantity``), the unit price and ``gross``/``discount``/``amount``, the same figures as the
  ``yearly_fee`` line of that month's statement. (The first year's fee, due on the activation date, is not an
  anniversary: it is on the statement only.)
- ``statement_closed``: the vendor statement of a calendar month is final at the end of the month; recorded
  once per month that has a line, with the number of lines and the month's totals (``billing.statement``).
  Once per month: a month already closed in the audit log is not closed again, and a reset, which deletes the
  log, lets the next advance close it again.

Nothing else moves with the clock in KORM: a subscription is pending until its activation date and deleted on
its stop date by reading the clock, and no state changes when those dates pass.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import heapq
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core import audit
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.due import CLOSE, Due, Window
from ksimkit.simulators.core.money import month_bounds
from ksimkit.simulators.core.partners import load_partner
from ksimkit.simulators.korm import billing
from ksimkit.simulators.korm.plans import YEARLY, add_years
from ksimkit.simulators.korm.tables import history, subscriptions

SERVICE = "korm"
VENDOR = "ksim-vendor"  # the actor of what the clock does


def _order(due: Due) -> tuple[Any, ...]:
    return due.order


def _anniversaries(conn: Connection, window: Window, row: Any, entries: list[Any], seq: int) -> Iterator[Due]:
    """KORM-YEAR-4: the anniversaries of one Yearly subscription in the window, while it is not stopped."""
    activation = row.activation_date
    years = max(1, window.old.today.year - activation.year)
    while True:
        day = add_years(activation, years)
        if row.stopped_on is not None and day >= row.stopped_on:
            return  # the stop day is not billed; nothing falls due after it
        at = window.old.midnight(day)
        if at > window.new.now:
            return
        if at in window:
            yield Due(at, SERVICE, (seq, years), functools.partial(_anniversary, conn, window, row, entries, years, at))
        years += 1


def _anniversary(conn: Connection, window: Window, row: Any, entries: list[Any], years: int, at: dt.datetime) -> None:
    day = add_years(row.activation_date, years)
    segs = billing.segments(entries, row.stopped_on, day + dt.timedelta(days=1))
    fee = billing.yearly_fee(row, segs, window.profile, years)
    if fee is None:
        return
    audit.record(
        conn,
        window.partner_id,
        window.new.at(at),
        actor=VENDOR,
        service=SERVICE,
        action="anniversary",
        object_type="subscription",
        object_id=row.id,
        details={
            "anniversary": day.isoformat(),
            "year": years,
            "sku": fee["sku"],
            "quantity": fee["units"],
            "unit_price": fee["unit_price"],
            "gross": fee["gross"],
            "discount_percent": fee["discount_percent"],
            "discount": fee["discount"],
            "amount": fee["amount"],
            "until": fee["to"],
        },
    )


def _closings(conn: Connection, window: Window, rows: Sequence[Any]) -> Iterator[Due]:
    """``statement_closed`` for each month that ends in the window and may have a line."""
    first = min(row.activation_date for row in rows)
    stops = [row.stopped_on for row in rows]
    last = None if None in stops else max(stops)
    state: dict[str, Any] = {}

    def close(period: str, at: dt.datetime) -> None:
        if "closed" not in state:
            state["closed"] = audit.object_ids(conn, window.partner_id, service=SERVICE, action="statement_closed")
            state["partner"] = load_partner(conn, window.partner_id)
            # Read once for every month the move closes: each ends on or before the new today.
            state["book"] = billing.load_book(conn, window.partner_id, window.new.today + dt.timedelta(days=1))
        if period in state["closed"]:
            return
        clock = window.new.at(at)
        partner = dataclasses.replace(state["partner"], clock=clock)
        ctx = CallContext(partner=partner, profile=window.profile, actor=VENDOR)
        found = billing.statement(conn, ctx, period, book=state["book"])
        if not found["lines"]:
            return
        state["closed"].add(period)
        audit.record(
            conn,
            window.partner_id,
            clock,
            actor=VENDOR,
            service=SERVICE,
            action="statement_closed",
            object_type="statement",
            object_id=period,
            details={"period": period, "currency": found["currency"], "lines": len(found["lines"]), **found["totals"]},
        )

    for month, at in window.month_starts():
        period = month.strftime("%Y-%m")
        if month_bounds(period)[1] <= first or (last is not None and month >= last):
            continue  # nothing was active that month: no line
        yield Due(at, SERVICE, (period,), functools.partial(close, period, at), rank=CLOSE)


def due_events(conn: Connection, window: Window) -> Iterator[Due]:
    """Everything KORM does in (old, new], in time order: statement closings, then anniversaries."""
    rows = conn.execute(sa.select(subscriptions).where(subscriptions.c.partner_id == window.partner_id)).all()
    if not rows:
        return
    entries: dict[str, list[Any]] = defaultdict(list)
    first_entry: dict[str, int] = {}
    for entry in conn.execute(
        sa.select(history).where(history.c.partner_id == window.partner_id).order_by(history.c.id)
    ).all():
        entries[entry.subscription_id].append(entry)
        first_entry.setdefault(entry.subscription_id, entry.id)  # the order the subscriptions were made in
    yearly = [row for row in rows if row.billing_model == YEARLY]
    anniversaries = heapq.merge(
        *(_anniversaries(conn, window, row, entries[row.id], first_entry[row.id]) for row in yearly), key=_order
    )
    yield from heapq.merge(_closings(conn, window, rows), anniversaries, key=_order)
