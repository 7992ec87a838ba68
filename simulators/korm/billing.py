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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.catalog import Profile
from ksimkit.simulators.core.clock import iso_utc, system_now
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.money import CENT, money, month_bounds
from ksimkit.simulators.korm.plans import LEGACY, PAYG, YEARLY, add_years, legacy_free_until
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


def _line(
    row: Any,
    profile: Profile,
    *,
    sku: str,
    kind: str,
    units: int,
    days: int | None,
    unit_price: Decimal,
    gross: Decimal,
    start: dt.date,
    end: dt.date,
    model: str,
) -> dict[str, Any]:
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
        if kind in DERIVED_PRICES
        else f"{unit_price.quantize(CENT, rounding=ROUND_HALF_UP):f}",
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
        lines.append(
            _line(
                row,
                profile,
                sku=sku_id,
                kind="licence_days",
                units=licence_days,
                days=days,
                unit_price=price / dim,
                gross=Decimal(licence_days) * price / dim,
                start=min(s[0] for s in spans),
                end=max(s[1] for s in spans),
                model=PAYG,
            )
        )
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
        row,
        profile,
        sku=row.sku,
        kind="yearly_fee",
        units=quantity,
        days=(next_ann - anniversary).days,
        unit_price=price,
        gross=price * quantity,
        start=anniversary,
        end=next_ann,
        model=YEARLY,
    )


def _yearly_lines(
    row: Any, segs: list[Segment], profile: Profile, entries: list[Any], start: dt.date, end: dt.date
) -> list[dict[str, Any]]:
    lines = []
    activation = row.activation_date
    # The year's fee on activation and on each anniversary while not stopped (KORM-YEAR-4).
    years = 0
    while (anniversary := add_years(activation, years)) < end:
        if anniversary >= start and (fee := yearly_fee(row, segs, profile, years)) is not None:
            lines.append(fee)
        years += 1
    return lines + _yearly_increases(row, profile, entries, start, end)


def _yearly_increases(
    row: Any, profile: Profile, entries: list[Any], start: dt.date, end: dt.date
) -> list[dict[str, Any]]:
    """Increases, pro rata for the rest of the current year (KORM-YEAR-3); none on an anniversary, the fee covers it."""
    lines = []
    price = profile.skus[row.sku].price
    activation = row.activation_date
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
                added, remaining, year_days = (
                    entry.quantity - previous,
                    (year_end - day).days,
                    (year_end - year_start).days,
                )
                lines.append(
                    _line(
                        row,
                        profile,
                        sku=row.sku,
                        kind="yearly_increase",
                        units=added,
                        days=remaining,
                        unit_price=price * remaining / year_days,
                        gross=price * added * remaining / year_days,
                        start=day,
                        end=year_end,
                        model=YEARLY,
                    )
                )
        previous = entry.quantity
    return lines


def _legacy_lines(
    row: Any, segs: list[Segment], profile: Profile, start: dt.date, end: dt.date
) -> list[dict[str, Any]]:
    free_until = legacy_free_until(row.activation_date)  # KORM-LEG-1
    spans = [(span, seg) for seg in segs if seg.model == LEGACY and (span := _clip(seg, max(start, free_until), end))]
    if not spans:
        return []
    top = max(seg.quantity for _, seg in spans)  # the month's maximum count (KORM-LEG-2)
    price = profile.skus[row.sku].price
    return [
        _line(
            row,
            profile,
            sku=row.sku,
            kind="legacy_month",
            units=top,
            days=sum((hi - lo).days for (lo, hi), _ in spans),
            unit_price=price,
            gross=price * top,
            start=min(s[0][0] for s in spans),
            end=max(s[0][1] for s in spans),
            model=LEGACY,
        )
    ]


