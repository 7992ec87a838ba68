"""KSS 3.0 monthly collective bill and monthly report, recomputed from the dated history of each subscription.

How a period is charged (KSS-BILL-0):
- A day (calendar date in the partner's time zone) is *paid* when at some moment of it the subscription was
  started, out of its trial (KSS-TRIAL-2), not paused (KSS-PAUSE-1) and before its end time (half-open: an end
  at 00:00 does not make that day paid), and, for ``reseller``/``msp``, not in the calendar month the
  subscription was created (KSS-FREE-1).
- Billing periods (KSS-PERIOD-1): calendar months, or 30-day periods counted from the subscription's first
  paid day. A 30-day period belongs to the bill of the month it starts in.
- A period with at least one paid day is charged once, for the **maximum** licence count in force on its paid
  days (KSS-QTY-2: an increase costs from the current period; KSS-QTY-3: a reduction from the next), at the
  price of the product in force on its last paid day, less the MSP volume discount (KSS-MSP-1, ``msp`` only:
  the tier comes from the sum of the counts charged for that product on the bill, across all customers).
- Money is Decimal, rounded half-up to cents once per line.

The state in force at a moment is the last *partner* snapshot in ``kss_history`` (ordered by effective time,
then id) effective at or before it; the vendor's own events (start, pause end, end, renewals) follow from those
snapshots and are not needed here. A period not yet over is projected from the current state (``provisional``).

Choices where the spec is silent:
- A licence count in force only at unpaid moments (trial, pause) does not raise the period's maximum.
- 30-day periods keep their anchor (the first paid day ever) across a cancel and a reactivation; a period
  without a paid day is simply not charged.
- ``provisional`` is true while the partner's today is before the end of the month or of any line's period
  (a 30-day period that starts late in the month ends in the next one and can still grow).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.clock import iso_utc, system_now
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.money import money, month_bounds
from ksimkit.simulators.core.partners import Partner
from ksimkit.simulators.kss.tables import history, subscriptions

UTC = dt.UTC
PERIOD_DAYS = 30
CALENDAR_MONTH, THIRTY_DAYS = "calendar_month", "30_days"
FREE_FIRST_MONTH = ("reseller", "msp")  # KSS-FREE-1
_TINY = dt.timedelta(microseconds=1)
_FOREVER = dt.datetime.max.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=1 << 14)  # clock moves ask for the same few midnights again and again
def local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """00:00 of ``day`` in the partner's zone, as aware UTC."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(UTC)


def next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)


# ---------------------------------------------------------------- the timeline of one subscription


@dataclass(frozen=True)
class Snapshot:
    """The billing-relevant state of a subscription from ``effective`` on."""

    effective: dt.datetime
    status: str
    license_count: int
    product_id: str
    start_time: dt.datetime
    end_time: dt.datetime | None
    trial_end: dt.datetime | None
    paused_at: dt.datetime | None
    pause_until: dt.datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Snapshot:
        return cls(
            row.effective,
            row.status,
            row.license_count,
            row.product_id,
            row.start_time,
            row.end_time,
            row.trial_end,
            row.paused_at,
            row.pause_until,
        )


@dataclass(frozen=True)
class Span:
    """[start, end) in UTC with one licence count and product."""

    start: dt.datetime
    end: dt.datetime
    license_count: int
    product_id: str


@dataclass(frozen=True)
class DaySpan:
    """Paid days [first, last] (inclusive, partner's dates) with one licence count and product."""

    first: dt.date
    last: dt.date
    license_count: int
    product_id: str


@dataclass(frozen=True)
class PeriodCharge:
    start: dt.date
    end: dt.date  # exclusive
    paid_days: int
    charged_count: int
    product_id: str


