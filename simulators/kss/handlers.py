"""KSS 3.0 item handlers: what each unit of a request container does to a subscription (no SOAP here).

One function per item kind (``HANDLERS``), and ``licence_change`` for the HardCancel + Activate pair public
clients send to change a licence; ``ksimkit.simulators.kss.container`` applies a container's units with them. A
unit is refused by raising ``KssError`` with a code of docs/kss-wire.md (``KssCode``: the public ones, or ours,
7xx, contracts/kss-ext.xsd). Times come from the partner's clock only (SIM-CLOCK-1).

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
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.clock import iso_utc
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.kss import billing
from ksimkit.simulators.kss.errors import KssCode, KssError
from ksimkit.simulators.kss.model import (
    Activate,
    ChangeLicenseCount,
    ChangeProduct,
    DownloadLink,
    GetDownloadLinks,
    GetInfo,
    HardCancel,
    ItemResult,
    Pause,
    Renew,
    Resume,
    SoftCancel,
    SubscriptionInfo,
    UsageInfo,
)
from ksimkit.simulators.kss.state import (
    HARD,
    NOT_STARTED,
    PAUSED,
    SOFT,
    STARTED,
    Call,
    audit_change,
    change,
    check_no_prepaid,
    check_not_too_old,
    check_started,
    check_within_term,
    draw_code,
    known,
    live,
    not_before_last_change,
    offered_product,
    row_of,
    snapshot,
)
from ksimkit.simulators.kss.tables import subscriptions

UTC = dt.UTC
EARLIEST = dt.datetime(2008, 1, 1, tzinfo=UTC)  # 602: no date before it
MIN_TERM = dt.timedelta(days=28)  # 101
ACTIVATION_TYPES = ("Standard", "Secondary")
PLATFORMS = ("Windows", "macOS", "Android", "iOS")
SECTIONS = ("Subscription", "SubscriptionUsage")
DOWNLOADS = "https://downloads.ksim.invalid"

_INSERT_SUBSCRIPTION = sa.insert(subscriptions)


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


def _activation_checks(call: Call, item: Activate) -> None:
    """What an Activate must pass whatever the subscriber's state: dates (602, 103, 101), values (602), product."""
    start, end, now = item.start_time, item.end_time, call.now
    if start < EARLIEST or (end is not None and (end < EARLIEST or end < start)):
        raise KssError(
            KssCode.BAD_ATTRIBUTE, "StartTime and EndTime must be on or after 2008-01-01, EndTime not before StartTime"
        )
    if item.license_count < 1 or (item.trial_days or 0) < 0 or item.activation_type not in ACTIVATION_TYPES:
        raise KssError(
            KssCode.BAD_ATTRIBUTE,
            "LicenseCount must be positive, TrialDays not negative, ActivationType Standard or Secondary",
        )
    if start > now + call.tolerance:
        raise KssError(KssCode.START_IN_FUTURE, f"StartTime {iso_utc(start)} is in the future (now {iso_utc(now)})")
    if end is not None and end - start < MIN_TERM:
        raise KssError(KssCode.TERM_TOO_SHORT, "EndTime - StartTime is shorter than 28 days")
    offered_product(call, item.product_id)


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
    row = row_of(call, item.subscriber_id)
    customer = row.customer_id if row is not None else (item.customer_id or item.subscriber_id)
    check_no_prepaid(call, customer, item.product_id)
    trial_days = item.trial_days or 0
    cap = trial_cap_days(call.ctx, start)
    if trial_days > cap:
        raise KssError(
            KssCode.TRIAL_TOO_LONG,
            f"a trial of {trial_days} days is longer than the {cap} days allowed to {call.ctx.partner.programme}",
            "KSS-TRIAL-1",
        )
    if row is None:
        return _activate_new(call, item, customer, trial_days)
    if row.status != HARD:
        raise KssError(
            KssCode.ALREADY_ACTIVATED, f"SubscriberId {item.subscriber_id!r} is already activated ({row.status})"
        )
    if trial_days > 0:
        raise KssError(
            KssCode.TRIAL_ALREADY_GRANTED,
            "a trial is granted once per subscription, on its first activation only",
            "KSS-TRIAL-2",
        )
    if item.customer_id is not None and item.customer_id != row.customer_id:
        raise KssError(
            KssCode.BAD_ATTRIBUTE, f"SubscriberId {item.subscriber_id!r} belongs to customer {row.customer_id!r}"
        )
    return _reactivate(call, item, row)