@dataclass(frozen=True)
class Book:
    """What statements read: the partner's subscriptions activated before ``end`` (not stopped on their activation
    day) and their history dated before it. A clock move that closes many months loads it once for all of them
    (the partner's data cannot change while its clock moves); each statement keeps what is dated before its end.

    Only what billing reads is loaded. A subscription that never changed has one history row, its order, which its
    own row repeats (the order writes both; every later change writes a history row, see ``rules``): its history
    is not read, the order is rebuilt from the row. A book for one ``month`` leaves out what has no line in it:
    subscriptions stopped before it, and Yearly ones without a change whose anniversary month it is not."""

    end: dt.date
    rows: Sequence[Any]
    entries: dict[str, list[Any]]  # only subscriptions that changed since their order
    month: dt.date | None = None


_ROW_COLUMNS = (
    subscriptions.c.id,
    subscriptions.c.customer_id,
    subscriptions.c.sku,
    subscriptions.c.product_id,
    subscriptions.c.billing_model,
    subscriptions.c.activation_date,
    subscriptions.c.stopped_on,
    subscriptions.c.discount_percent,
    subscriptions.c.quantity,
)
_ENTRY_COLUMNS = (
    history.c.subscription_id,
    history.c.effective_date,
    history.c.change,
    history.c.billing_model,
    history.c.sku,
    history.c.quantity,
)
# Positions in the rows of a ``Book`` (result rows read by index: much faster than by attribute).
_ID, _CUSTOMER, _SKU, _PRODUCT, _MODEL, _ACTIVATION, _STOPPED, _DISCOUNT, _QTY = range(len(_ROW_COLUMNS))
_DAY, _CHANGE, _E_MODEL, _E_SKU, _QUANTITY = range(1, len(_ENTRY_COLUMNS))
_ORDERS = ("order", "legacy_order")


def load_book(conn: Connection, partner_id: str, end: dt.date, month: dt.date | None = None) -> Book:
    """The book for every month before ``end``, or (``month``: its first day) for that month only."""
    changed = sa.select(history.c.subscription_id).where(
        history.c.partner_id == partner_id, history.c.change.not_in(_ORDERS)
    )
    query = (
        sa.select(*_ROW_COLUMNS)
        .where(subscriptions.c.partner_id == partner_id, subscriptions.c.activation_date < end)
        .where(
            sa.or_(subscriptions.c.stopped_on.is_(None), subscriptions.c.stopped_on > subscriptions.c.activation_date)
        )
    )
    if month is not None:
        query = query.where(
            sa.or_(subscriptions.c.stopped_on.is_(None), subscriptions.c.stopped_on > month),
            sa.or_(
                subscriptions.c.billing_model != YEARLY,
                sa.extract("month", subscriptions.c.activation_date) == month.month,  # the anniversary's month
                subscriptions.c.id.in_(changed),
            ),
        )
    # .all(): one fetch for the lot (iterating a result fetches row by row)
    rows = conn.execute(query.order_by(subscriptions.c.created_at, subscriptions.c.id)).all()
    entries_by_sub: dict[str, list[Any]] = defaultdict(list)
    if rows:
        for entry in conn.execute(
            sa.select(*_ENTRY_COLUMNS)
            .where(history.c.partner_id == partner_id, history.c.effective_date < end)
            .where(history.c.subscription_id.in_(changed))
            .order_by(history.c.id)
        ).all():
            entries_by_sub[entry[0]].append(entry)
    return Book(end, rows, dict(entries_by_sub), month)


