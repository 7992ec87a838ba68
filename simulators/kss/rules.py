"""KSS 3.0 rules: the subscription state machine and every rule check (no SOAP here).

``process`` applies one request container: a seen TransactionId answers 6 and a repeated UnitId 708, both
changing nothing; otherwise the TransactionId is stored and each item is applied on its own SAVEPOINT, so a refused
unit leaves no trace and the others still apply (partial success). Items are applied in document order, except that
one subscriber's items are put in an order of kinds (``application_order``, docs/kss-wire.md "The order of items");
the answer lists them in document order. A unit is refused by
raising ``KssError`` with a code of docs/kss-wire.md (the public ones) or of ours (7xx, contracts/kss-ext.xsd).

Every change writes a snapshot row to ``kss_history`` (billing's input) and an audit entry (KSS-AUDIT-1).
Times come from the partner's clock only (SIM-CLOCK-1); its due events (section "time" below) apply what
falls due when it moves.

Choices where the spec is silent (what a vendor would do):
- An accepted change is never undone: a cancel or pause dated before the subscription's last change (or a
  reactivation started before it) takes effect at that change. So partner snapshots are monotonic in time.
- A cancel never extends the term: a SoftCancel/HardCancel EndTime after a fixed EndTime keeps the earlier one.
- HardCancel accepts an EndTime before the StartTime (a subscription cancelled before it started is simply
  never paid); SoftCancel refuses it with 602 as the spec says.
- Pause: a PauseTime beyond now + the start tolerance is refused with 103 (pauses are not scheduled); one within
  the tolerance starts now; one more than 14 days back is refused with 304, as for cancels; before StartTime 602.
  A ResumeTime not after both PauseTime and now (a term already over) is refused with 706.
- Renew that reactivates a soft-cancelled subscription with a fixed EndTime needs one after the current
  EndTime (else 3) and after now (else 602).
- A trial is never granted on a reactivation (Activate after HardCancel): TrialDays > 0 there answers 702. A
  trial still running when a subscription is hard-cancelled and brought back runs its course.
- Activate of a hard-cancelled SubscriberId keeps its customer: a different ext:CustomerId answers 602.
- ChangeLicenseCount/ChangeProduct work on Started, Paused and SoftCancelled-but-not-yet-ended subscriptions
  (within the term, KSS-QTY-1); NotStarted answers 2, an ended one 105. ChangeProduct checks in the order
  9, 705, 704, 707 (same product), 703 (prepaid).
- Error 601 is not used: a product outside the partner's programme has its own code, 705.
- A unit that fails for an unexpected reason is not caught here: the SOAP layer answers it (99 or a fault).
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import functools
import heapq
import itertools
import operator
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core import audit
from ksimkit.simulators.core.bulk import insert
from ksimkit.simulators.core.catalog import KssProduct
from ksimkit.simulators.core.clock import PartnerClock, iso_utc
from ksimkit.simulators.core.codes import issue_code
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.due import CLOSE, Due, Window
from ksimkit.simulators.core.errors import conflict, not_found, unprocessable
from ksimkit.simulators.core.partners import Partner, load_partner
from ksimkit.simulators.kss import billing
from ksimkit.simulators.kss.model import (
    Activate,
    ChangeLicenseCount,
    ChangeProduct,
    DownloadLink,
    GetDownloadLinks,
    GetInfo,
    HardCancel,
    Item,
    ItemError,
    ItemResult,
    Pause,
    Renew,
    RequestContainer,
    ResponseContainer,
    Resume,
    SoftCancel,
    SubscriptionInfo,
    TransactionError,
    UsageInfo,
    kind,
)
from ksimkit.simulators.kss.tables import code_pools, history, options, prepaid, subscriptions, transactions

UTC = dt.UTC
NOT_STARTED, STARTED, PAUSED, SOFT, HARD = "NotStarted", "Started", "Paused", "SoftCancelled", "HardCancelled"
EARLIEST = dt.datetime(2008, 1, 1, tzinfo=UTC)  # 602: no date before it
MIN_TERM = dt.timedelta(days=28)  # 101
CANCEL_WINDOW = dt.timedelta(days=14)  # 304
ACTIVATION_TYPES = ("Standard", "Secondary")
PLATFORMS = ("Windows", "macOS", "Android", "iOS")
SECTIONS = ("Subscription", "SubscriptionUsage")
VENDOR = "ksim-vendor"  # the actor of what the clock does
DOWNLOADS = "https://downloads.ksim.invalid"


class KssError(Exception):
    """A refused unit (or, from ``process``, a refused container) with its wire code."""

    def __init__(self, code: int, message: str, rule: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = f"{message} ({rule})" if rule else message
        self.rule = rule


@dataclass(frozen=True)
class Call:
    """What one unit needs besides its item."""

    conn: Connection
    ctx: CallContext
    tolerance: dt.timedelta

    @property
    def now(self) -> dt.datetime:
        return self.ctx.clock.now


# ---------------------------------------------------------------- the container

# The statements of every call, built once (building a statement per call costs about as much as running it).
_SEEN = sa.select(transactions.c.at).where(
    transactions.c.partner_id == sa.bindparam("p_id"), transactions.c.transaction_id == sa.bindparam("t_id")
)
_INSERT_TRANSACTION = sa.insert(transactions)
_ROW = sa.select(subscriptions).where(
    subscriptions.c.partner_id == sa.bindparam("p_id"), subscriptions.c.subscriber_id == sa.bindparam("s_id")
)
_PREPAID_HELD = sa.select(sa.func.coalesce(sa.func.sum(prepaid.c.licence_count), 0)).where(
    prepaid.c.partner_id == sa.bindparam("p_id"),
    prepaid.c.customer_id == sa.bindparam("c_id"),
    prepaid.c.product_id == sa.bindparam("product"),
    prepaid.c.expires_on > sa.bindparam("today"),
)
_LAST_CHANGE = sa.select(sa.func.max(history.c.effective)).where(
    history.c.partner_id == sa.bindparam("p_id"),
    history.c.subscriber_id == sa.bindparam("s_id"),
    history.c.source == "partner",
)
_INSERT_SNAPSHOT = sa.insert(history)
_POOL = sa.select(code_pools.c.remaining).where(code_pools.c.partner_id == sa.bindparam("p_id"))
_INSERT_SUBSCRIPTION = sa.insert(subscriptions)


def process(
    conn: Connection, ctx: CallContext, container: RequestContainer, *, start_tolerance_seconds: int = 600
) -> ResponseContainer:
    answer = ResponseContainer(timestamp=ctx.clock.now, transaction_id=container.transaction_id)
    seen = conn.execute(_SEEN, {"p_id": ctx.partner_id, "t_id": container.transaction_id}).first()
    if seen is not None:  # SIM-IDEM-1: the real service refuses a repeat; it does not replay the first answer
        answer.transaction_error = TransactionError(
            6, f"duplicated order: TransactionId {container.transaction_id!r} was received at {iso_utc(seen.at)}"
        )
        return answer
    units = [item.unit_id for item in container.items]
    if len(set(units)) != len(units):
        twice = sorted({u for u in units if units.count(u) > 1})
        answer.transaction_error = TransactionError(708, f"UnitId {twice[0]} appears more than once in the container")
        return answer
    conn.execute(
        _INSERT_TRANSACTION,
        {
            "partner_id": ctx.partner_id,
            "transaction_id": container.transaction_id,
            "at": ctx.clock.now,
            "units": len(units),
        },
    )
    call = Call(conn, ctx, dt.timedelta(seconds=start_tolerance_seconds))
    paired = {i.subscriber_id for i in container.items if isinstance(i, HardCancel)} & {
        i.subscriber_id for i in container.items if isinstance(i, Activate)
    }
    known = {sid for sid in paired if _row(call, sid) is not None}
    for step in application_order(container.items, known):
        if isinstance(step, _Contradiction):
            answer.errors.append(
                ItemError(kind(step.item), step.item.unit_id, step.item.subscriber_id, 602, step.message)
            )
        elif isinstance(step, _LicenceChange):
            if not _licence_change(call, step, answer):  # not one: cancel first, then the Activate brings it back
                for item in step.items:
                    _apply(call, item, answer)
        else:
            _apply(call, step, answer)
    position = {item.unit_id: i for i, item in enumerate(container.items)}  # answers in request order
    answer.results.sort(key=lambda r: position[r.unit_id])
    answer.errors.sort(key=lambda e: position[e.unit_id])
    return answer


def _apply(call: Call, item: Item, answer: ResponseContainer) -> None:
    try:
        with call.conn.begin_nested():  # a refused unit rolls back alone
            answer.results.append(HANDLERS[type(item)](call, item))
    except KssError as err:
        answer.errors.append(ItemError(kind(item), item.unit_id, item.subscriber_id, err.code, err.message))


# ---------------------------------------------------------------- the order of one subscriber's items
#
# A client that sets items as lists per kind (suds, most generated clients) sends them grouped by kind in the
# order its WSDL declares the kinds, which ksim cannot choose for it. So the items of one SubscriberId are applied
# in an order of their kinds, whatever their wire order (docs/kss-wire.md, "The order of items"): Activate first
# (nothing else can apply to a subscriber it creates, and it brings a hard-cancelled one back), then the other
# changes in wire order among themselves, then the reads, which see every change. A HardCancel and an Activate of
# a subscription that exists are the public clients' licence change, applied together in the Activate's place.
# Items of different subscribers keep their wire order. Pairs whose result would still depend on their order (one
# undoes the other) are refused with 602.

_PHASE: dict[type, int] = {Activate: 0, GetInfo: 2, GetDownloadLinks: 2}  # any other change: 1
# SoftCancel + HardCancel is not one: either way the subscription ends hard-cancelled (wire order decides the rest).
_CONTRADICTIONS: tuple[tuple[type, type], ...] = ((Pause, Resume), (SoftCancel, Renew))


@dataclass(frozen=True)
class _Contradiction:
    item: Item
    message: str


@dataclass(frozen=True)
class _LicenceChange:
    """A HardCancel and an Activate of one existing SubscriberId in one container, in either wire order."""

    cancel: HardCancel
    activate: Activate

    @property
    def items(self) -> tuple[Item, Item]:
        return self.cancel, self.activate


Step = Item | _Contradiction | _LicenceChange


def application_order(items: tuple[Item, ...], known: Collection[str] = ()) -> list[Step]:
    """The container's items as they are applied: each subscriber's items sorted by ``_PHASE`` into the places its
    items held on the wire, contradictory pairs refused, a HardCancel + Activate pair of a subscriber in ``known``
    (one that exists) as one licence change."""
    by_subscriber: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_subscriber.setdefault(item.subscriber_id, []).append(i)
    slots: list[Step | None] = list(items)
    for places in by_subscriber.values():
        if len(places) < 2:
            continue
        mine = sorted((items[i] for i in places), key=lambda it: _PHASE.get(type(it), 1))  # stable: wire order kept
        kinds = {type(it) for it in mine}
        clash = {k for pair in _CONTRADICTIONS if set(pair) <= kinds for k in pair}
        steps: list[Step] = []
        for it in mine:
            if type(it) in clash:
                names = " and ".join(sorted(k.__name__ for k in clash))
                steps.append(
                    _Contradiction(
                        it,
                        f"{names} of one SubscriberId in one container contradict each other "
                        f"(the result would depend on their order): send them in separate "
                        f"containers",
                    )
                )
            else:
                steps.append(it)
        cancels = [s for s in steps if isinstance(s, HardCancel)]
        activations = [s for s in steps if isinstance(s, Activate)]
        if len(cancels) == 1 and len(activations) == 1 and cancels[0].subscriber_id in known:
            pair = _LicenceChange(cancels[0], activations[0])
            steps = [pair if s is activations[0] else s for s in steps if s is not cancels[0]]
        for place, step in zip(places, steps, strict=False):
            slots[place] = step
        for place in places[len(steps) :]:  # a pair takes one place
            slots[place] = None
    return [s for s in slots if s is not None]


# ---------------------------------------------------------------- reading and checks


def _row(call: Call, subscriber_id: str) -> Any:
    return call.conn.execute(_ROW, {"p_id": call.ctx.partner_id, "s_id": subscriber_id}).first()


def _known(call: Call, subscriber_id: str) -> Any:
    """The partner's subscription; another partner's SubscriberId is as unknown as a made-up one (SIM-AUTH-1)."""
    row = _row(call, subscriber_id)
    if row is None:
        raise KssError(5, f"SubscriberId {subscriber_id!r} is unknown")
    return row


def _live(call: Call, subscriber_id: str) -> Any:
    row = _known(call, subscriber_id)
    if row.status == HARD:
        raise KssError(
            4, f"subscription {subscriber_id!r} is hard-cancelled; only Activate brings it back", "KSS-STOP-1"
        )
    return row


def _started(row: Any) -> None:
    if row.status == NOT_STARTED:
        raise KssError(2, f"subscription {row.subscriber_id!r} starts at {iso_utc(row.start_time)}; not yet activated")


def _within_term(call: Call, row: Any) -> None:
    _started(row)
    if row.status == SOFT and row.end_time is not None and row.end_time <= call.now:
        raise KssError(105, f"subscription {row.subscriber_id!r} ended at {iso_utc(row.end_time)} (soft-cancelled)")


def _product(call: Call, product_id: str) -> KssProduct:
    """KSS-PROD-1: the closed catalog (9), then the partner's programme (705), then MSP registration (704)."""
    product = call.ctx.profile.kss_products.get(product_id)
    partner = call.ctx.partner
    if product is None:
        raise KssError(9, f"unknown product {product_id!r}", "KSS-PROD-1")
    if partner.programme not in product.programmes:
        raise KssError(705, f"product {product_id} is not offered to the {partner.programme} programme", "KSS-PROD-1")
    if partner.programme == "msp" and not partner.msp_registered:
        raise KssError(704, "the partner is not registered for the MSP programme", "KSS-MSP-2")
    return product


