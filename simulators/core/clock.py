"""The vendor's "today", one clock per partner (SIM-CLOCK-1), and what falls due when it moves.

Rules never read the system time: they read the partner's clock, which moves only when a test sets or
advances it, and only forward (a reset of the partner is the one way back). A partner may instead have a running
clock, which follows wall time from an offset (ksimkit.simulators.core.clock_mode): it is moved here too, to
wall time plus its offset, at the start of each of the partner's requests. Like a Stripe test clock, a move is
synchronous and unlimited: everything that falls due up to the new time has happened when ``move_clock``
returns, in one time order across services.

Due events. Each service registers a *source* with ``on_due``: given the window (old, new] of a clock move it
yields the events that fall due in it, each a ``Due`` (instant, rank, service, key, and an ``apply`` callable
that writes the event), already in ``Due.order``. ``move_clock`` merges every source's stream (``heapq.merge``,
lazily: a 10-year jump never holds all its events in memory and never walks day by day) and applies the events
one after another, so what each writes (state, history, audit entries) lands in date order across services.
A source must compute its events from what the partner did, never from what another source's events wrote;
that is what lets every source list its events before any is applied.

At one instant, closings (``CLOSE``: the vendor closing the billing period that has just ended) come before
changes (``CHANGE``: renewals, trial and pause ends, ends, anniversaries that open the next one); then services
in name order, then each source's own key.
"""

from __future__ import annotations

import datetime as dt
import heapq
import operator
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.catalog import Profile, load_profile
from ksimkit.simulators.core.errors import Problem, not_found
from ksimkit.simulators.core.store import lock_partner, partners

UTC = dt.UTC


@dataclass(frozen=True)
class Clock:
    now: dt.datetime  # aware, UTC
    timezone: str
    running: bool = False  # follows wall time (ksimkit.simulators.core.clock_mode); False: frozen, moved by tests

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def local_now(self) -> dt.datetime:
        return self.now.astimezone(self.zone)

    @property
    def today(self) -> dt.date:
        """The calendar date in the partner's billing time zone."""
        return self.local_now.date()

    def at(self, now: dt.datetime) -> Clock:
        """The same clock at another instant (what an event's audit entry is dated with)."""
        return Clock(now, self.timezone, self.running)

    def midnight(self, day: dt.date) -> dt.datetime:
        """00:00 of ``day`` in the partner's zone, as aware UTC: when a dated event falls due."""
        return dt.datetime.combine(day, dt.time(0), tzinfo=self.zone).astimezone(UTC)

    def to_json(self) -> dict[str, str]:
        return {
            "now": iso_utc(self.now),
            "today": self.today.isoformat(),
            "timezone": self.timezone,
            "mode": "running" if self.running else "frozen",
        }


# ---------------------------------------------------------------- due events

CLOSE, CHANGE = 0, 1  # ranks at one instant: close the period that ended, then open the next


@dataclass(frozen=True)
class Window:
    """A clock move, as the due-event sources see it: events fall due in (old.now, new.now]."""

    partner_id: str
    old: Clock
    new: Clock
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


# Called as source(conn, window) inside the transaction that moves the clock; yields Due in Due.order.
DueSource = Callable[[Connection, Window], Iterable[Due]]
_sources: list[DueSource] = []
# Where a clock move finds the vendor profile when its caller does not give one (the web layer registers one).
ProfileSource = Callable[[], Profile | None]
_profile_sources: list[ProfileSource] = []


def on_due(source: DueSource) -> DueSource:
    """Register a service's due-event source (a decorator)."""
    if source not in _sources:
        _sources.append(source)
    return source


def profile_source(source: ProfileSource) -> ProfileSource:
    if source not in _profile_sources:
        _profile_sources.append(source)
    return source


def _profile(given: Profile | None) -> Profile:
    if given is not None:
        return given
    for source in _profile_sources:
        if (found := source()) is not None:
            return found
    return load_profile()


def _order(due: Due) -> tuple[Any, ...]:
    return due.order


def due_events(conn: Connection, window: Window) -> Iterator[Due]:
    """Every service's events due in the window, merged into one order (lazily: nothing is applied here)."""
    last: tuple[Any, ...] | None = None
    for due in heapq.merge(*(iter(source(conn, window)) for source in _sources), key=_order):
        order = due.order
        if due.at > window.new.now or (last is not None and order < last):
            raise RuntimeError(f"a due-event source yielded {order[:3]} after the window or out of order")
        last = order
        yield due


def run_due(conn: Connection, window: Window) -> int:
    """Apply every event due in the window, one after another in that order; return how many happened.

    An event may be overdue (at or before ``window.old``) when the partner made state that was already past, e.g.
    a backdated ``Activate`` whose EndTime had passed: it happens first, dated when it fell due.
    While the events run, rows written with ``insert`` are queued and written in batches, each table's in the
    order they were made; the queue is flushed before each closing (which reads what came before), at the end,
    and whenever a reader calls ``flush``.
    """
    count = 0
    _queues[id(conn)] = []
    _memos[id(conn)] = {}
    try:
        for due in due_events(conn, window):
            if due.rank == CLOSE:
                flush(conn)
            due.apply()
            count += 1
        flush(conn)
    finally:
        _queues.pop(id(conn), None)
        _memos.pop(id(conn), None)
    return count


# The rows queued while a connection runs due events, by the connection's id (it is alive while they run).
_queues: dict[int, list[tuple[sa.Table, dict[str, Any]]]] = {}
_memos: dict[int, dict[Any, dict[int, Any]]] = {}  # the bulk writers' processed values, per run of due events
_FLUSH_AT = 20_000
_inserts: dict[sa.Table, Any] = {}


