"""A partner's "today" (SIM-CLOCK-1): the ``PartnerClock`` value, reading it, and the system time ksim stamps.

Rules never read the system time: they read the partner's clock, which moves only when a test sets or advances it,
and only forward (a reset of the partner is the one way back); ``core.due.move_clock`` moves it and runs what falls
due on the way. A partner may instead have a running clock, which follows wall time from an offset
(``core.clock_mode``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.errors import not_found
from ksimkit.simulators.core.store import lock_partner, partners

UTC = dt.UTC


@dataclass(frozen=True)
class PartnerClock:
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

    def at(self, now: dt.datetime) -> PartnerClock:
        """The same clock at another instant (what an event's audit entry is dated with)."""
        return PartnerClock(now, self.timezone, self.running)

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


def read_clock(conn: Connection, partner_id: str) -> PartnerClock:
    row = conn.execute(
        lock_partner(sa.select(partners.c.clock_now, partners.c.timezone).where(partners.c.id == partner_id))
    ).first()
    if row is None:
        raise not_found("PARTNER_NOT_FOUND", f"no partner {partner_id!r}")
    return PartnerClock(row.clock_now, row.timezone)
