"""The vendor's "today", one frozen clock per partner (SIM-CLOCK-1).

Rules never read the system time: they read the partner's clock, which moves only when a test sets or
advances it, and only forward. Services register ``on_advance`` hooks so that everything due up to the
new time has happened when the call returns.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from simulators.core.errors import Problem, not_found
from simulators.core.store import partners

UTC = dt.timezone.utc


@dataclass(frozen=True)
class Clock:
    now: dt.datetime  # aware, UTC
    timezone: str

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

    def to_json(self) -> dict[str, str]:
        return {"now": iso_utc(self.now), "today": self.today.isoformat(), "timezone": self.timezone}


# Called as hook(conn, partner_id, old_clock, new_clock) inside the transaction that moves the clock.
AdvanceHook = Callable[[Connection, str, Clock, Clock], None]
_hooks: list[AdvanceHook] = []


def on_advance(hook: AdvanceHook) -> AdvanceHook:
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def iso_utc(value: dt.datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def system_now() -> dt.datetime:
    """The real time, to the second: only for new clocks and for audit ``recorded_at``."""
    return dt.datetime.now(UTC).replace(microsecond=0)


def read_clock(conn: Connection, partner_id: str, *, for_update: bool = False) -> Clock:
    query = sa.select(partners.c.clock_now, partners.c.timezone).where(partners.c.id == partner_id)
    if for_update and conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise not_found("PARTNER_NOT_FOUND", f"no partner {partner_id!r}")
    return Clock(row.clock_now, row.timezone)


def move_clock(conn: Connection, partner_id: str, new_now: dt.datetime) -> Clock:
    """Move a partner's clock forward to ``new_now`` and run every due event on the way."""
    old = read_clock(conn, partner_id, for_update=True)
    if new_now.tzinfo is None:
        new_now = new_now.replace(tzinfo=old.zone)
    new_now = new_now.astimezone(UTC)
    if new_now < old.now:
        raise Problem(
            409,
            "CLOCK_BACKWARDS",
            f"clocks only move forward: {iso_utc(new_now)} is before {iso_utc(old.now)}; reset the partner to start over",
            rule="SIM-CLOCK-1",
        )
    new = Clock(new_now, old.timezone)
    for hook in _hooks:
        hook(conn, partner_id, old, new)
    conn.execute(sa.update(partners).where(partners.c.id == partner_id).values(clock_now=new_now))
    return new