def load_snapshots(conn: Connection, partner_id: str, subscriber_id: str | None = None) -> dict[str, list[Snapshot]]:
    query = sa.select(history).where(history.c.partner_id == partner_id, history.c.source == "partner")
    if subscriber_id is not None:
        query = query.where(history.c.subscriber_id == subscriber_id)
    out: dict[str, list[Snapshot]] = defaultdict(list)
    for row in conn.execute(query.order_by(history.c.effective, history.c.id)):
        out[row.subscriber_id].append(Snapshot.from_row(row))
    return out


def _segments(snaps: Sequence[Snapshot], horizon: dt.datetime) -> Iterable[tuple[Snapshot, dt.datetime, dt.datetime]]:
    """Each snapshot with the stretch [lo, hi) it was in force, cut at ``horizon``."""
    for i, snap in enumerate(snaps):
        hi = snaps[i + 1].effective if i + 1 < len(snaps) else horizon
        yield snap, snap.effective, min(hi, horizon)


def _running(snaps: Sequence[Snapshot], horizon: dt.datetime) -> Iterable[tuple[Span, Snapshot]]:
    """Each stretch the subscription was running (started, before its end), with the snapshot in force."""
    for snap, lo, hi in _segments(snaps, horizon):
        lo = max(lo, snap.start_time)
        if snap.end_time is not None:
            hi = min(hi, snap.end_time)
        if hi > lo:
            yield Span(lo, hi, snap.license_count, snap.product_id), snap


def live_spans(snaps: Sequence[Snapshot], horizon: dt.datetime) -> list[Span]:
    """When the subscription was running at all, trial and pause included."""
    return [span for span, _ in _running(snaps, horizon)]


def paid_spans(snaps: Sequence[Snapshot], horizon: dt.datetime) -> list[Span]:
    """When the subscription was in a paid state: running, out of trial, not paused (KSS-BILL-0)."""
    out = []
    for span, snap in _running(snaps, horizon):
        lo, hi = span.start, span.end
        if snap.trial_end is not None:
            lo = max(lo, snap.trial_end)
        pieces = [(lo, hi)] if hi > lo else []
        if snap.paused_at is not None:  # the pause [paused_at, pause_until) is cut out
            cut_lo, cut_hi = snap.paused_at, snap.pause_until or _FOREVER
            pieces = [
                (a, b)
                for p_lo, p_hi in pieces
                for a, b in ((p_lo, min(p_hi, cut_lo)), (max(p_lo, cut_hi), p_hi))
                if b > a
            ]
        out += [Span(a, b, snap.license_count, snap.product_id) for a, b in pieces]
    return out


def free_until(partner: Partner, created_at: dt.datetime) -> dt.date | None:
    """KSS-FREE-1: reseller/msp subscriptions are free in the calendar month they were created."""
    if partner.programme not in FREE_FIRST_MONTH:
        return None
    return next_month(created_at.astimezone(ZoneInfo(partner.timezone)).date())


def paid_days(spans: Iterable[Span], zone: ZoneInfo, free_before: dt.date | None) -> list[DaySpan]:
    """Turn paid moments into paid calendar days: a day is paid when any moment of it is."""
    out = []
    for span in spans:
        first = span.start.astimezone(zone).date()
        last = (span.end - _TINY).astimezone(zone).date()
        if free_before is not None:
            first = max(first, free_before)
        if first <= last:
            out.append(DaySpan(first, last, span.license_count, span.product_id))
    return out


