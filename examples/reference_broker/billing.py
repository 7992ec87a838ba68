"""The broker's invoices to its customers, one per calendar month, by the vendor's rules (docs/rules.md).

Every line has what the customer pays (``amount``, at the tenant's price list) and what the broker expects the
vendor to bill it for the same line (``vendor_cost``, at the vendor's list price, less the KORM approval discount
or the KSS MSP volume tier), so the broker can reconcile its books with the vendor's statement and bill.

KORM SS (per subscription, from its dated local history; a day counts at the value in force, the stop day is not
counted, on a day with several changes the last one counts):
- PAYG (KORM-PAYG-2/3): units = licence-days per SKU in the month; amount = licence-days x monthly price / days
  in the month. A plan switch gives one line per SKU.
- Yearly (KORM-YEAR-3/4): the year's fee (count x yearly price) in the month of activation and of each
  anniversary while not stopped; an increase adds the added licences x yearly price x days left in the current
  year / days in that year.
- Legacy (KORM-LEG-1/2): free until the 1st of the month after activation, then each month at its maximum count;
  PAYG from the migration day (KORM-MIG-1).
- The approval discount (KORM-APPR-1) lowers only ``vendor_cost``: the customer pays list.

KSS 3.0 (KSS-BILL-0): a billing period (calendar month or 30 days from the first paid day, KSS-PERIOD-1) is
charged when the subscription was in a paid state (running, out of trial, not paused) on at least one of its days,
for the maximum count in force on those days (KSS-QTY-2/3), at the price of the product of its last paid day;
reseller/msp subscriptions are free in their creation month (KSS-FREE-1); a 30-day period is on the invoice of
the month it starts in; ``vendor_cost`` less the MSP tier from the month's licences per product (KSS-MSP-1).

Money is Decimal, rounded half-up to cents once per line.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

UTC = dt.UTC
CENT = Decimal("0.01")
PAYG, YEARLY, LEGACY, KSS = "payg", "yearly", "legacy", "kss"
NOT_STARTED, STARTED, PAUSED, SOFT, HARD = "NotStarted", "Started", "Paused", "SoftCancelled", "HardCancelled"
CALENDAR_MONTH, THIRTY_DAYS, PERIOD_DAYS = "calendar_month", "30_days", 30
FREE_FIRST_MONTH = ("reseller", "msp")
_TINY = dt.timedelta(microseconds=1)
_FOREVER = dt.datetime.max.replace(tzinfo=UTC)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def month_bounds(period: str) -> tuple[dt.date, dt.date]:
    year, month = (int(x) for x in period.split("-"))
    start = dt.date(year, month, 1)
    return start, next_month(start)


def next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def period_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Prices:
    """The vendor's list prices and the tenant's customer prices (missing keys = list price)."""

    korm_list: dict[str, Decimal]  # SKU -> per licence per month (PAYG, legacy) or per year (Yearly)
    kss_list: dict[str, Decimal]  # product -> per licence per billing period
    customer: dict[str, Decimal]  # SKU or product -> the tenant's price
    msp_tiers: tuple[tuple[int, Decimal], ...] = ()  # (from licences, percent), ascending

    def korm(self, sku: str) -> tuple[Decimal, Decimal]:
        """(customer price, list price) of a SKU."""
        listed = self.korm_list[sku]
        return self.customer.get(sku, listed), listed

    def kss(self, product: str) -> tuple[Decimal, Decimal]:
        listed = self.kss_list[product]
        return self.customer.get(product, listed), listed

    def msp_percent(self, licences: int) -> Decimal:
        percent = Decimal("0")
        for low, pct in self.msp_tiers:
            if licences >= low:
                percent = pct
        return percent


@dataclass
class Line:
    period: str
    customer: str
    ref: str
    service: str
    kind: str  # licence_days | yearly_fee | yearly_increase | legacy_month | kss_period
    plan: str  # SKU or KSS product
    units: int
    amount: Decimal
    vendor_cost: Decimal
    start: dt.date
    end: dt.date  # exclusive
    days: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "customer": self.customer,
            "ref": self.ref,
            "service": self.service,
            "kind": self.kind,
            "plan": self.plan,
            "units": self.units,
            "amount": f"{self.amount:.2f}",
            "vendor_cost": f"{self.vendor_cost:.2f}",
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "days": self.days,
            **self.details,
        }


# ======================================================================================== KORM SS


@dataclass(frozen=True)
class KormChange:
    effective: dt.date
    kind: str  # order | legacy | quantity | switch | stop | reactivate | migrate
    model: str
    sku: str
    quantity: int  # 0 once stopped


@dataclass(frozen=True)
class KormSub:
    ref: str
    customer: str
    activation_date: dt.date
    discount_percent: Decimal
    changes: tuple[KormChange, ...]


@dataclass(frozen=True)
class Segment:
    start: dt.date
    end: dt.date
    model: str
    sku: str
    quantity: int


def _dated(sub: KormSub, defects: frozenset[str]) -> list[tuple[dt.date, KormChange]]:
    """Each change with the day the broker bills it from."""
    out, previous = [], None
    for change in sub.changes:
        day = change.effective
        if change.kind == "stop" and "stop_day_billed" in defects:
            day += dt.timedelta(days=1)  # defect: the stop day is billed too
        if (
            "payg_reduction_whole_month" in defects
            and change.kind == "quantity"
            and change.model == PAYG
            and previous is not None
            and change.quantity < previous
        ):
            day = max(day.replace(day=1), sub.activation_date)  # defect: "the new count applies to the month"
        out.append((day, change))
        if change.quantity:
            previous = change.quantity
    return out


def _by_day(sub: KormSub, defects: frozenset[str]) -> dict[dt.date, KormChange]:
    by_day: dict[dt.date, KormChange] = {}
    for day, change in _dated(sub, defects):
        by_day[day] = change  # the last change of a day wins
    return dict(sorted(by_day.items()))


def korm_segments(sub: KormSub, horizon: dt.date, defects: frozenset[str]) -> list[Segment]:
    by_day = _by_day(sub, defects)
    days = list(by_day)
    out = []
    for i, day in enumerate(days):
        change = by_day[day]
        end = days[i + 1] if i + 1 < len(days) else horizon
        if change.quantity > 0 and end > day:
            out.append(Segment(day, end, change.model, change.sku, change.quantity))
    return out


def _clip(seg: Segment, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date] | None:
    lo, hi = max(seg.start, start), min(seg.end, end)
    return (lo, hi) if hi > lo else None


def _korm_line(
    sub: KormSub,
    prices: Prices,
    defects: frozenset[str],
    period: str,
    kind: str,
    sku: str,
    units: int,
    customer_gross: Decimal,
    list_gross: Decimal,
    start: dt.date,
    end: dt.date,
    days: int | None,
) -> Line:
    amount = money(customer_gross)
    gross = money(list_gross)
    vendor_cost = gross - money(gross * sub.discount_percent / 100)  # the approval discount is the broker's
    if "approval_discount_to_customer" in defects:
        amount -= money(amount * sub.discount_percent / 100)  # defect: handed on to the customer
    return Line(period, sub.customer, sub.ref, "korm", kind, sku, units, amount, vendor_cost, start, end, days)


def korm_lines(sub: KormSub, period: str, prices: Prices, defects: frozenset[str]) -> list[Line]:
    start, end = month_bounds(period)
    if sub.activation_date >= end:
        return []
    segs = korm_segments(sub, end, defects)
    lines: list[Line] = []
    dim = (end - start).days
    # PAYG: licence-days per SKU.
    per_sku: dict[str, list[tuple[dt.date, dt.date, int]]] = defaultdict(list)
    for seg in segs:
        if seg.model == PAYG and (span := _clip(seg, start, end)):
            per_sku[seg.sku].append((span[0], span[1], seg.quantity))
    for sku, spans in per_sku.items():
        ours, listed = prices.korm(sku)
        licence_days = sum((hi - lo).days * qty for lo, hi, qty in spans)
        lines.append(
            _korm_line(
                sub,
                prices,
                defects,
                period,
                "licence_days",
                sku,
                licence_days,
                Decimal(licence_days) * ours / dim,
                Decimal(licence_days) * listed / dim,
                min(s[0] for s in spans),
                max(s[1] for s in spans),
                sum((hi - lo).days for lo, hi, _ in spans),
            )
        )
    # Legacy: free until the 1st of the next month, then the month's maximum count.
    act = sub.activation_date
    free_until = next_month(act)
    legacy = [(span, seg) for seg in segs if seg.model == LEGACY and (span := _clip(seg, max(start, free_until), end))]
    if legacy:
        top = max(seg.quantity for _, seg in legacy)
        sku = legacy[-1][1].sku
        ours, listed = prices.korm(sku)
        lines.append(
            _korm_line(
                sub,
                prices,
                defects,
                period,
                "legacy_month",
                sku,
                top,
                ours * top,
                listed * top,
                min(s[0] for s, _ in legacy),
                max(s[1] for s, _ in legacy),
                sum((hi - lo).days for (lo, hi), _ in legacy),
            )
        )
    # Yearly: the fee on activation and each anniversary while running; increases pro rata.
    yearly = [seg for seg in segs if seg.model == YEARLY]
    if yearly:
        sku = yearly[0].sku
        ours, listed = prices.korm(sku)
        years = 0
        while (anniversary := add_years(act, years)) < end:
            if anniversary >= start:
                quantity = next((s.quantity for s in yearly if s.start <= anniversary < s.end), None)
                if quantity:
                    next_ann = add_years(act, years + 1)
                    lines.append(
                        _korm_line(
                            sub,
                            prices,
                            defects,
                            period,
                            "yearly_fee",
                            sku,
                            quantity,
                            ours * quantity,
                            listed * quantity,
                            anniversary,
                            next_ann,
                            (next_ann - anniversary).days,
                        )
                    )
            years += 1
        previous = None
        for day, change in _by_day(sub, defects).items():
            if change.kind == "stop":
                break
            if previous is not None and change.quantity > previous and start <= day < end:
                k = 0
                while add_years(act, k + 1) <= day:
                    k += 1
                year_start, year_end = add_years(act, k), add_years(act, k + 1)
                if day != year_start:  # on an anniversary the fee already covers it
                    added, left, year_days = (
                        change.quantity - previous,
                        (year_end - day).days,
                        (year_end - year_start).days,
                    )
                    if "yearly_increase_full_year" in defects:
                        left = year_days  # defect: a full year for the added licences
                    lines.append(
                        _korm_line(
                            sub,
                            prices,
                            defects,
                            period,
                            "yearly_increase",
                            sku,
                            added,
                            ours * added * left / year_days,
                            listed * added * left / year_days,
                            day,
                            year_end,
                            left,
                        )
                    )
            previous = change.quantity
    return lines


# ======================================================================================== KSS 3.0


@dataclass(frozen=True)
class Snapshot:
    """The state of a KSS subscription from ``effective`` on, as the broker recorded it."""

    effective: dt.datetime
    status: str
    count: int
    product: str
    start: dt.datetime
    end: dt.datetime | None
    trial_end: dt.datetime | None
    paused_at: dt.datetime | None
    pause_until: dt.datetime | None

    def to_state(self) -> dict[str, Any]:
        def iso(value: dt.datetime | None) -> str | None:
            return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")

        return {
            "status": self.status,
            "count": self.count,
            "product": self.product,
            "start": iso(self.start),
            "end": iso(self.end),
            "trial_end": iso(self.trial_end),
            "paused_at": iso(self.paused_at),
            "pause_until": iso(self.pause_until),
        }

    @classmethod
    def from_state(cls, effective: dt.datetime, state: dict[str, Any]) -> Snapshot:
        def moment(value: str | None) -> dt.datetime | None:
            return None if value is None else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))

        start = moment(state["start"])
        assert start is not None
        return cls(
            effective,
            state["status"],
            int(state["count"]),
            state["product"],
            start,
            moment(state["end"]),
            moment(state["trial_end"]),
            moment(state["paused_at"]),
            moment(state["pause_until"]),
        )


@dataclass(frozen=True)
class KssSub:
    ref: str
    customer: str
    created_at: dt.datetime  # the first activation: KSS-FREE-1 counts the calendar month of it
    snapshots: tuple[Snapshot, ...]


@dataclass(frozen=True)
class Span:
    start: dt.datetime
    end: dt.datetime
    count: int
    product: str


@dataclass(frozen=True)
class DaySpan:
    first: dt.date
    last: dt.date  # inclusive
    count: int
    product: str


@dataclass(frozen=True)
class PeriodCharge:
    start: dt.date
    end: dt.date  # exclusive
    paid_days: int
    count: int
    product: str


def status_at(snaps: Sequence[Snapshot], moment: dt.datetime) -> str | None:
    """The status the broker expects the vendor to show at ``moment`` (start, pause end and end come by time)."""
    known = [s for s in snaps if s.effective <= moment] or list(snaps[:1])
    if not known:
        return None
    snap = known[-1]
    status = snap.status
    if status == NOT_STARTED and moment >= snap.start:
        status = STARTED
    if status == PAUSED and snap.pause_until is not None and moment >= snap.pause_until:
        status = STARTED
    if status == STARTED and snap.end is not None and moment >= snap.end:
        status = SOFT
    return status


def paid_spans(snaps: Sequence[Snapshot], horizon: dt.datetime, defects: frozenset[str]) -> list[Span]:
    """When the subscription was in a paid state: running, out of trial, not paused (KSS-BILL-0)."""
    out = []
    for i, snap in enumerate(snaps):
        lo = max(snap.effective, snap.start)
        hi = min(snaps[i + 1].effective if i + 1 < len(snaps) else horizon, horizon)
        if snap.end is not None:
            hi = min(hi, snap.end)
        if snap.trial_end is not None and "kss_trial_days_charged" not in defects:
            lo = max(lo, snap.trial_end)
        if hi <= lo:
            continue
        pieces = [(lo, hi)]
        if snap.paused_at is not None:
            cut_lo, cut_hi = snap.paused_at, snap.pause_until or _FOREVER
            pieces = [
                (a, b)
                for p_lo, p_hi in pieces
                for a, b in ((p_lo, min(p_hi, cut_lo)), (max(p_lo, cut_hi), p_hi))
                if b > a
            ]
        out += [Span(a, b, snap.count, snap.product) for a, b in pieces]
    return out


def paid_days(spans: Iterable[Span], zone: ZoneInfo, free_before: dt.date | None) -> list[DaySpan]:
    """A calendar day (in the tenant's zone) is paid when any moment of it is."""
    out = []
    for span in spans:
        first = span.start.astimezone(zone).date()
        last = (span.end - _TINY).astimezone(zone).date()
        if free_before is not None:
            first = max(first, free_before)
        if first <= last:
            out.append(DaySpan(first, last, span.count, span.product))
    return out


def charge(days: Sequence[DaySpan], start: dt.date, end: dt.date, defects: frozenset[str]) -> PeriodCharge | None:
    paid: set[dt.date] = set()
    top, last_day, product, last_count = 0, None, None, 0
    for d in days:
        lo, hi = max(d.first, start), min(d.last, end - dt.timedelta(days=1))
        if lo > hi:
            continue
        paid.update(lo + dt.timedelta(days=k) for k in range((hi - lo).days + 1))
        top = max(top, d.count)
        if last_day is None or hi >= last_day:
            last_day, product, last_count = hi, d.product, d.count
    if not paid or product is None:
        return None
    if "kss_reduction_current_period" in defects:
        top = last_count  # defect: the count on the period's last day, so a reduction costs at once
    return PeriodCharge(start, end, len(paid), top, product)


def periods_starting_in(
    kind: str, start: dt.date, end: dt.date, first_paid: dt.date | None
) -> list[tuple[dt.date, dt.date]]:
    if kind != THIRTY_DAYS:
        return [(start, end)]
    if first_paid is None:
        return []
    k = max(0, -(-(start - first_paid).days // PERIOD_DAYS))
    out = []
    while (p := first_paid + dt.timedelta(days=PERIOD_DAYS * k)) < end:
        out.append((p, p + dt.timedelta(days=PERIOD_DAYS)))
        k += 1
    return out


def kss_charges(
    sub: KssSub, period: str, *, programme: str, billing_period: str, zone: ZoneInfo, defects: frozenset[str]
) -> list[PeriodCharge]:
    start, end = month_bounds(period)
    horizon = local_midnight(end + dt.timedelta(days=PERIOD_DAYS if billing_period == THIRTY_DAYS else 0), zone)
    free_before = None
    if programme in FREE_FIRST_MONTH and "kss_free_month_charged" not in defects:
        free_before = next_month(sub.created_at.astimezone(zone).date())
    days = paid_days(paid_spans(sub.snapshots, horizon, defects), zone, free_before)
    first_paid = min((d.first for d in days), default=None)
    return [
        c
        for lo, hi in periods_starting_in(billing_period, start, end, first_paid)
        if (c := charge(days, lo, hi, defects)) is not None
    ]


def kss_lines(
    subs: Iterable[KssSub],
    period: str,
    prices: Prices,
    *,
    programme: str,
    billing_period: str,
    zone: ZoneInfo,
    defects: frozenset[str],
) -> list[Line]:
    charged = [
        (sub, c)
        for sub in subs
        for c in kss_charges(
            sub, period, programme=programme, billing_period=billing_period, zone=zone, defects=defects
        )
    ]
    volume: dict[str, int] = defaultdict(int)  # KSS-MSP-1: licences per product on this month's bill
    for _, c in charged:
        volume[c.product] += c.count
    lines = []
    for sub, c in charged:
        ours, listed = prices.kss(c.product)
        percent = Decimal("0")
        if programme == "msp" and "kss_msp_tier_ignored" not in defects:
            percent = prices.msp_percent(volume[c.product])
        gross = money(listed * c.count)
        lines.append(
            Line(
                period,
                sub.customer,
                sub.ref,
                "kss",
                "kss_period",
                c.product,
                c.count,
                money(ours * c.count),
                gross - money(gross * percent / 100),
                c.start,
                c.end,
                c.paid_days,
                {"msp_discount_percent": f"{percent:.2f}"} if programme == "msp" else {},
            )
        )
    return lines
