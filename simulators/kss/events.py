"""KSS due events: what the vendor does when a partner's clock moves (SIM-CLOCK-1).

``due_events`` is the KSS source of due events (``ksimkit.simulators.core.due``): in the window (old, new]
it replays each subscription's start, pause end, trial end, renewal per billing period (KSS-RENEW-1) and end,
and closes each monthly collective bill (KSS-BILL-1), all in time order. Each event writes the subscription's
new state (start, pause end and end change its status), a vendor snapshot in ``kss_history`` and an audit
entry; all are audited with the actor ``VENDOR``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import heapq
import itertools
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core import audit
from ksimkit.simulators.core.bulk import insert
from ksimkit.simulators.core.clock import PartnerClock
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.due import CLOSE, Due, Window
from ksimkit.simulators.core.partners import Partner, load_partner
from ksimkit.simulators.kss import billing
from ksimkit.simulators.kss.state import HARD, NOT_STARTED, PAUSED, SOFT, STARTED
from ksimkit.simulators.kss.tables import history, subscriptions

VENDOR = "ksim-vendor"  # the actor of what the clock does


def _order(due: Due) -> tuple[Any, ...]:
    return due.order


_EVENTS = ("start", "pause_end", "trial_end", "renew", "end")  # one subscription, one instant: in this order
_ORDER = {event: rank for rank, event in enumerate(_EVENTS)}
_START, _PAUSE_END, _TRIAL_END, _RENEW, _END = range(len(_EVENTS))


def _next_period(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=billing.PERIOD_DAYS)


def _next_boundary(partner: Partner, after: dt.datetime, first_paid: dt.date | None) -> dt.datetime | None:
    """The first billing-period start strictly after ``after`` (KSS-RENEW-1)."""
    zone = PartnerClock(after, partner.timezone).zone
    day = after.astimezone(zone).date()
    if partner.billing_period == billing.CALENDAR_MONTH:
        candidate = day.replace(day=1)
        step: Callable[[dt.date], dt.date] = billing.next_month
    else:
        if first_paid is None:
            return None
        candidate = first_paid + dt.timedelta(
            days=billing.PERIOD_DAYS * max(0, (day - first_paid).days // billing.PERIOD_DAYS)
        )
        step = _next_period

    while billing.local_midnight(candidate, zone) <= after:
        candidate = step(candidate)
    return billing.local_midnight(candidate, zone)


class _Boundaries:
    """``_next_boundary`` for one clock move: calendar-month starts are listed once for the whole window (every
    subscription renews on the same instants) and looked up; 30-day periods are counted per subscription."""

    def __init__(self, partner: Partner, old: dt.datetime, new: dt.datetime) -> None:
        self.partner = partner
        self.starts: list[dt.datetime] = []
        if partner.billing_period == billing.CALENDAR_MONTH:
            zone = PartnerClock(old, partner.timezone).zone
            month = old.astimezone(zone).date().replace(day=1)
            while True:  # from the month of ``old`` to the first start after ``new``
                self.starts.append(billing.local_midnight(month, zone))
                if self.starts[-1] > new:
                    break
                month = billing.next_month(month)

    def after(self, after: dt.datetime, first_paid: dt.date | None) -> dt.datetime | None:
        starts = self.starts
        if starts and starts[0] <= after < starts[-1]:
            return starts[bisect.bisect_right(starts, after)]
        return _next_boundary(self.partner, after, first_paid)


def _subscription_events(
    row: Any, old: dt.datetime, new: dt.datetime, first_paid: dt.date | None, boundaries: _Boundaries
) -> Iterator[tuple[dt.datetime, str, int]]:
    """Replay one subscription's clock-driven events in (old, new], in order, on a local copy of its state; each as
    (instant, subscriber, rank in ``_EVENTS``), which is also the order of events across subscriptions."""
    sid, status, cur = row.subscriber_id, row.status, old
    start_time, end_time, trial_end, pause_until = row.start_time, row.end_time, row.trial_end, row.pause_until
    trial_open = trial_end is not None and trial_end > old
    # A soft cancel takes effect at its EndTime (KSS-STOP-1): that is the ``end`` of a soft-cancelled subscription,
    # as it is of a fixed term. One whose EndTime had already passed when it was ordered ended with the order.
    ended = end_time is None or (status == SOFT and end_time <= old)
    while True:
        # The earliest event due by ``new``; at one instant the lowest rank (candidates are tried in rank order).
        at: dt.datetime | None = None
        rank = 0
        if status == NOT_STARTED and start_time <= new:
            at, rank = start_time, _START
        if status == PAUSED and pause_until is not None and pause_until <= new and (at is None or pause_until < at):
            at, rank = pause_until, _PAUSE_END
        if trial_open and status != HARD and trial_end <= new and (at is None or trial_end < at):
            at, rank = trial_end, _TRIAL_END
        if status == STARTED and end_time is None:
            boundary = boundaries.after(cur, first_paid)
            # a period inside the trial is not a renewal
            if (
                boundary is not None
                and boundary <= new
                and not (trial_end is not None and boundary < trial_end)
                and (at is None or boundary < at)
            ):
                at, rank = boundary, _RENEW
        if status in (STARTED, SOFT) and not ended and end_time <= new and (at is None or end_time < at):
            at, rank = end_time, _END
        if at is None:
            return
        yield at, sid, rank
        if at > cur:
            cur = at
        if rank == _TRIAL_END:
            trial_open = False
        elif rank in (_START, _PAUSE_END):
            status = STARTED
        elif rank == _END:
            status, ended = SOFT, True


_SNAPSHOT = ("status", "license_count", "product_id", "start_time", "end_time", "trial_end", "paused_at", "pause_until")


_SLICE = dt.timedelta(days=32)
# The audit details of vendor events, shared by equal states (never changed once made: audit entries only read them).
_details: dict[tuple[str, int, str], dict[str, Any]] = {}
_updates: dict[tuple[str, ...], Any] = {}


def _update_of(names: tuple[str, ...]) -> Any:
    """UPDATE of one subscription's ``names``, with bound parameters (built once per set of columns)."""
    if names not in _updates:
        _updates[names] = (
            sa.update(subscriptions)
            .where(
                subscriptions.c.partner_id == sa.bindparam("w_partner"),
                subscriptions.c.subscriber_id == sa.bindparam("w_subscriber"),
            )
            .values({name: sa.bindparam(f"v_{name}") for name in names})
        )
    return _updates[names]


