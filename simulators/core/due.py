"""What falls due when a partner's clock moves (SIM-CLOCK-1), and the move itself.

Rules never read the system time: they read the partner's clock, which moves only when a test sets or
advances it, and only forward (a reset of the partner is the one way back). A partner may instead have a running
clock, which follows wall time from an offset (ksimkit.simulators.core.clock_mode): it is moved here too, to
wall time plus its offset, at the start of each of the partner's requests. Like a Stripe test clock, a move is
synchronous and unlimited: everything that falls due up to the new time has happened when ``move_clock``
returns, in one time order across services.

Due events. Each service declares a *source* (``core.service.Service.due_source``): given the window (old, new] of
a clock move it yields the events that fall due in it, each a ``Due`` (instant, rank, service, key, and an
``apply`` callable that writes the event), already in ``Due.order``. ``move_clock`` merges every source's stream
(``heapq.merge``, lazily: a 10-year jump never holds all its events in memory and never walks day by day) and
applies the events one after another, so what each writes (state, history, audit entries) lands in date order
across services. A source must compute its events from what the partner did, never from what another source's
events wrote; that is what lets every source list its events before any is applied.

At one instant, closings (``CLOSE``: the vendor closing the billing period that has just ended) come before
changes (``CHANGE``: renewals, trial and pause ends, ends, anniversaries that open the next one); then services
in name order, then each source's own key.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core import bulk
from ksimkit.simulators.core.catalog import Profile, load_profile
from ksimkit.simulators.core.clock import UTC, PartnerClock, iso_utc, read_clock
from ksimkit.simulators.core.errors import Problem
from ksimkit.simulators.core.store import partners

CLOSE, CHANGE = 0, 1  # ranks at one instant: close the period that ended, then open the next


@dataclass(frozen=True)
class Window:
    """A clock move, as the due-event sources see it: events fall due in (old.now, new.now]."""

    partner_id: str
    old: PartnerClock
    new: PartnerClock
    profile: Profile

    def __contains__(self, instant: dt.datetime) -> bool:
        return self.old.now < instant <= self.new.now

    def month_starts(self, lag: dt.timedelta = dt.timedelta(0)) -> Iterator[tuple[dt.date, dt.datetime]]:
        """(first day of a month, instant) for each month whose end plus ``lag`` falls in the window, oldest first.

        The instant is 00:00 (partner's zone) of the next month's first day, plus ``lag``: when the month closes.
        """
        first = (self.old.local_now - lag).date().replace(day=1)
        while True:
            following = _next_month(first)
            instant = self.old.midnight(following + lag)
            if instant > self.new.now:
                return
            if instant > self.old.now:
                yield first, instant
            first = following


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)


@dataclass(frozen=True)
class Due:
    """One event that falls due at ``at``; ``apply()`` makes it happen (and audits it)."""

    at: dt.datetime  # aware UTC, in the window
    service: str
    key: tuple[Any, ...]  # the source's own order among its events at one instant and rank
    apply: Callable[[], None] = field(compare=False)
    rank: int = CHANGE

    @property
    def order(self) -> tuple[Any, ...]:
        return (self.at, self.rank, self.service, self.key)


# Called as source(conn, window) inside the transaction that moves the clock; yields Due in Due.order. Each service
# declares its own (``core.service.Service.due_source``); a move is handed the app's.
DueSource = Callable[[Connection, Window], Iterable[Due]]


def _order(due: Due) -> tuple[Any, ...]:
    return due.order


def due_events(conn: Connection, window: Window, sources: Sequence[DueSource]) -> Iterator[Due]:
    """Every source's events due in the window, merged into one order (lazily: nothing is applied here)."""
    last: tuple[Any, ...] | None = None
    for due in heapq.merge(*(iter(source(conn, window)) for source in sources), key=_order):
        order = due.order
        if due.at > window.new.now or (last is not None and order < last):
            raise RuntimeError(f"a due-event source yielded {order[:3]} after the window or out of order")
        last = order
        yield due


def run_due(conn: Connection, window: Window, sources: Sequence[DueSource]) -> int:
    """Apply every event due in the window, one after another in that order; return how many happened.

    An event may be overdue (at or before ``window.old``) when the partner made state that was already past, e.g.
    a backdated ``Activate`` whose EndTime had passed: it happens first, dated when it fell due.
    While the events run, rows written with ``bulk.insert`` are queued and written in batches, each table's in the
    order they were made; the queue is flushed before each closing (which reads what came before), at the end,
    and whenever a reader calls ``bulk.flush``.
    """
    count = 0
    with bulk.queued(conn):
        for due in due_events(conn, window, sources):
            if due.rank == CLOSE:
                bulk.flush(conn)
            due.apply()
            count += 1
        bulk.flush(conn)
    return count


# The rows queued while a connection runs due events, by the connection's id (it is alive while they run).


def move_clock(
    conn: Connection,
    partner_id: str,
    new_now: dt.datetime,
    *,
    sources: Sequence[DueSource],
    profile: Profile | None = None,
) -> PartnerClock:
    """Move a partner's clock forward to ``new_now`` and run every due event of ``sources`` (the services') on the
    way, in date order.

    A zone-less ``new_now`` is read in the partner's zone. ``profile`` (prices, for the figures of closings and
    anniversaries) defaults to the packaged one.
    """
    old = read_clock(conn, partner_id)
    if new_now.tzinfo is None:
        new_now = new_now.replace(tzinfo=old.zone)
    new_now = new_now.astimezone(UTC)
    if new_now < old.now:
        raise Problem(
            409,
            "CLOCK_BACKWARDS",
            f"clocks only move forward: {iso_utc(new_now)} is before {iso_utc(old.now)}; "
            "reset the partner to start over",
            rule="SIM-CLOCK-1",
        )
    new = old.at(new_now)
    if new_now > old.now:
        run_due(conn, Window(partner_id, old, new, profile or load_profile()), sources)
    conn.execute(sa.update(partners).where(partners.c.id == partner_id).values(clock_now=new_now))
    return new