class _Lines:
    """The statement's lines and running totals, with the figures that repeat across lines formatted once."""

    def __init__(self, profile: Profile, dim: int) -> None:
        self.profile, self.dim = profile, dim
        self.lines: list[dict[str, Any]] = []
        self.gross = self.discount = self.amount = Decimal("0")
        self._daily: dict[str, tuple[Decimal, str]] = {}  # PAYG sku -> (monthly price, daily unit price as shown)
        self._price: dict[str, tuple[Decimal, str]] = {}  # sku -> (price, price as shown)
        self._percent: dict[Decimal, str] = {}

    def daily(self, sku_id: str) -> tuple[Decimal, str]:
        found = self._daily.get(sku_id)
        if found is None:
            price = self.profile.skus[sku_id].price
            shown = f"{(price / self.dim).quantize(Decimal('0.000001'), rounding=ROUND_HALF_UP):f}"
            found = self._daily[sku_id] = (price, shown)
        return found

    def price(self, sku_id: str) -> tuple[Decimal, str]:
        found = self._price.get(sku_id)
        if found is None:
            price = self.profile.skus[sku_id].price
            found = self._price[sku_id] = (price, f"{price.quantize(CENT, rounding=ROUND_HALF_UP):f}")
        return found

    def add(
        self,
        row: Any,
        sku: str,
        kind: str,
        units: int,
        days: int | None,
        unit_price: str,
        gross: Decimal,
        start: dt.date,
        end: dt.date,
        model: str,
    ) -> None:
        """One line, as ``_line`` makes it (``unit_price`` already shown)."""
        gross = money(gross)
        percent = row[_DISCOUNT]
        shown = self._percent.get(percent)
        if shown is None:
            shown = self._percent[percent] = f"{percent:.2f}"
        gross_text = f"{gross:.2f}"
        if percent:
            discount = money(gross * percent / 100)
            amount = gross - discount
            discount_text, amount_text = f"{discount:.2f}", f"{amount:.2f}"
            self.discount += discount
        else:  # no discount: 0.00, and the amount is the gross
            amount, discount_text, amount_text = gross, "0.00", gross_text
        self.gross += gross
        self.amount += amount
        self.lines.append(
            {
                "subscription_id": row[_ID],
                "customer_id": row[_CUSTOMER],
                "sku": sku,
                "product_id": row[_PRODUCT],
                "billing_model": model,
                "kind": kind,
                "units": units,
                "days": days,
                "unit_price": unit_price,
                "from": start.isoformat(),
                "to": end.isoformat(),
                "gross": gross_text,
                "discount_percent": shown,
                "discount": discount_text,
                "amount": amount_text,
            }
        )

    def add_line(self, line: dict[str, Any]) -> None:
        """A line made by ``_line`` (the rare kinds)."""
        self.lines.append(line)
        self.gross += Decimal(line["gross"])
        self.discount += Decimal(line["discount"])
        self.amount += Decimal(line["amount"])