def _changes(
    conn: Connection,
    partner: Partner,
    states: dict[str, dict[str, Any]],
    streams: list[Iterator[tuple[dt.datetime, str, int]]],
) -> Iterator[Due]:
    """The subscriptions' event streams merged in time order, one ``Due`` per instant that applies that instant's
    events one after another in (subscriber, rank) order: the order and the effects of one ``Due`` per event, without
    the cost (at a renewal, every subscription renews at the same instant). Read a slice of time at a time, so a
    long jump never holds more than about a month of events."""
    heads = [(first, stream) for stream in streams if (first := next(stream, None)) is not None]
    if not heads:
        return
    until = min(first[0] for first, _ in heads)
    while heads:
        until += _SLICE
        batch: list[tuple[dt.datetime, str, int]] = []
        later = []
        for head, stream in heads:
            event: tuple[dt.datetime, str, int] | None = head
            while event is not None and event[0] <= until:
                batch.append(event)
                event = next(stream, None)
            if event is not None:
                later.append((event, stream))
        heads = later
        batch.sort()
        for at, group in itertools.groupby(batch, key=operator.itemgetter(0)):
            events = [(sid, rank) for _, sid, rank in group]
            yield Due(at, "kss", events[0], functools.partial(_apply_at, conn, partner, states, at, events))


def _apply_at(
    conn: Connection,
    partner: Partner,
    states: dict[str, dict[str, Any]],
    at: dt.datetime,
    events: list[tuple[str, int]],
) -> None:
    clock = PartnerClock(at, partner.timezone)
    for sid, rank in events:
        _apply_due(conn, partner, states[sid], at, sid, rank, clock)


def _apply_due(
    conn: Connection,
    partner: Partner,
    state: dict[str, Any],
    at: dt.datetime,
    subscriber_id: str,
    rank: int,
    clock: PartnerClock,
) -> None:
    """One event on the subscription whose current row is ``state`` (kept in memory through the whole move)."""
    event = _EVENTS[rank]
    values: dict[str, Any] = {}
    if rank in (_START, _PAUSE_END):
        values = {"status": STARTED, "status_change_time": at}
        if rank == _PAUSE_END:
            values.update(paused_at=None, pause_until=None)
    elif rank == _END:
        values = {"status": SOFT, "status_change_time": at}
    if values:
        values["updated_at"] = at
        conn.execute(
            _update_of(tuple(values)),
            {
                "w_partner": partner.id,
                "w_subscriber": subscriber_id,
                **{f"v_{k}": v for k, v in values.items()},
            },
        )
        state.update(values)
    row = {name: state[name] for name in _SNAPSHOT}
    insert(
        conn,
        history,
        {  # the vendor's snapshot, as state.snapshot writes it
            "partner_id": partner.id,
            "subscriber_id": subscriber_id,
            "effective": at,
            "recorded_at": at,
            "source": "vendor",
            "event": event,
            **row,
        },
    )
    shown = (row["status"], row["license_count"], row["product_id"])
    details = _details.get(shown)
    if details is None:  # one dict per distinct state: written as JSON once per flush (ksimkit.simulators.core.bulk)
        details = _details[shown] = {"status": shown[0], "license_count": shown[1], "product_id": shown[2]}
        if len(_details) > 4096:
            _details.clear()
            _details[shown] = details
    audit.record(
        conn,
        partner.id,
        clock,
        actor=VENDOR,
        service="kss",
        action=event,
        object_type="subscription",
        object_id=subscriber_id,
        details=details,
    )