def charge(days: Sequence[DaySpan], start: dt.date, end: dt.date) -> PeriodCharge | None:
    """The period [start, end): None when it has no paid day, else its maximum count and last product."""
    if len(days) == 1:  # the common case, the general one below reduced to it
        d = days[0]
        last = end - dt.timedelta(days=1)
        lo, hi = (d.first if d.first > start else start), (d.last if d.last < last else last)
        return None if lo > hi else PeriodCharge(start, end, (hi - lo).days + 1, d.license_count, d.product_id)
    spans: list[tuple[dt.date, dt.date]] = []
    top, last_day, product = 0, None, None
    for d in days:  # chronological: on a tie the later span gives the product
        lo, hi = max(d.first, start), min(d.last, end - dt.timedelta(days=1))
        if lo > hi:
            continue
        spans.append((lo, hi))
        top = max(top, d.license_count)
        if last_day is None or hi >= last_day:
            last_day, product = hi, d.product_id
    if not spans or product is None:
        return None
    paid, reached = 0, None  # distinct paid days: spans may share a day (two states on one date)
    for lo, hi in sorted(spans):
        if reached is not None:
            lo = max(lo, reached + dt.timedelta(days=1))
        if hi >= lo:
            paid += (hi - lo).days + 1
        reached = hi if reached is None else max(reached, hi)
    return PeriodCharge(start, end, paid, top, product)


def anchor(days: Sequence[DaySpan]) -> dt.date | None:
    """The first paid day: 30-day periods count from it."""
    return min((d.first for d in days), default=None)