def _no_prepaid(call: Call, customer_id: str, product_id: str) -> None:
    held = call.conn.execute(
        _PREPAID_HELD,
        {
            "p_id": call.ctx.partner_id,
            "c_id": customer_id,
            "product": product_id,
            "today": call.ctx.clock.today,
        },
    ).scalar_one()
    if held:
        raise KssError(
            703,
            f"customer {customer_id!r} still holds {held} active prepaid licence(s) of {product_id}",
            "KSS-PREPAID-1",
        )


def add_months(day: dt.date, months: int) -> dt.date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def trial_cap_days(ctx: CallContext, start: dt.datetime) -> int:
    """KSS-TRIAL-1: xsp 2 calendar months from the start date (1 March -> 61 days), reseller/msp 30 days."""
    cap = ctx.profile.trial_caps.get(ctx.partner.programme)
    if cap is None:
        return 0
    day = start.astimezone(ctx.clock.zone).date()
    return (add_months(day, cap.months) + dt.timedelta(days=cap.days) - day).days


def _trial_end(ctx: CallContext, start: dt.datetime, days: int) -> dt.datetime:
    """Local wall-clock days, so a trial ends at the same local time across a DST change."""
    local = start.astimezone(ctx.clock.zone)
    return (local.replace(tzinfo=None) + dt.timedelta(days=days)).replace(tzinfo=ctx.clock.zone).astimezone(UTC)