def bill_closes(partner: Partner, window: Window) -> Iterator[tuple[dt.date, dt.datetime]]:
    """(first day, closing instant) of each bill month that becomes final in the window (KSS-BILL-1).

    A calendar-month bill is final at the end of its month; a 30-day bill once every period that starts in its
    month is over: 29 days after the month's end (a period starting on the 31st ends then).
    """
    lag = billing.PERIOD_DAYS - 1 if partner.billing_period == billing.THIRTY_DAYS else 0
    return window.month_starts(dt.timedelta(days=lag))


def _bill_closings(conn: Connection, partner: Partner, window: Window, rows: Sequence[Any]) -> Iterator[Due]:
    """``bill_closed`` once per month with a line, with the bill's totals, dated when the bill becomes final."""
    if not rows:
        return
    first = conn.execute(  # every start the partner ever gave is in a partner snapshot
        sa.select(sa.func.min(history.c.start_time)).where(history.c.partner_id == partner.id)
    ).scalar_one()
    if first is None:
        return
    first_day = first.astimezone(window.new.zone).date()
    ends = [row.end_time for row in rows]
    last_day = None if None in ends else max(ends).astimezone(window.new.zone).date()
    closed: set[str] | None = None
    book: billing.Book | None = None

    def close(period: str, at: dt.datetime) -> None:
        nonlocal closed, book
        if closed is None:  # once per month, even if a window were seen twice; a reset forgets them with the log
            closed = audit.object_ids(conn, partner.id, service="kss", action="bill_closed")
            # Read once for every month the move closes (a 30-day bill reads up to a day after it closes).
            book = billing.load_book(conn, partner, window.new.now + dt.timedelta(days=2))
        if period in closed:
            return
        clock = PartnerClock(at, partner.timezone)
        ctx = CallContext(partner=replace(partner, clock=clock), profile=window.profile, actor=VENDOR)
        found = billing.bill(conn, ctx, period, book=book)
        if not found["lines"]:
            return
        closed.add(period)
        audit.record(
            conn,
            partner.id,
            clock,
            actor=VENDOR,
            service="kss",
            action="bill_closed",
            object_type="bill",
            object_id=period,
            details={
                "period": period,
                "billing_period": found["billing_period"],
                "currency": found["currency"],
                "lines": len(found["lines"]),
                "customers": len(found["customers"]),
                **found["totals"],
            },
        )

    for month, at in bill_closes(partner, window):
        if billing.next_month(month) <= first_day or (last_day is not None and month > last_day):
            continue  # nothing ran that month: no line
        period = month.strftime("%Y-%m")
        yield Due(at, "kss", (period,), functools.partial(close, period, at), rank=CLOSE)


def due_events(conn: Connection, window: Window) -> Iterator[Due]:
    """Everything KSS does in (old, new], in time order: bill closings, then each subscription's events."""
    rows = conn.execute(
        sa.select(subscriptions)
        .where(subscriptions.c.partner_id == window.partner_id)
        .order_by(subscriptions.c.subscriber_id)
    ).all()
    if not rows:
        return
    partner = load_partner(conn, window.partner_id)
    old, new = window.old.now, window.new.now
    live = [row for row in rows if row.status != HARD]
    states = {row.subscriber_id: row._asdict() for row in live}
    first_paid: dict[str, dt.date | None] = {}
    if partner.billing_period == billing.THIRTY_DAYS:  # the anchors of 30-day periods, from one read
        horizon = billing.local_midnight(new.date() + dt.timedelta(days=2), PartnerClock(new, partner.timezone).zone)
        first_paid = billing.first_paid_days(conn, partner, [row for row in live if row.end_time is None], horizon)
    boundaries = _Boundaries(partner, old, new)
    streams = [_subscription_events(row, old, new, first_paid.get(row.subscriber_id), boundaries) for row in live]
    changes = _changes(conn, partner, states, streams)
    yield from heapq.merge(_bill_closings(conn, partner, window, rows), changes, key=_order)
