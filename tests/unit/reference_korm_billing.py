"""KORM SS vendor statement for a calendar month, computed from the dated history of each subscription.

- PAYG (KORM-PAYG-2/3): licence-days per SKU; amount = licence-days x monthly price / days in the month.
- Yearly (KORM-YEAR-3/4): the year's fee in the month of activation and of each anniversary; an increase is
  charged pro rata for the days left in the current year, in the month it takes effect.
- Legacy (KORM-LEG-1/2): free until the 1st of the next month, then each month at its maximum count.
- Approval discount (KORM-APPR-1) lowers what the vendor bills, per line.
Intervals are half-open; on a day with several changes the last one counts. Money rounds half-up once per line.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.catalog import Profile
from ksimkit.simulators.core.clock import iso_utc, system_now
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.money import CENT, money, month_bounds
from ksimkit.simulators.korm.rules import LEGACY, PAYG, YEARLY, add_years
from ksimkit.simulators.korm.tables import history, subscriptions

@dataclass(frozen=True)
class Segment:
    """The state of a subscription over [start, end)."""

    start: dt.date
    end: dt.date
    model: str
    sku: str
    quantity: int


def segments(entries: Iterable[Any], stopped_on: dt.date | None, horizon: dt.date) -> list[Segment]:
    """Collapse dated history rows (ordered by id) into half-open segments up to ``horizon`` or the stop."""
    by_day: dict[dt.date, Any] = {}
    for entry in entries:
        by_day[entry.effective_date] = entry  # the last change of a day wins
    days = sorted(by_day)
    out: list[Segment] = []
    for i, day in enumerate(days):
        entry = by_day[day]
        if entry.change == "stop":
            break
        end = days[i + 1] if i + 1 < len(days) else horizon
        if stopped_on is not None:
            end = min(end, stopped_on)
        if end > day:
            out.append(Segment(day, end, entry.billing_model, entry.sku, entry.quantity))
    return out


def _clip(seg: Segment, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date] | None:
    lo, hi = max(seg.start, start), min(seg.end, end)
    return (lo, hi) if hi > lo else None


# Line kinds whose unit price is derived (a monthly price per day, a yearly price for the days left): shown with
# exactly 6 decimals, as the contract states; the gross comes from the exact price, rounded once per line.
DERIVED_PRICES = ("licence_days", "yearly_increase")


def _line(row: Any, profile: Profile, *, sku: str, kind: str, units: int, days: int | None, unit_price: Decimal,
          gross: Decimal, start: dt.date, end: dt.date, model: str) -> dict[str, Any]:
    gross = money(gross)
    discount = money(gross * row.discount_percent / 100)
    return {
        "subscription_id": row.id,
        "customer_id": row.customer_id,
        "sku": sku,
        "product_id": row.product_id,
        "billing_model": model,
        "kind": kind,
        "units": units,
        "days": days,
        "unit_price": f"{unit_price.quantize(Decimal('0.000001'), rounding=ROUND_HALF_UP):f}"
        if kind in DERIVED_PRICES else f"{unit_price.quantize(CENT, rounding=ROUND_HALF_UP):f}",
        "from": start.isoformat(),
        "to": end.isoformat(),
        "gross": f"{gross:.2f}",
        "discount_percent": f"{row.discount_percent:.2f}",
        "discount": f"{discount:.2f}",
        "amount": f"{gross - discount:.2f}",
    }


def _payg_lines(row: Any, segs: list[Segment], profile: Profile, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    dim = (end - start).days
    per_sku: dict[str, list[tuple[dt.date, dt.date, int]]] = defaultdict(list)
    for seg in segs:
        if seg.model == PAYG and (span := _clip(seg, start, end)):
            per_sku[seg.sku].append((span[0], span[1], seg.quantity))
    lines = []
    for sku_id, spans in per_sku.items():
        price = profile.skus[sku_id].price
        licence_days = sum((hi - lo).days * qty for lo, hi, qty in spans)
        days = sum((hi - lo).days for lo, hi, _ in spans)
        lines.append(_line(
            row, profile, sku=sku_id, kind="licence_days", units=licence_days, days=days,
            unit_price=price / dim, gross=Decimal(licence_days) * price / dim,
            start=min(s[0] for s in spans), end=max(s[1] for s in spans), model=PAYG,
        ))
    return lines


def _quantity_on(segs: list[Segment], day: dt.date) -> int | None:
    for seg in segs:
        if seg.start <= day < seg.end:
            return seg.quantity
    return None


def yearly_fee(row: Any, segs: list[Segment], profile: Profile, years: int) -> dict[str, Any] | None:
    """The year's fee due on the ``years``-th anniversary (0: the activation) at the count then in force, or None
    when the subscription is stopped by then (KORM-YEAR-4). ``segs`` must reach past that day."""
    anniversary = add_years(row.activation_date, years)
    quantity = _quantity_on(segs, anniversary)
    if not quantity:
        return None
    price = profile.skus[row.sku].price
    next_ann = add_years(row.activation_date, years + 1)
    return _line(
        row, profile, sku=row.sku, kind="yearly_fee", units=quantity, days=(next_ann - anniversary).days,
        unit_price=price, gross=price * quantity, start=anniversary, end=next_ann, model=YEARLY,
    )


def _yearly_lines(row: Any, segs: list[Segment], profile: Profile, entries: list[Any],
                  start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    lines = []
    price = profile.skus[row.sku].price
    activation = row.activation_date
    # The year's fee on activation and on each anniversary while not stopped (KORM-YEAR-4).
    years = 0
    while (anniversary := add_years(activation, years)) < end:
        if anniversary >= start and (fee := yearly_fee(row, segs, profile, years)) is not None:
            lines.append(fee)
        years += 1
    # Increases, pro rata for the rest of the current year (KORM-YEAR-3); none on an anniversary, the fee covers it.
    by_day: dict[dt.date, Any] = {}
    for entry in entries:
        by_day[entry.effective_date] = entry
    previous = None
    for day in sorted(by_day):
        entry = by_day[day]
        if entry.change == "stop":
            break
        if previous is not None and entry.quantity > previous and start <= day < end:
            k = 0
            while add_years(activation, k + 1) <= day:
                k += 1
            year_start, year_end = add_years(activation, k), add_years(activation, k + 1)
            if day != year_start:
                added, remaining, year_days = entry.quantity - previous, (year_end - day).days, (year_end - year_start).days
                lines.append(_line(
                    row, profile, sku=row.sku, kind="yearly_increase", units=added, days=remaining,
                    unit_price=price * remaining / year_days, gross=price * added * remaining / year_days,
                    start=day, end=year_end, model=YEARLY,
                ))
        previous = entry.quantity
    return lines


def _legacy_lines(row: Any, segs: list[Segment], profile: Profile, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    # Free until the first day of the month after activation (KORM-LEG-1).
    act = row.activation_date
    free_until = dt.date(act.year + (act.month == 12), act.month % 12 + 1, 1)
    spans = [
        (span, seg) for seg in segs
        if seg.model == LEGACY and (span := _clip(seg, max(start, free_until), end))
    ]
    if not spans:
        return []
    top = max(seg.quantity for _, seg in spans)  # the month's maximum count (KORM-LEG-2)
    price = profile.skus[row.sku].price
    return [_line(
        row, profile, sku=row.sku, kind="legacy_month", units=top, days=sum((hi - lo).days for (lo, hi), _ in spans),
        unit_price=price, gross=price * top, start=min(s[0][0] for s in spans), end=max(s[0][1] for s in spans),
        model=LEGACY,
    )]


@dataclass(frozen=True)
class Book:
    """What statements read: the partner's subscriptions activated before ``end`` (not stopped on their activation
    day) and their history dated before it. A clock move that closes many months loads it once for all of them
    (the partner's data cannot change while its clock moves); each statement keeps what is dated before its end."""

    end: dt.date
    rows: list[Any]
    entries: dict[str, list[Any]]


def load_book(conn: Connection, partner_id: str, end: dt.date) -> Book:
    rows = conn.execute(
        sa.select(subscriptions)
        .where(subscriptions.c.partner_id == partner_id, subscriptions.c.activation_date < end)
        .where(sa.or_(subscriptions.c.stopped_on.is_(None), subscriptions.c.stopped_on > subscriptions.c.activation_date))
        .order_by(subscriptions.c.created_at, subscriptions.c.id)
    ).all()
    entries_by_sub: dict[str, list[Any]] = defaultdict(list)
    if rows:
        for entry in conn.execute(
            sa.select(history)
            .where(history.c.partner_id == partner_id, history.c.effective_date < end)
            .order_by(history.c.id)
        ):
            entries_by_sub[entry.subscription_id].append(entry)
    return Book(end, rows, entries_by_sub)


def statement(conn: Connection, ctx: CallContext, period: str, *, book: Book | None = None) -> dict[str, Any]:
    start, end = month_bounds(period)
    if book is None or book.end < end:
        book = load_book(conn, ctx.partner_id, end)
    lines: list[dict[str, Any]] = []
    for row in book.rows:
        if row.activation_date >= end:
            continue
        entries = book.entries[row.id]
        if book.end > end:
            entries = [e for e in entries if e.effective_date < end]
        segs = segments(entries, row.stopped_on, end)
        lines += _legacy_lines(row, segs, ctx.profile, start, end)
        lines += _payg_lines(row, segs, ctx.profile, start, end)
        if row.billing_model == YEARLY:
            lines += _yearly_lines(row, segs, ctx.profile, entries, start, end)
    totals = {
        name: f"{sum((Decimal(line[name]) for line in lines), Decimal('0')):.2f}"
        for name in ("gross", "discount", "amount")
    }
    return {
        "period": period,
        "currency": ctx.profile.currency,
        "provisional": ctx.clock.today < end,
        "generated_at": iso_utc(system_now()),
        "lines": lines,
        "totals": totals,
    }