def _last_change(call: Call, subscriber_id: str) -> dt.datetime | None:
    return call.conn.execute(_LAST_CHANGE, {"p_id": call.ctx.partner_id, "s_id": subscriber_id}).scalar_one()


def _not_before_last_change(call: Call, subscriber_id: str, moment: dt.datetime) -> dt.datetime:
    """An accepted change is never undone: nothing takes effect before the last one."""
    last = _last_change(call, subscriber_id)
    return moment if last is None else max(moment, last)


def _not_too_old(call: Call, moment: dt.datetime, what: str) -> None:
    if moment < call.now - CANCEL_WINDOW:
        raise KssError(304, f"{what} {iso_utc(moment)} is more than 14 days in the past")


# ---------------------------------------------------------------- writing


def _snapshot(
    conn: Connection,
    partner_id: str,
    row: Any,
    *,
    event: str,
    effective: dt.datetime,
    recorded_at: dt.datetime,
    source: str,
) -> None:
    conn.execute(
        _INSERT_SNAPSHOT,
        {
            "partner_id": partner_id,
            "subscriber_id": row.subscriber_id,
            "effective": effective,
            "recorded_at": recorded_at,
            "source": source,
            "event": event,
            "status": row.status,
            "license_count": row.license_count,
            "product_id": row.product_id,
            "start_time": row.start_time,
            "end_time": row.end_time,
            "trial_end": row.trial_end,
            "paused_at": row.paused_at,
            "pause_until": row.pause_until,
        },
    )


