"""A partner's clock mode (SIM-CLOCK-1): frozen (the default; it moves only when a test sets or advances it) or
running (it follows wall time from an offset, so a broker that reads its own system clock works unchanged).

A running clock is still the partner's clock of ``ksimkit.simulators.core.clock``: the stored ``clock_now`` is
moved to wall time + offset, to the microsecond (a client on a synchronised clock that stamps StartTime with its
own now must never be ahead of it), with ``move_clock`` at the start of each of the partner's requests
(``caught_up``), so every due event (starts, renewals, bill closings) happens as it falls due, in order, as in a
jump. A test may still jump a running clock forward; it then runs on from there (the offset grows). A reset puts it
back to its start and it runs on from there. Switching to frozen stops it where it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.catalog import Profile
from ksimkit.simulators.core.clock import PartnerClock, read_clock
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.due import DueSource, move_clock
from ksimkit.simulators.core.store import metadata, partners

# Each function that may move a clock takes the due-event sources of the services served and the vendor profile
# (``Runtime.services.due_sources``, ``Runtime.profile``), as ``move_clock`` does.
Sources = Sequence[DueSource]

MODES = ("frozen", "running")

# A row per running clock: the partner's time minus wall time. No foreign key: removing a partner is not blocked.
running_clocks = sa.Table(
    "clock_modes",
    metadata,
    sa.Column("partner_id", sa.String(32), primary_key=True),
    sa.Column("offset_microseconds", sa.BigInteger, nullable=False),
)

_OFFSET = sa.select(running_clocks.c.offset_microseconds).where(running_clocks.c.partner_id == sa.bindparam("p_id"))


def _offset(conn: Connection, partner_id: str) -> dt.timedelta | None:
    found = conn.execute(_OFFSET, {"p_id": partner_id}).scalar()
    return None if found is None else dt.timedelta(microseconds=found)


def _set_offset(conn: Connection, partner_id: str, offset: dt.timedelta) -> None:
    conn.execute(sa.delete(running_clocks).where(running_clocks.c.partner_id == partner_id))
    micros = offset // dt.timedelta(microseconds=1)
    conn.execute(sa.insert(running_clocks).values(partner_id=partner_id, offset_microseconds=micros))


def _wall() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def current(conn: Connection, partner_id: str, sources: Sources, profile: Profile) -> PartnerClock:
    """The partner's clock now: a running one is first moved to wall time + offset (running what falls due)."""
    clock = read_clock(conn, partner_id)
    offset = _offset(conn, partner_id)
    if offset is None:
        return clock
    target = _wall() + offset
    if target > clock.now:
        clock = move_clock(conn, partner_id, target, sources=sources, profile=profile)
    return replace(clock, running=True)


def caught_up(conn: Connection, ctx: CallContext, sources: Sources) -> CallContext:
    """``ctx`` with the partner's clock caught up, when it is running (one primary-key read when it is not)."""
    offset = _offset(conn, ctx.partner_id)
    if offset is None:
        return ctx
    clock = current(conn, ctx.partner_id, sources, ctx.profile)
    return replace(ctx, partner=replace(ctx.partner, clock=clock))


def jump(conn: Connection, partner_id: str, new_now: dt.datetime, sources: Sources, profile: Profile) -> PartnerClock:
    """``move_clock`` for the control plane: a running clock is caught up first and runs on from ``new_now``."""
    running = _offset(conn, partner_id) is not None
    if running:
        current(conn, partner_id, sources, profile)
    clock = move_clock(conn, partner_id, new_now, sources=sources, profile=profile)
    if running:
        _set_offset(conn, partner_id, clock.now - _wall())
    return replace(clock, running=running)


def set_mode(
    conn: Connection, partner_id: str, mode: str, sources: Sources, profile: Profile, offset: dt.timedelta | None = None
) -> PartnerClock:
    """Switch the partner's clock: ``running`` runs on from the partner's time now, or at wall time + ``offset``
    (0: wall time itself; never back: CLOCK_BACKWARDS); ``frozen`` stops it where it is."""
    clock = current(conn, partner_id, sources, profile)
    if mode == "running":
        wall = _wall()
        if offset is None:
            offset = clock.now - wall
        else:  # the exact offset asked for (0: wall time itself), never a few microseconds behind it
            clock = move_clock(conn, partner_id, wall + offset, sources=sources, profile=profile)
        _set_offset(conn, partner_id, offset)
        return replace(clock, running=True)
    conn.execute(sa.delete(running_clocks).where(running_clocks.c.partner_id == partner_id))
    return replace(clock, running=False)


def reset(conn: Connection, partner_id: str) -> None:
    """A running clock runs on from the partner's start (the reset puts ``clock_now`` back there)."""
    if _offset(conn, partner_id) is not None:
        start = conn.execute(sa.select(partners.c.clock_start).where(partners.c.id == partner_id)).scalar_one()
        _set_offset(conn, partner_id, start - _wall())