def _activate_new(call: Call, item: Activate, customer: str, trial_days: int) -> ItemResult:
    start, now = item.start_time, call.now
    code = draw_code(call)
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
        "first_activation_time": None,  # until the code is used on a device (``control.activate_device``)
        "created_at": now,
        "updated_at": now,
    }
    call.conn.execute(_INSERT_SUBSCRIPTION, values)
    row = row_of(call, item.subscriber_id)
    snapshot(call.conn, call.ctx.partner_id, row, event="activate", effective=start, recorded_at=now, source="partner")
    audit_change(
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


def licence_change(call: Call, cancel: HardCancel, item: Activate) -> tuple[ItemResult, ItemResult] | None:
    """HardCancel + Activate of one live subscription in one container, in either wire order: the licence change
    public clients send ("first a hard cancel"), applied as one change that keeps the code (KSS-CODE-1) and takes
    the Activate's count, product and EndTime from now, billed as ChangeLicenseCount is (KSS-QTY-1..3): one
    partner snapshot, never a stop. None, with nothing done, where it is not one (an unknown, hard-cancelled,
    not yet started or ended subscription, or an Activate the rules refuse): the two are then applied one after
    the other, HardCancel first."""
    try:
        with call.conn.begin_nested():
            row = live(call, item.subscriber_id)
            check_within_term(call, row)
            check_not_too_old(call, cancel.end_time, "EndTime")
            _activation_checks(call, item)
            if item.trial_days:
                raise KssError(
                    KssCode.TRIAL_ALREADY_GRANTED,
                    "a trial is granted once per subscription, not on a licence change",
                    "KSS-TRIAL-2",
                )
            if item.customer_id is not None and item.customer_id != row.customer_id:
                raise KssError(
                    KssCode.BAD_ATTRIBUTE,
                    f"SubscriberId {item.subscriber_id!r} belongs to customer {row.customer_id!r}",
                )
            if item.product_id != row.product_id:
                check_no_prepaid(call, row.customer_id, item.product_id)
            effective = not_before_last_change(call, row.subscriber_id, call.now)
            values: dict[str, Any] = {
                "license_count": item.license_count,
                "product_id": item.product_id,
                "end_time": item.end_time,
            }
            if row.status != STARTED:  # an activation runs: a pause or a soft cancel in force ends with it
                values.update(status=STARTED, status_change_time=effective, paused_at=None, pause_until=None)
            new = change(call, row, "licence_change", effective, **values)
    except KssError:
        return None
    return (
        ItemResult("HardCancel", cancel.unit_id, cancel.subscriber_id),
        ItemResult("Activate", item.unit_id, item.subscriber_id, activation_code=new.activation_code),
    )


def _reactivate(call: Call, item: Activate, row: Any) -> ItemResult:
    """KSS-STOP-1: Activate after HardCancel brings the subscription back with the same code (KSS-CODE-1)."""
    effective = not_before_last_change(call, row.subscriber_id, item.start_time)
    started = item.start_time <= call.now
    new = change(
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
    row = live(call, item.subscriber_id)
    if row.status == PAUSED:
        raise KssError(KssCode.RENEW_PAUSED, "the subscription is paused: send Resume, not Renew")
    check_started(row)
    new_end = item.end_time
    if new_end is not None and new_end < EARLIEST:
        raise KssError(KssCode.BAD_ATTRIBUTE, "EndTime must be on or after 2008-01-01")
    if row.status == SOFT:  # reactivation, same code (KSS-STOP-1, KSS-CODE-1)
        if new_end is not None and new_end <= row.end_time:
            raise KssError(
                KssCode.END_TIME_NOT_LATER,
                f"EndTime {iso_utc(new_end)} is not after the current EndTime {iso_utc(row.end_time)}",
            )
        if new_end is not None and new_end <= call.now:
            raise KssError(KssCode.BAD_ATTRIBUTE, f"EndTime {iso_utc(new_end)} is already past")
        effective = not_before_last_change(call, row.subscriber_id, call.now)
        change(call, row, "renew", effective, status=STARTED, status_change_time=effective, end_time=new_end)
    else:
        if row.end_time is None:
            raise KssError(KssCode.RENEW_OPEN_ENDED, "the subscription is open-ended; there is nothing to renew")
        if new_end is not None and new_end < row.end_time:
            raise KssError(
                KssCode.END_TIME_NOT_LATER,
                f"EndTime {iso_utc(new_end)} is earlier than the current EndTime {iso_utc(row.end_time)}",
            )
        change(call, row, "renew", not_before_last_change(call, row.subscriber_id, call.now), end_time=new_end)
    return ItemResult("Renew", item.unit_id, item.subscriber_id)


def _cancel_end(call: Call, row: Any, wanted: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(end time, effective time) of a cancel: never extending the term, never before the last change."""
    end = wanted if row.end_time is None else min(wanted, row.end_time)
    end = not_before_last_change(call, row.subscriber_id, end)
    return end, not_before_last_change(call, row.subscriber_id, min(end, call.now))


def soft_cancel(call: Call, item: SoftCancel) -> ItemResult:
    """KSS-STOP-1: stopped at EndTime (the month containing it is still charged); Renew reactivates it."""
    row = live(call, item.subscriber_id)
    if row.status == PAUSED:
        raise KssError(KssCode.SOFT_CANCEL_PAUSED, "a paused subscription cannot be soft-cancelled")
    check_started(row)
    if row.status == SOFT:
        raise KssError(KssCode.SOFT_CANCELLED, "the subscription is already soft-cancelled")
    check_not_too_old(call, item.end_time, "EndTime")
    if item.end_time < row.start_time:
        raise KssError(
            KssCode.BAD_ATTRIBUTE, f"EndTime {iso_utc(item.end_time)} is before the StartTime {iso_utc(row.start_time)}"
        )
    end, effective = _cancel_end(call, row, item.end_time)
    change(call, row, "soft_cancel", effective, status=SOFT, status_change_time=call.now, end_time=end)
    return ItemResult("SoftCancel", item.unit_id, item.subscriber_id)


def hard_cancel(call: Call, item: HardCancel) -> ItemResult:
    """KSS-STOP-1: ended at once; paid until EndTime; only a later Activate brings it back."""
    row = live(call, item.subscriber_id)
    check_not_too_old(call, item.end_time, "EndTime")
    end, effective = _cancel_end(call, row, item.end_time)
    change(call, row, "hard_cancel", effective, status=HARD, status_change_time=call.now, end_time=end)
    return ItemResult("HardCancel", item.unit_id, item.subscriber_id)


def pause(call: Call, item: Pause) -> ItemResult:
    """KSS-PAUSE-1: paused from PauseTime, for a term when ext:ResumeTime is given (resumes by itself)."""
    row = live(call, item.subscriber_id)
    if row.status == SOFT:
        raise KssError(KssCode.SOFT_CANCELLED, "the subscription is soft-cancelled")
    check_started(row)
    if row.end_time is not None:
        raise KssError(KssCode.PAUSE_NOT_OPEN_ENDED, "only open-ended subscriptions can be paused")
    if row.status == PAUSED:
        raise KssError(KssCode.ALREADY_PAUSED, "the subscription is already paused")
    at, resume_at = item.pause_time, item.resume_time
    if resume_at is not None and (resume_at <= at or resume_at <= call.now):
        raise KssError(
            KssCode.BAD_RESUME_TIME, f"ResumeTime {iso_utc(resume_at)} is not after PauseTime and now", "KSS-PAUSE-1"
        )
    if at < EARLIEST or at < row.start_time:
        raise KssError(
            KssCode.BAD_ATTRIBUTE, f"PauseTime {iso_utc(at)} is before the StartTime {iso_utc(row.start_time)}"
        )
    if at > call.now + call.tolerance:
        raise KssError(KssCode.START_IN_FUTURE, f"PauseTime {iso_utc(at)} is in the future; pauses are not scheduled")
    check_not_too_old(call, at, "PauseTime")
    paused_at = not_before_last_change(call, row.subscriber_id, min(at, call.now))
    change(
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
    row = live(call, item.subscriber_id)
    if row.status != PAUSED:
        raise KssError(KssCode.NOT_PAUSED, f"the subscription is not paused ({row.status})")
    effective = not_before_last_change(call, row.subscriber_id, call.now)
    change(
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
    row = known(call, item.subscriber_id)
    wrong = [s for s in item.sections if s not in SECTIONS]
    if wrong or not item.sections:
        raise KssError(KssCode.BAD_ATTRIBUTE, f"InfoSection must be Subscription and/or SubscriptionUsage, not {wrong}")
    return ItemResult(
        "GetInfo",
        item.unit_id,
        item.subscriber_id,
        subscription=subscription_info(call.conn, call.ctx, row) if "Subscription" in item.sections else None,
        usage=UsageInfo(row.first_activation_time) if "SubscriptionUsage" in item.sections else None,
    )


def get_download_links(call: Call, item: GetDownloadLinks) -> ItemResult:
    row = live(call, item.subscriber_id)
    if item.platform not in PLATFORMS or not item.language:
        raise KssError(KssCode.BAD_ATTRIBUTE, f"Platform must be one of {', '.join(PLATFORMS)} and Language given")
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
    row = live(call, item.subscriber_id)
    check_within_term(call, row)
    if item.license_count < 1:
        raise KssError(KssCode.BAD_ATTRIBUTE, "LicenseCount must be positive")
    if item.license_count == row.license_count:
        raise KssError(
            KssCode.NOTHING_TO_CHANGE, f"the subscription already has {row.license_count} licence(s)", "KSS-QTY-1"
        )
    effective = not_before_last_change(call, row.subscriber_id, call.now)
    new = change(call, row, "change_license_count", effective, license_count=item.license_count)
    return ItemResult("ChangeLicenseCount", item.unit_id, item.subscriber_id, activation_code=new.activation_code)


def change_product(call: Call, item: ChangeProduct) -> ItemResult:
    """KSS-CODE-1: the code stays; a product change never grants a new trial (KSS-TRIAL-2)."""
    row = live(call, item.subscriber_id)
    check_within_term(call, row)
    offered_product(call, item.product_id)
    if item.product_id == row.product_id:
        raise KssError(KssCode.NOTHING_TO_CHANGE, f"the subscription is already on {row.product_id}", "KSS-CODE-1")
    check_no_prepaid(call, row.customer_id, item.product_id)
    effective = not_before_last_change(call, row.subscriber_id, call.now)
    new = change(call, row, "change_product", effective, product_id=item.product_id)
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