def _change(call: Call, row: Any, event: str, effective: dt.datetime, **values: Any) -> Any:
    """Update the subscription, snapshot it in the history, audit it; return the new row."""
    where = (subscriptions.c.partner_id == call.ctx.partner_id, subscriptions.c.subscriber_id == row.subscriber_id)
    call.conn.execute(sa.update(subscriptions).where(*where).values(**values, updated_at=call.now))
    new = _row(call, row.subscriber_id)
    _snapshot(
        call.conn, call.ctx.partner_id, new, event=event, effective=effective, recorded_at=call.now, source="partner"
    )
    _audit(call, event, new, effective, {k: v for k, v in values.items() if k != "status_change_time"})
    return new


def _json(value: Any) -> Any:
    return iso_utc(value) if isinstance(value, dt.datetime) else value


def _audit(call: Call, action: str, row: Any, effective: dt.datetime, details: dict[str, Any]) -> None:
    audit.record(
        call.conn,
        call.ctx.partner_id,
        call.ctx.clock,
        actor=call.ctx.actor,
        service="kss",
        action=action,
        object_type="subscription",
        object_id=row.subscriber_id,
        details={"effective": iso_utc(effective), **{k: _json(v) for k, v in details.items()}},
    )


def _draw_code(call: Call) -> str:
    """A fresh code, unless the partner's pool is limited and empty (8)."""
    pool = call.conn.execute(_POOL, {"p_id": call.ctx.partner_id}).first()
    if pool is not None:
        if pool.remaining <= 0:
            raise KssError(8, "the activation-code pool of this provider is empty")
        call.conn.execute(
            sa.update(code_pools)
            .where(code_pools.c.partner_id == call.ctx.partner_id)
            .values(remaining=pool.remaining - 1)
        )
    return issue_code(call.conn, call.ctx.partner_id, "kss")


# ---------------------------------------------------------------- items


def _activation_checks(call: Call, item: Activate) -> None:
    """What an Activate must pass whatever the subscriber's state: dates (602, 103, 101), values (602), product."""
    start, end, now = item.start_time, item.end_time, call.now
    if start < EARLIEST or (end is not None and (end < EARLIEST or end < start)):
        raise KssError(602, "StartTime and EndTime must be on or after 2008-01-01, EndTime not before StartTime")
    if item.license_count < 1 or (item.trial_days or 0) < 0 or item.activation_type not in ACTIVATION_TYPES:
        raise KssError(
            602, "LicenseCount must be positive, TrialDays not negative, ActivationType Standard or Secondary"
        )
    if start > now + call.tolerance:
        raise KssError(103, f"StartTime {iso_utc(start)} is in the future (now {iso_utc(now)})")
    if end is not None and end - start < MIN_TERM:
        raise KssError(101, "EndTime - StartTime is shorter than 28 days")
    _product(call, item.product_id)


def _start_of(call: Call, item: Activate) -> Activate:
    """On a frozen clock a StartTime within the start tolerance after now starts the subscription now (SIM-CLOCK-1):
    a client that stamps StartTime with its own clock, a little ahead of the partner's, would otherwise be left
    NotStarted until a test moves the clock. A running clock reaches that StartTime by itself, as the vendor's does:
    the subscription is NotStarted until then (docs/decisions/0003-running-clock-and-item-order.md)."""
    if not call.ctx.clock.running and call.now < item.start_time <= call.now + call.tolerance:
        return replace(item, start_time=call.now)
    return item


def activate(call: Call, item: Activate) -> ItemResult:
    _activation_checks(call, item)
    item = _start_of(call, item)
    start = item.start_time
    row = _row(call, item.subscriber_id)
    customer = row.customer_id if row is not None else (item.customer_id or item.subscriber_id)
    _no_prepaid(call, customer, item.product_id)
    trial_days = item.trial_days or 0
    cap = trial_cap_days(call.ctx, start)
    if trial_days > cap:
        raise KssError(
            701,
            f"a trial of {trial_days} days is longer than the {cap} days allowed to {call.ctx.partner.programme}",
            "KSS-TRIAL-1",
        )
    if row is None:
        return _activate_new(call, item, customer, trial_days)
    if row.status != HARD:
        raise KssError(1, f"SubscriberId {item.subscriber_id!r} is already activated ({row.status})")
    if trial_days > 0:
        raise KssError(702, "a trial is granted once per subscription, on its first activation only", "KSS-TRIAL-2")
    if item.customer_id is not None and item.customer_id != row.customer_id:
        raise KssError(602, f"SubscriberId {item.subscriber_id!r} belongs to customer {row.customer_id!r}")
    return _reactivate(call, item, row)


def _activate_new(call: Call, item: Activate, customer: str, trial_days: int) -> ItemResult:
    start, now = item.start_time, call.now
    code = _draw_code(call)
    started = start <= now
    values = {
        "partner_id": call.ctx.partner_id,
        "subscriber_id": item.subscriber_id,
        "customer_id": customer,
        "product_id": item.product_id,
        "license_count": item.license_count,
        "activation_code": code,
        "status": STARTED if started else NOT_STARTED,
        "status_change_time": start if started else now,
        "start_time": start,
        "end_time": item.end_time,
        "trial_end": _trial_end(call.ctx, start, trial_days) if trial_days else None,
        "trial_used": trial_days > 0,
        "first_activation_time": None,  # until the code is used on a device (``activate_device``)
        "created_at": now,
        "updated_at": now,
    }
    call.conn.execute(_INSERT_SUBSCRIPTION, values)
    row = _row(call, item.subscriber_id)
    _snapshot(call.conn, call.ctx.partner_id, row, event="activate", effective=start, recorded_at=now, source="partner")
    _audit(
        call,
        "activate",
        row,
        start,
        {
            "customer_id": customer,
            "product_id": item.product_id,
            "license_count": item.license_count,
            "start_time": start,
            "end_time": item.end_time,
            "trial_days": trial_days,
            "activation_type": item.activation_type,
            "activation_code": code,
        },
    )
    return ItemResult("Activate", item.unit_id, item.subscriber_id, activation_code=code)