def _insert_of(table: sa.Table) -> Any:
    if table not in _inserts:
        _inserts[table] = sa.insert(table)
    return _inserts[table]


def insert(conn: Connection, table: sa.Table, row: dict[str, Any]) -> None:
    """Insert one row (every column but an autoincrement id); queued while due events run (see ``run_due``)."""
    queue = _queues.get(id(conn))
    if queue is None:
        conn.execute(_insert_of(table), row)
        return
    queue.append((table, row))
    if len(queue) >= _FLUSH_AT:
        flush(conn)


def flush(conn: Connection) -> None:
    """Write the rows queued by ``insert`` (one executemany per table, in order); a no-op outside due events."""
    queue = _queues.get(id(conn))
    if not queue:
        return
    per_table: dict[sa.Table, list[dict[str, Any]]] = {}
    for table, row in queue:
        per_table.setdefault(table, []).append(row)
    queue.clear()
    memos = _memos.setdefault(id(conn), {})
    for table, rows in per_table.items():
        _BulkWriter.of(table, conn.dialect).write(conn, rows, memos)


class _BulkWriter:
    """How ``flush`` writes many rows of one table, fast: the insert is compiled once by SQLAlchemy for the
    connection's dialect, each column's bind processor (the store's UTC datetimes, JSON, the dialect's dates) runs
    once per distinct value rather than once per row (a long jump writes the same few instants, statuses and
    products thousands of times), and the rows go to the driver's ``executemany`` as they are. What reaches the
    database is exactly what ``conn.execute(sa.insert(table), rows)`` would send."""

    _writers: dict[tuple[sa.Table, str], _BulkWriter] = {}

    def __init__(self, table: sa.Table, dialect: Any) -> None:
        self.table, self.dialect = table, dialect
        self.processors = {
            c.name: proc for c in table.columns if (proc := c.type.dialect_impl(dialect).bind_processor(dialect))
        }
        self._compiled: dict[tuple[str, ...], Any] = {}

    @classmethod
    def of(cls, table: sa.Table, dialect: Any) -> _BulkWriter:
        key = (table, dialect.name)
        if key not in cls._writers:
            cls._writers[key] = cls(table, dialect)
        return cls._writers[key]

    def _statement(self, names: tuple[str, ...]) -> Any:
        if names not in self._compiled:
            self._compiled[names] = sa.insert(self.table).compile(dialect=self.dialect, column_keys=list(names))
        return self._compiled[names]

    def write(self, conn: Connection, rows: list[dict[str, Any]], memos: dict[Any, dict[int, Any]]) -> None:
        """``memos``: processed values by column, kept for a whole run of due events (each holds its value, so no
        id is reused while it lives)."""
        names = tuple(rows[0])
        compiled = self._statement(names)
        binds = [compiled.binds[key].key for key in compiled.positiontup] if compiled.positional else list(names)
        if sorted(binds) != sorted(names):  # not the plain statement this writer expects: let SQLAlchemy do it all
            conn.execute(sa.insert(self.table), rows)
            return
        pick = operator.itemgetter(*binds)
        processed = [
            (i, proc, memos.setdefault((self.table, name), {}))
            for i, name in enumerate(binds)
            if (proc := self.processors.get(name))
        ]
        out: list[Any] = []
        for row in rows:
            values = list(pick(row)) if len(binds) > 1 else [row[binds[0]]]
            for i, proc, memo in processed:
                # By identity: the memo keeps every value it saw alive, so an id is never reused while it lives,
                # and one object (an instant, a state's start time, a shared details dict) is processed once.
                value = values[i]
                found = memo.get(id(value))
                if found is None:
                    found = memo[id(value)] = (value, proc(value))
                values[i] = found[1]
            out.append(tuple(values) if compiled.positional else dict(zip(binds, values, strict=True)))
        conn.exec_driver_sql(compiled.string, out)


# ---------------------------------------------------------------- reading and moving


def iso_utc(value: dt.datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


_second: tuple[int, dt.datetime] = (-1, dt.datetime.min.replace(tzinfo=UTC))


def system_now() -> dt.datetime:
    """The real time, to the second: only for new clocks and for audit ``recorded_at``.

    Made once per second (a long clock move stamps every audit entry it writes with it)."""
    global _second
    seconds = int(time.time())
    if seconds != _second[0]:
        _second = (seconds, dt.datetime.fromtimestamp(seconds, UTC))
    return _second[1]


def read_clock(conn: Connection, partner_id: str) -> Clock:
    row = conn.execute(
        lock_partner(sa.select(partners.c.clock_now, partners.c.timezone).where(partners.c.id == partner_id))
    ).first()
    if row is None:
        raise not_found("PARTNER_NOT_FOUND", f"no partner {partner_id!r}")
    return Clock(row.clock_now, row.timezone)


def move_clock(conn: Connection, partner_id: str, new_now: dt.datetime, *, profile: Profile | None = None) -> Clock:
    """Move a partner's clock forward to ``new_now`` and run every due event on the way, in date order.

    A zone-less ``new_now`` is read in the partner's zone. ``profile`` (prices, for the figures of closings and
    anniversaries) defaults to the app's, else the packaged one.
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
        run_due(conn, Window(partner_id, old, new, _profile(profile)))
    conn.execute(sa.update(partners).where(partners.c.id == partner_id).values(clock_now=new_now))
    return new