def periods_starting_in(
    kind: str, start: dt.date, end: dt.date, first_paid: dt.date | None
) -> list[tuple[dt.date, dt.date]]:
    if kind == CALENDAR_MONTH:
        return [(start, end)]
    if first_paid is None:
        return []
    k = max(0, -(-(start - first_paid).days // PERIOD_DAYS))  # ceil
    out = []
    while (p := first_paid + dt.timedelta(days=PERIOD_DAYS * k)) < end:
        out.append((p, p + dt.timedelta(days=PERIOD_DAYS)))
        k += 1
    return out


def period_containing(kind: str, day: dt.date, first_paid: dt.date | None) -> tuple[dt.date, dt.date] | None:
    if kind == CALENDAR_MONTH:
        first = day.replace(day=1)
        return first, next_month(first)
    if first_paid is None or day < first_paid:
        return None
    p = first_paid + dt.timedelta(days=PERIOD_DAYS * ((day - first_paid).days // PERIOD_DAYS))
    return p, p + dt.timedelta(days=PERIOD_DAYS)


def _days_of(
    partner: Partner, snaps: Sequence[Snapshot], created_at: dt.datetime, horizon: dt.datetime
) -> list[DaySpan]:
    zone = ZoneInfo(partner.timezone)
    return paid_days(paid_spans(snaps, horizon), zone, free_until(partner, created_at))


def first_paid_day(conn: Connection, partner: Partner, row: Any, horizon: dt.datetime) -> dt.date | None:
    """The subscription's first paid day up to ``horizon`` (the anchor of its 30-day periods)."""
    snaps = load_snapshots(conn, partner.id, row.subscriber_id)[row.subscriber_id]
    return anchor(_days_of(partner, snaps, row.created_at, horizon))


def first_paid_days(
    conn: Connection, partner: Partner, rows: Sequence[Any], horizon: dt.datetime
) -> dict[str, dt.date | None]:
    """``first_paid_day`` of each of ``rows``, from one read of the partner's snapshots."""
    if not rows:
        return {}
    snaps_by_sub = load_snapshots(conn, partner.id)
    return {
        row.subscriber_id: anchor(_days_of(partner, snaps_by_sub[row.subscriber_id], row.created_at, horizon))
        for row in rows
    }


def current_period_charge(conn: Connection, partner: Partner, today: dt.date, row: Any) -> PeriodCharge | None:
    """The charge of the billing period containing ``today``, projected to its end; None if it is not charged."""
    zone = ZoneInfo(partner.timezone)
    horizon = local_midnight(today + dt.timedelta(days=PERIOD_DAYS + 31), zone)
    snaps = load_snapshots(conn, partner.id, row.subscriber_id)[row.subscriber_id]
    days = _days_of(partner, snaps, row.created_at, horizon)
    bounds = period_containing(partner.billing_period, today, anchor(days))
    return None if bounds is None else charge(days, *bounds)


def status_at(snap: Snapshot, moment: dt.datetime) -> str:
    """The status at ``moment`` that follows from a partner snapshot and the clock (start, pause end, end)."""
    status = snap.status
    if status == "NotStarted" and moment >= snap.start_time:
        status = "Started"
    if status == "Paused" and snap.pause_until is not None and moment >= snap.pause_until:
        status = "Started"
    if status == "Started" and snap.end_time is not None and moment >= snap.end_time:
        status = "SoftCancelled"
    return status


# ---------------------------------------------------------------- the bill (KSS-BILL-1) and the report (KSS-REPORT-1)


def _partner_rows(conn: Connection, partner_id: str) -> Sequence[Any]:
    return conn.execute(
        sa.select(subscriptions)
        .where(subscriptions.c.partner_id == partner_id)
        .order_by(subscriptions.c.customer_id, subscriptions.c.subscriber_id)
    ).all()


@dataclass(frozen=True)
class Book:
    """What bills read: the partner's subscriptions and the paid days of each up to ``horizon``.

    A clock move that closes many months loads it once for all of them (the partner's data cannot change while
    its clock moves); a bill only reads the days of its own periods, so a later horizon gives the same bill."""

    horizon: dt.datetime
    rows: Sequence[Any]
    days: dict[str, list[DaySpan]]


def load_book(conn: Connection, partner: Partner, horizon: dt.datetime) -> Book:
    snaps_by_sub = load_snapshots(conn, partner.id)
    rows = _partner_rows(conn, partner.id)
    days = {
        row.subscriber_id: _days_of(partner, snaps_by_sub[row.subscriber_id], row.created_at, horizon) for row in rows
    }
    return Book(horizon, rows, days)


def bill(conn: Connection, ctx: CallContext, period: str, *, book: Book | None = None) -> dict[str, Any]:
    """The partner's monthly collective bill for ``YYYY-MM``: every customer, one line per charged period."""
    start, end = month_bounds(period)
    partner, zone = ctx.partner, ctx.clock.zone
    kind = partner.billing_period
    horizon = local_midnight(end + dt.timedelta(days=PERIOD_DAYS if kind == THIRTY_DAYS else 0), zone)
    if book is None or book.horizon < horizon:
        book = load_book(conn, partner, horizon)
    charged: list[tuple[Any, PeriodCharge]] = []
    calendar = kind == CALENDAR_MONTH
    for row in book.rows:
        days = book.days[row.subscriber_id]
        if not days:
            continue  # never paid: no period is charged
        if calendar:  # one period, the month (periods_starting_in): no anchor needed
            if (found := charge(days, start, end)) is not None:
                charged.append((row, found))
            continue
        for lo, hi in periods_starting_in(kind, start, end, anchor(days)):
            if (found := charge(days, lo, hi)) is not None:
                charged.append((row, found))
    # KSS-MSP-1: one tier per product, from the licences charged for it across all customers on this bill.
    volume: dict[str, int] = defaultdict(int)
    for _, c in charged:
        volume[c.product_id] += c.charged_count
    msp = partner.programme == "msp"
    percent = {pid: ctx.profile.msp_discount(n) if msp else Decimal("0") for pid, n in volume.items()}
    lines = _BillLines(ctx, percent)
    for row, c in charged:
        lines.add(row, c)
    last_day = max([end] + [c.end for _, c in charged])
    return {
        "partner_id": partner.id,
        "period": period,
        "billing_period": kind,
        "programme": partner.programme,
        "currency": ctx.profile.currency,
        "provisional": ctx.clock.today < last_day,
        "generated_at": iso_utc(system_now()),
        "lines": lines.lines,
        "customers": [
            {
                "customer_id": cid,
                "lines": n,
                "gross": f"{gross:.2f}",
                "discount": f"{discount:.2f}",
                "amount": f"{amount:.2f}",
            }
            for cid, (n, gross, discount, amount) in lines.customers.items()
        ],
        "volume": [
            {"product_id": pid, "licences": n, "discount_percent": f"{percent[pid]:.2f}"}
            for pid, n in sorted(volume.items())
        ]
        if msp
        else [],
        "totals": {
            name: f"{total:.2f}" for name, total in zip(("gross", "discount", "amount"), lines.totals, strict=True)
        },
    }


class _BillLines:
    """The bill's lines (``_bill_line`` each), with per-customer and overall sums kept as they are made."""

    def __init__(self, ctx: CallContext, percent: dict[str, Decimal]) -> None:
        self.lines: list[dict[str, Any]] = []
        self.customers: dict[str, list[Any]] = {}  # customer -> [lines, gross, discount, amount], first seen first
        self.totals = [Decimal("0")] * 3
        self._product: dict[str, tuple[Decimal, str, Decimal, str]] = {
            pid: (ctx.profile.kss_products[pid].price, f"{ctx.profile.kss_products[pid].price:.2f}", p, f"{p:.2f}")
            for pid, p in percent.items()
        }

    def add(self, row: Any, c: PeriodCharge) -> None:
        price, price_text, percent, percent_text = self._product[c.product_id]
        gross = money(price * c.charged_count)
        gross_text = f"{gross:.2f}"
        if percent:
            discount = money(gross * percent / 100)
            amount = gross - discount
            discount_text, amount_text = f"{discount:.2f}", f"{amount:.2f}"
        else:  # no discount: 0.00, and the amount is the gross
            discount, amount, discount_text, amount_text = Decimal("0"), gross, "0.00", gross_text
        customer = row.customer_id
        self.lines.append(
            {
                "customer_id": customer,
                "subscriber_id": row.subscriber_id,
                "product_id": c.product_id,
                "period_start": c.start.isoformat(),
                "period_end": c.end.isoformat(),
                "paid_days": c.paid_days,
                "charged_count": c.charged_count,
                "unit_price": price_text,
                "gross": gross_text,
                "discount_percent": percent_text,
                "discount": discount_text,
                "amount": amount_text,
            }
        )
        sums = self.customers.get(customer)
        if sums is None:
            sums = self.customers[customer] = [0, Decimal("0"), Decimal("0"), Decimal("0")]
        sums[0] += 1
        sums[1] += gross
        sums[2] += discount
        sums[3] += amount
        totals = self.totals
        totals[0] += gross
        totals[1] += discount
        totals[2] += amount


def report(conn: Connection, ctx: CallContext, period: str) -> dict[str, Any]:
    """Every subscription running at some moment of the month (trial, pause and free month included), per
    customer, with its licence count and status at the end of the month (or at its end)."""
    start, end = month_bounds(period)
    zone = ctx.clock.zone
    lo, hi = local_midnight(start, zone), local_midnight(end, zone)
    snaps_by_sub = load_snapshots(conn, ctx.partner_id)
    customers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _partner_rows(conn, ctx.partner_id):
        snaps = snaps_by_sub[row.subscriber_id]
        if not any(span.end > lo for span in live_spans(snaps, hi)):
            continue
        last = [s for s in snaps if s.effective < hi][-1]
        customers[row.customer_id].append(
            {
                "subscriber_id": row.subscriber_id,
                "product_id": last.product_id,
                "license_count": last.license_count,
                "status": status_at(last, hi - _TINY),
                "activation_code": row.activation_code,
            }
        )
    items = [
        {"customer_id": cid, "licences": sum(s["license_count"] for s in subs), "subscriptions": subs}
        for cid, subs in customers.items()
    ]
    return {
        "partner_id": ctx.partner_id,
        "period": period,
        "provisional": ctx.clock.today < end,
        "generated_at": iso_utc(system_now()),
        "customers": items,
        "totals": {
            "customers": len(items),
            "subscriptions": sum(len(c["subscriptions"]) for c in items),
            "licences": sum(c["licences"] for c in items),
        },
    }