def _licence_change(call: Call, pair: _LicenceChange, answer: ResponseContainer) -> bool:
    """HardCancel + Activate of one live subscription in one container, in either wire order: the licence change
    public clients send ("first a hard cancel"), applied as one change that keeps the code (KSS-CODE-1) and takes
    the Activate's count, product and EndTime from now, billed as ChangeLicenseCount is (KSS-QTY-1..3): one
    partner snapshot, never a stop. False, with nothing done, where it is not one (an unknown, hard-cancelled,
    not yet started or ended subscription, or an Activate the rules refuse): the two are then applied one after
    the other, HardCancel first."""
    cancel, item = pair.cancel, pair.activate
    try:
        with call.conn.begin_nested():
            row = _live(call, item.subscriber_id)
            _within_term(call, row)
            _not_too_old(call, cancel.end_time, "EndTime")
            _activation_checks(call, item)
            if item.trial_days:
                raise KssError(702, "a trial is granted once per subscription, not on a licence change", "KSS-TRIAL-2")
            if item.customer_id is not None and item.customer_id != row.customer_id:
                raise KssError(602, f"SubscriberId {item.subscriber_id!r} belongs to customer {row.customer_id!r}")
            if item.product_id != row.product_id:
                _no_prepaid(call, row.customer_id, item.product_id)
            effective = _not_before_last_change(call, row.subscriber_id, call.now)
            values: dict[str, Any] = {
                "license_count": item.license_count,
                "product_id": item.product_id,
                "end_time": item.end_time,
            }
            if row.status != STARTED:  # an activation runs: a pause or a soft cancel in force ends with it
                values.update(status=STARTED, status_change_time=effective, paused_at=None, pause_until=None)
            new = _change(call, row, "licence_change", effective, **values)
    except KssError:
        return False
    answer.results.append(ItemResult("HardCancel", cancel.unit_id, cancel.subscriber_id))
    answer.results.append(ItemResult("Activate", item.unit_id, item.subscriber_id, activation_code=new.activation_code))
    return True


def activate_device(conn: Connection, ctx: CallContext, subscriber_id: str, at: dt.datetime | None) -> dict[str, Any]:
    """The control plane's simulated device activation: the subscription's code used on a device at ``at``
    (default now). The first one sets FirstActivationTime (GetInfo/SubscriptionUsage); later ones change nothing."""
    row = conn.execute(_ROW, {"p_id": ctx.partner_id, "s_id": subscriber_id}).first()
    if row is None:
        raise not_found("SUBSCRIBER_NOT_FOUND", f"no KSS subscriber {subscriber_id!r}", rule="SIM-AUTH-1")
    at = ctx.clock.now if at is None else at
    if at > ctx.clock.now:
        raise unprocessable(
            "VALIDATION_ERROR",
            f"a device activation at {iso_utc(at)} is after the partner's now {iso_utc(ctx.clock.now)}",
            rule="SIM-CLOCK-1",
        )
    if row.status in (NOT_STARTED, HARD) or at < row.start_time:
        raise conflict(
            "CODE_NOT_USABLE",
            f"the activation code of {subscriber_id!r} cannot be used on a device "
            f"({row.status}, started {iso_utc(row.start_time)}) at {iso_utc(at)}",
        )
    if row.first_activation_time is None:
        conn.execute(
            sa.update(subscriptions)
            .where(
                subscriptions.c.partner_id == ctx.partner_id,
                subscriptions.c.subscriber_id == subscriber_id,
            )
            .values(first_activation_time=at)
        )
        audit.record(
            conn,
            ctx.partner_id,
            ctx.clock,
            actor=ctx.actor,
            service="admin",
            action="device_activation",
            object_type="subscription",
            object_id=subscriber_id,
            details={"at": iso_utc(at)},
        )
        first = at
    else:
        first = row.first_activation_time
    return {"subscriber_id": subscriber_id, "first_activation_time": iso_utc(first)}


def _reactivate(call: Call, item: Activate, row: Any) -> ItemResult:
    """KSS-STOP-1: Activate after HardCancel brings the subscription back with the same code (KSS-CODE-1)."""
    effective = _not_before_last_change(call, row.subscriber_id, item.start_time)
    started = item.start_time <= call.now
    new = _change(
        call,
        row,
        "reactivate",
        effective,
        status=STARTED if started else NOT_STARTED,
        status_change_time=effective if started else call.now,
        start_time=item.start_time,
        end_time=item.end_time,
        license_count=item.license_count,
        product_id=item.product_id,
        paused_at=None,
        pause_until=None,
    )
    return ItemResult("Activate", item.unit_id, item.subscriber_id, activation_code=new.activation_code)


def renew(call: Call, item: Renew) -> ItemResult:
    row = _live(call, item.subscriber_id)
    if row.status == PAUSED:
        raise KssError(204, "the subscription is paused: send Resume, not Renew")
    _started(row)
    new_end = item.end_time
    if new_end is not None and new_end < EARLIEST:
        raise KssError(602, "EndTime must be on or after 2008-01-01")
    if row.status == SOFT:  # reactivation, same code (KSS-STOP-1, KSS-CODE-1)
        if new_end is not None and new_end <= row.end_time:
            raise KssError(3, f"EndTime {iso_utc(new_end)} is not after the current EndTime {iso_utc(row.end_time)}")
        if new_end is not None and new_end <= call.now:
            raise KssError(602, f"EndTime {iso_utc(new_end)} is already past")
        effective = _not_before_last_change(call, row.subscriber_id, call.now)
        _change(call, row, "renew", effective, status=STARTED, status_change_time=effective, end_time=new_end)
    else:
        if row.end_time is None:
            raise KssError(202, "the subscription is open-ended; there is nothing to renew")
        if new_end is not None and new_end < row.end_time:
            raise KssError(3, f"EndTime {iso_utc(new_end)} is earlier than the current EndTime {iso_utc(row.end_time)}")
        _change(call, row, "renew", _not_before_last_change(call, row.subscriber_id, call.now), end_time=new_end)
    return ItemResult("Renew", item.unit_id, item.subscriber_id)