def _lines_of(out: _Lines, row: Any, entries: list[Any], start: dt.date, end: dt.date) -> None:
    """Every line of one subscription in the month [start, end): ``segments``, then ``_legacy_lines``,
    ``_payg_lines`` and ``_yearly_lines`` in one pass, with the same figures and in the same order."""
    stopped = row[_STOPPED]
    segs: list[tuple[dt.date, dt.date, str, str, int]] = []  # segments(): (start, end, model, sku, quantity)
    if len(entries) == 1:  # most subscriptions: the order, nothing since
        entry = entries[0]
        seg_end = end if stopped is None or stopped >= end else stopped
        if entry[_CHANGE] != "stop" and seg_end > entry[_DAY]:
            segs.append((entry[_DAY], seg_end, entry[_E_MODEL], entry[_E_SKU], entry[_QUANTITY]))
    else:
        by_day: dict[dt.date, Any] = {}
        for entry in entries:
            by_day[entry[_DAY]] = entry  # the last change of a day wins
        days = sorted(by_day)
        last = len(days) - 1
        for i, day in enumerate(days):
            entry = by_day[day]
            if entry[_CHANGE] == "stop":
                break
            seg_end = days[i + 1] if i < last else end
            if stopped is not None and stopped < seg_end:
                seg_end = stopped
            if seg_end > day:
                segs.append((day, seg_end, entry[_E_MODEL], entry[_E_SKU], entry[_QUANTITY]))
    models = {seg[2] for seg in segs} if len(segs) > 1 else {segs[0][2]} if segs else set()
    # Legacy (KORM-LEG-1/2): free until the first day of the next month, then the month's maximum count.
    if LEGACY in models:
        lo_bound = max(start, legacy_free_until(row[_ACTIVATION]))
        spans = [(max(s, lo_bound), min(e, end), q) for s, e, model, _, q in segs if model == LEGACY]
        spans = [span for span in spans if span[1] > span[0]]
        if spans:
            top = max(q for _, _, q in spans)
            price, shown = out.price(row[_SKU])
            out.add(
                row,
                row[_SKU],
                "legacy_month",
                top,
                sum((hi - lo).days for lo, hi, _ in spans),
                shown,
                price * top,
                min(s[0] for s in spans),
                max(s[1] for s in spans),
                LEGACY,
            )
    # PAYG (KORM-PAYG-2/3): licence-days per SKU, in the order the SKUs first appear.
    if PAYG in models:
        per_sku: dict[str, list[Any]] = {}  # sku -> [licence-days, days, from, to]
        for s, e, model, sku_id, q in segs:
            if model != PAYG:
                continue
            lo, hi = (s if s > start else start), (e if e < end else end)
            if hi <= lo:
                continue
            n = (hi - lo).days
            acc = per_sku.get(sku_id)
            if acc is None:
                per_sku[sku_id] = [n * q, n, lo, hi]
            else:
                acc[0] += n * q
                acc[1] += n
                acc[2] = min(acc[2], lo)
                acc[3] = max(acc[3], hi)
        for sku_id, (licence_days, n, lo, hi) in per_sku.items():
            price, shown = out.daily(sku_id)
            out.add(
                row,
                sku_id,
                "licence_days",
                licence_days,
                n,
                shown,
                Decimal(licence_days) * price / out.dim,
                lo,
                hi,
                PAYG,
            )
    if row[_MODEL] == YEARLY:
        # The year's fee on activation and on each anniversary while not stopped (KORM-YEAR-4), at the count in
        # force that day (yearly_fee); the anniversaries before the month are skipped without being computed.
        act = row[_ACTIVATION]
        years = max(0, start.year - act.year - 1)
        while (anniversary := add_years(act, years)) < end:
            if anniversary >= start:
                quantity = next((q for s, e, _, _, q in segs if s <= anniversary < e), None)
                if quantity:
                    price, shown = out.price(row[_SKU])
                    next_ann = add_years(act, years + 1)
                    out.add(
                        row,
                        row[_SKU],
                        "yearly_fee",
                        quantity,
                        (next_ann - anniversary).days,
                        shown,
                        price * quantity,
                        anniversary,
                        next_ann,
                        YEARLY,
                    )
            years += 1
        if len(entries) > 1:
            for line in _yearly_increases(row, out.profile, entries, start, end):
                out.add_line(line)


def statement(conn: Connection, ctx: CallContext, period: str, *, book: Book | None = None) -> dict[str, Any]:
    start, end = month_bounds(period)
    if book is None or book.end < end or book.month not in (None, start):
        book = load_book(conn, ctx.partner_id, end, month=start)
    out = _Lines(ctx.profile, (end - start).days)
    entries_of = book.entries
    trim = book.end > end
    for row in book.rows:
        stopped = row[_STOPPED]
        if row[_ACTIVATION] >= end or (stopped is not None and stopped <= start):
            continue  # not yet active, or stopped before the month: nothing in force in it, no line
        entries = entries_of.get(row[_ID])
        if entries is None:  # never changed: its order, as the row repeats it
            entries = [(row[_ID], row[_ACTIVATION], "order", row[_MODEL], row[_SKU], row[_QTY])]
        elif trim:
            entries = [e for e in entries if e[_DAY] < end]
        _lines_of(out, row, entries, start, end)
    return {
        "period": period,
        "currency": ctx.profile.currency,
        "provisional": ctx.clock.today < end,
        "generated_at": iso_utc(system_now()),
        "lines": out.lines,
        "totals": {"gross": f"{out.gross:.2f}", "discount": f"{out.discount:.2f}", "amount": f"{out.amount:.2f}"},
    }