def _cancel_end(call: Call, row: Any, wanted: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(end time, effective time) of a cancel: never extending the term, never before the last change."""
    end = wanted if row.end_time is None else min(wanted, row.end_time)
    end = _not_before_last_change(call, row.subscriber_id, end)
    return end, _not_before_last_change(call, row.subscriber_id, min(end, call.now))


def soft_cancel(call: Call, item: SoftCancel) -> ItemResult:
    """KSS-STOP-1: stopped at EndTime (the month containing it is still charged); Renew reactivates it."""
    row = _live(call, item.subscriber_id)
    if row.status == PAUSED:
        raise KssError(303, "a paused subscription cannot be soft-cancelled")
    _started(row)
    if row.status == SOFT:
        raise KssError(105, "the subscription is already soft-cancelled")
    _not_too_old(call, item.end_time, "EndTime")
    if item.end_time < row.start_time:
        raise KssError(602, f"EndTime {iso_utc(item.end_time)} is before the StartTime {iso_utc(row.start_time)}")
    end, effective = _cancel_end(call, row, item.end_time)
    _change(call, row, "soft_cancel", effective, status=SOFT, status_change_time=call.now, end_time=end)
    return ItemResult("SoftCancel", item.unit_id, item.subscriber_id)


def hard_cancel(call: Call, item: HardCancel) -> ItemResult:
    """KSS-STOP-1: ended at once; paid until EndTime; only a later Activate brings it back."""
    row = _live(call, item.subscriber_id)
    _not_too_old(call, item.end_time, "EndTime")
    end, effective = _cancel_end(call, row, item.end_time)
    _change(call, row, "hard_cancel", effective, status=HARD, status_change_time=call.now, end_time=end)
    return ItemResult("HardCancel", item.unit_id, item.subscriber_id)


def pause(call: Call, item: Pause) -> ItemResult:
    """KSS-PAUSE-1: paused from PauseTime, for a term when ext:ResumeTime is given (resumes by itself)."""
    row = _live(call, item.subscriber_id)
    if row.status == SOFT:
        raise KssError(105, "the subscription is soft-cancelled")
    _started(row)
    if row.end_time is not None:
        raise KssError(401, "only open-ended subscriptions can be paused")
    if row.status == PAUSED:
        raise KssError(402, "the subscription is already paused")
    at, resume_at = item.pause_time, item.resume_time
    if resume_at is not None and (resume_at <= at or resume_at <= call.now):
        raise KssError(706, f"ResumeTime {iso_utc(resume_at)} is not after PauseTime and now", "KSS-PAUSE-1")
    if at < EARLIEST or at < row.start_time:
        raise KssError(602, f"PauseTime {iso_utc(at)} is before the StartTime {iso_utc(row.start_time)}")
    if at > call.now + call.tolerance:
        raise KssError(103, f"PauseTime {iso_utc(at)} is in the future; pauses are not scheduled")
    _not_too_old(call, at, "PauseTime")
    paused_at = _not_before_last_change(call, row.subscriber_id, min(at, call.now))
    _change(
        call,
        row,
        "pause",
        paused_at,
        status=PAUSED,
        status_change_time=paused_at,
        paused_at=paused_at,
        pause_until=resume_at,
    )
    return ItemResult("Pause", item.unit_id, item.subscriber_id)


def resume(call: Call, item: Resume) -> ItemResult:
    row = _live(call, item.subscriber_id)
    if row.status != PAUSED:
        raise KssError(501, f"the subscription is not paused ({row.status})")
    effective = _not_before_last_change(call, row.subscriber_id, call.now)
    _change(
        call, row, "resume", effective, status=STARTED, status_change_time=effective, paused_at=None, pause_until=None
    )
    return ItemResult("Resume", item.unit_id, item.subscriber_id)


def subscription_info(conn: Connection, ctx: CallContext, row: Any) -> SubscriptionInfo:
    charged = billing.current_period_charge(conn, ctx.partner, ctx.clock.today, row)
    return SubscriptionInfo(
        status=row.status,
        status_change_time=row.status_change_time,
        start_time=row.start_time,
        end_time=row.end_time,
        license_count=row.license_count,
        product_id=row.product_id,
        activation_code=row.activation_code,
        customer_id=row.customer_id,
        trial_end_time=row.trial_end,
        pause_end_time=row.pause_until if row.status == PAUSED else None,
        # The count the current period is charged for; None while it is not charged (trial, free month, pause).
        max_license_count_this_period=None if charged is None else charged.charged_count,
    )


def get_info(call: Call, item: GetInfo) -> ItemResult:
    """Answers on hard-cancelled subscriptions too (Status HardCancelled)."""
    row = _known(call, item.subscriber_id)
    wrong = [s for s in item.sections if s not in SECTIONS]
    if wrong or not item.sections:
        raise KssError(602, f"InfoSection must be Subscription and/or SubscriptionUsage, not {wrong}")
    return ItemResult(
        "GetInfo",
        item.unit_id,
        item.subscriber_id,
        subscription=subscription_info(call.conn, call.ctx, row) if "Subscription" in item.sections else None,
        usage=UsageInfo(row.first_activation_time) if "SubscriptionUsage" in item.sections else None,
    )


def get_download_links(call: Call, item: GetDownloadLinks) -> ItemResult:
    row = _live(call, item.subscriber_id)
    if item.platform not in PLATFORMS or not item.language:
        raise KssError(602, f"Platform must be one of {', '.join(PLATFORMS)} and Language given")
    # The partner's Language and RebrandingCode are free text: escaped, so the Url stays an xs:anyURI.
    url = f"{DOWNLOADS}/{row.product_id}/{item.platform}/{quote(item.language, safe='')}/setup"
    if item.rebranding_code:
        url += "?" + urlencode({"rebranding": item.rebranding_code})
    link = DownloadLink(
        url=url,
        language=item.language,
        application_name=call.ctx.profile.kss_products[row.product_id].name,
        alphabet=item.alphabet,
        region=item.region,
        rebranding_code=item.rebranding_code,
    )
    return ItemResult("GetDownloadLinks", item.unit_id, item.subscriber_id, platform=item.platform, links=(link,))


def change_license_count(call: Call, item: ChangeLicenseCount) -> ItemResult:
    """KSS-QTY-1: any time within the term, no new activation, same code (KSS-CODE-1)."""
    row = _live(call, item.subscriber_id)
    _within_term(call, row)
    if item.license_count < 1:
        raise KssError(602, "LicenseCount must be positive")
    if item.license_count == row.license_count:
        raise KssError(707, f"the subscription already has {row.license_count} licence(s)", "KSS-QTY-1")
    effective = _not_before_last_change(call, row.subscriber_id, call.now)
    new = _change(call, row, "change_license_count", effective, license_count=item.license_count)
    return ItemResult("ChangeLicenseCount", item.unit_id, item.subscriber_id, activation_code=new.activation_code)


def change_product(call: Call, item: ChangeProduct) -> ItemResult:
    """KSS-CODE-1: the code stays; a product change never grants a new trial (KSS-TRIAL-2)."""
    row = _live(call, item.subscriber_id)
    _within_term(call, row)
    _product(call, item.product_id)
    if item.product_id == row.product_id:
        raise KssError(707, f"the subscription is already on {row.product_id}", "KSS-CODE-1")
    _no_prepaid(call, row.customer_id, item.product_id)
    effective = _not_before_last_change(call, row.subscriber_id, call.now)
    new = _change(call, row, "change_product", effective, product_id=item.product_id)
    return ItemResult("ChangeProduct", item.unit_id, item.subscriber_id, activation_code=new.activation_code)


HANDLERS: dict[type, Callable[[Call, Any], ItemResult]] = {
    Activate: activate,
    Renew: renew,
    SoftCancel: soft_cancel,
    HardCancel: hard_cancel,
    Pause: pause,
    Resume: resume,
    GetInfo: get_info,
    GetDownloadLinks: get_download_links,
    ChangeLicenseCount: change_license_count,
    ChangeProduct: change_product,
}


# ---------------------------------------------------------------- time (SIM-CLOCK-1)
#
# What the vendor does when the partner's clock moves, as due events (ksimkit.simulators.core.clock.on_due): each
# subscription's start, pause end, trial end, renewal per billing period (KSS-RENEW-1) and end; and each monthly
# collective bill closed (KSS-BILL-1). All are audited with the actor ``ksim-vendor``.


def _order(due: Due) -> tuple[Any, ...]:
    return due.order


_EVENTS = ("start", "pause_end", "trial_end", "renew", "end")  # one subscription, one instant: in this order
_ORDER = {event: rank for rank, event in enumerate(_EVENTS)}
_START, _PAUSE_END, _TRIAL_END, _RENEW, _END = range(len(_EVENTS))


def _next_boundary(partner: Partner, after: dt.datetime, first_paid: dt.date | None) -> dt.datetime | None:
    """The first billing-period start strictly after ``after`` (KSS-RENEW-1)."""
    zone = PartnerClock(after, partner.timezone).zone
    day = after.astimezone(zone).date()
    if partner.billing_period == billing.CALENDAR_MONTH:
        candidate = day.replace(day=1)
        step = billing.next_month
    else:
        if first_paid is None:
            return None
        candidate = first_paid + dt.timedelta(
            days=billing.PERIOD_DAYS * max(0, (day - first_paid).days // billing.PERIOD_DAYS)
        )

        def step(d: dt.date) -> dt.date:
            return d + dt.timedelta(days=billing.PERIOD_DAYS)

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


def _due_events(
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
        for event, stream in heads:
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
        {  # the vendor's snapshot, as _snapshot writes it
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
    if details is None:  # one dict per distinct state: written as JSON once per flush (ksimkit.simulators.core.clock)
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


def _bill_closings(conn: Connection, partner: Partner, window: Window, rows: list[Any]) -> Iterator[Due]:
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
    last_day = None if None in ends else max(ends).astimezone(window.new.zone).date()  # type: ignore[type-var]
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
    streams = [_due_events(row, old, new, first_paid.get(row.subscriber_id), boundaries) for row in live]
    changes = _changes(conn, partner, states, streams)
    yield from heapq.merge(_bill_closings(conn, partner, window, rows), changes, key=_order)


def reset(conn: Connection, partner_id: str) -> None:
    for table in (history, subscriptions, transactions, code_pools, prepaid):
        conn.execute(sa.delete(table).where(table.c.partner_id == partner_id))


# ---------------------------------------------------------------- control plane


def seed_prepaid(
    conn: Connection, ctx: CallContext, customer_id: str, product_id: str, licence_count: int, expires_on: dt.date
) -> dict[str, Any]:
    """Prepaid (non-subscription) licences a customer holds until ``expires_on`` (KSS-PREPAID-1)."""
    if product_id not in ctx.profile.kss_products:
        raise unprocessable("UNKNOWN_PRODUCT", f"no KSS product {product_id!r} in the catalog", rule="KSS-PROD-1")
    if licence_count < 1:
        raise unprocessable("VALIDATION_ERROR", "licence_count must be at least 1")
    result = conn.execute(
        sa.insert(prepaid).values(
            partner_id=ctx.partner_id,
            customer_id=customer_id,
            product_id=product_id,
            licence_count=licence_count,
            expires_on=expires_on,
            created_at=ctx.clock.now,
        )
    )
    prepaid_id = result.inserted_primary_key[0]
    audit.record(
        conn,
        ctx.partner_id,
        ctx.clock,
        actor=ctx.actor,
        service="admin",
        action="seed_prepaid",
        object_type="prepaid",
        object_id=str(prepaid_id),
        details={
            "customer_id": customer_id,
            "product_id": product_id,
            "licence_count": licence_count,
            "expires_on": expires_on.isoformat(),
        },
    )
    return _prepaid_json(conn.execute(sa.select(prepaid).where(prepaid.c.id == prepaid_id)).one(), ctx.clock.today)


def list_prepaid(conn: Connection, ctx: CallContext) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(prepaid).where(prepaid.c.partner_id == ctx.partner_id).order_by(prepaid.c.id))
    return [_prepaid_json(row, ctx.clock.today) for row in rows]


def _prepaid_json(row: Any, today: dt.date) -> dict[str, Any]:
    return {
        "id": row.id,
        "customer_id": row.customer_id,
        "product_id": row.product_id,
        "licence_count": row.licence_count,
        "expires_on": row.expires_on.isoformat(),
        "active": row.expires_on > today,  # KSS-PREPAID-1: active while not expired
        "created_at": iso_utc(row.created_at),
    }


def set_code_pool(conn: Connection, ctx: CallContext, remaining: int | None) -> dict[str, Any]:
    """Limit the partner's activation-code pool to ``remaining`` new codes (0: empty, error 8); None: unlimited."""
    if remaining is not None and remaining < 0:
        raise unprocessable("VALIDATION_ERROR", "remaining must be 0 or more, or null for no limit")
    conn.execute(sa.delete(code_pools).where(code_pools.c.partner_id == ctx.partner_id))
    if remaining is not None:
        conn.execute(sa.insert(code_pools).values(partner_id=ctx.partner_id, remaining=remaining))
    audit.record(
        conn,
        ctx.partner_id,
        ctx.clock,
        actor=ctx.actor,
        service="admin",
        action="set_code_pool",
        object_type="code_pool",
        object_id=ctx.partner_id,
        details={"remaining": remaining},
    )
    return {"remaining": remaining}


_EXT_ANSWERS = sa.select(options.c.ext_answers).where(options.c.partner_id == sa.bindparam("p_id"))


def ext_answers(conn: Connection, partner_id: str) -> bool:
    """Whether the partner opted in to extension attributes in every answer (default: only to requests in ext)."""
    return bool(conn.execute(_EXT_ANSWERS, {"p_id": partner_id}).scalar())


def kss_options(conn: Connection, ctx: CallContext) -> dict[str, Any]:
    return {"ext_answers": ext_answers(conn, ctx.partner_id)}


def set_kss_options(conn: Connection, ctx: CallContext, ext: bool) -> dict[str, Any]:
    """A wire setting, like strict contract mode: it may change at any time and is not audited."""
    conn.execute(sa.delete(options).where(options.c.partner_id == ctx.partner_id))
    if ext:
        conn.execute(sa.insert(options).values(partner_id=ctx.partner_id, ext_answers=True))
    return kss_options(conn, ctx)


def get_subscription(conn: Connection, ctx: CallContext, subscriber_id: str) -> dict[str, Any]:
    """A subscription and its history as JSON, for the control plane and scenario checks."""
    row = conn.execute(
        sa.select(subscriptions).where(
            subscriptions.c.partner_id == ctx.partner_id, subscriptions.c.subscriber_id == subscriber_id
        )
    ).first()
    if row is None:
        raise not_found("SUBSCRIBER_NOT_FOUND", f"no KSS subscriber {subscriber_id!r}", rule="SIM-AUTH-1")
    entries = conn.execute(
        sa.select(history)
        .where(history.c.partner_id == ctx.partner_id, history.c.subscriber_id == subscriber_id)
        .order_by(history.c.id)
    ).all()
    info = subscription_info(conn, ctx, row)

    def opt(value: dt.datetime | None) -> str | None:
        return None if value is None else iso_utc(value)

    return {
        "subscriber_id": row.subscriber_id,
        "customer_id": row.customer_id,
        "product_id": row.product_id,
        "license_count": row.license_count,
        "activation_code": row.activation_code,
        "status": row.status,
        "status_change_time": iso_utc(row.status_change_time),
        "start_time": iso_utc(row.start_time),
        "end_time": opt(row.end_time),
        "trial_end": opt(row.trial_end),
        "trial_used": row.trial_used,
        "paused_at": opt(row.paused_at),
        "pause_until": opt(row.pause_until),
        "first_activation_time": None if row.first_activation_time is None else iso_utc(row.first_activation_time),
        "max_license_count_this_period": info.max_license_count_this_period,
        "created_at": iso_utc(row.created_at),
        "history": [
            {
                "effective": iso_utc(e.effective),
                "source": e.source,
                "event": e.event,
                "status": e.status,
                "license_count": e.license_count,
                "product_id": e.product_id,
                "end_time": opt(e.end_time),
            }
            for e in entries
        ],
    }
