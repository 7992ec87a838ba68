"""Time travel that matters: a clock move runs everything due up to the new time, in date order across services.

One partner (xsp, calendar months, UTC) does everything at 2026-01-15 09:00, then its clock jumps a year to
2027-01-15 09:00. Prices (packaged profile): KORM KESB-SELECT PAYG 20-49 2.82/licence/month, YEARLY 20-49
28.20/licence/year; KSS KIS 2.99, KTS 3.99, KAV 1.99 per licence per month.

KORM
- payg: 31 x KESB-SELECT PAYG. January: 17 days (15-31) x 31 licences x 2.82 / 31 days = 47.94; every full month
  31 x 2.82 = 87.42 (licence-days x price / days in the month, KORM-PAYG-2).
- yearly: 20 x KESB-SELECT YEARLY: 20 x 28.20 = 564.00 on the January statement, and again on the anniversary,
  2027-01-15 (KORM-YEAR-4).
- Statements: January 47.94 + 564.00 = 611.94 (2 lines); February to December 87.42 (1 line); each closes at
  00:00 of the next month's first day.

KSS
- trial: 10 x KIS with a 30-day trial: the trial ends 2026-02-14 09:00 (KSS-TRIAL-2); 1 February falls inside
  the trial (no renewal); renewals from 1 March to 1 January (11). Charged from February: 10 x 2.99 = 29.90.
- paused: 5 x KTS, paused at once until 2026-04-10 (ext:ResumeTime): resumes by itself then (KSS-PAUSE-1); no
  renewal while paused; renewals from 1 May to 1 January (9). February and March lie wholly in the pause and are
  not charged; April (10-30) and later: 5 x 3.99 = 19.95.
- cancelled: 4 x KAV, soft-cancelled at once to end at the end of June (EndTime 2026-07-01 00:00): the cancel
  takes effect then (``end``, KSS-STOP-1); no renewal on a fixed end. January (15-31) to June: 4 x 1.99 = 7.96.
- Bills: January 7.96 (1 line); February and March 29.90 + 7.96 = 37.86 (2); April to June
  29.90 + 19.95 + 7.96 = 57.81 (3); July to December 29.90 + 19.95 = 49.85 (2).

At one instant, the closing of the month that ended comes first (KORM, then KSS), then what opens the next one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ksimkit.simulators.core import audit
from ksimkit.simulators.core.clock import read_clock
from ksimkit.simulators.core.due import CLOSE, Window, due_events, move_clock
from ksimkit.simulators.core.errors import Problem
from ksimkit.simulators.core.partners import reset_partner
from ksimkit.simulators.korm import rules as korm
from ksimkit.simulators.korm.rules import Order
from ksimkit.simulators.kss.model import Pause, SoftCancel
from ksimkit.simulators.services import default_services
from tests.conftest import World
from tests.unit.conftest import Kss, T, act

SERVICES = default_services()  # what a clock move runs and a reset clears, as an app would

UTC = dt.UTC
START = dt.datetime(2026, 1, 15, 9, tzinfo=UTC)
END = dt.datetime(2027, 1, 15, 9, tzinfo=UTC)
VENDOR = "ksim-vendor"

KORM_MONTHS = {"2026-01": (2, "611.94")} | {f"2026-{m:02d}": (1, "87.42") for m in range(2, 13)}
KSS_MONTHS = (
    {"2026-01": (1, "7.96")}
    | {f"2026-{m:02d}": (2, "37.86") for m in (2, 3)}
    | {f"2026-{m:02d}": (3, "57.81") for m in (4, 5, 6)}
    | {f"2026-{m:02d}": (2, "49.85") for m in range(7, 13)}
)


def month_after(period: str) -> str:
    year, month = map(int, period.split("-"))
    return f"{year + (month == 12)}-{month % 12 + 1:02d}-01T00:00:00Z"


def expected_events() -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """Every due event of the year, hand-listed, as (at, service, action, object, key figures)."""
    events = []
    for period, (lines, amount) in KORM_MONTHS.items():
        events.append((month_after(period), "korm", "statement_closed", period, {"lines": lines, "amount": amount}))
    for period, (lines, amount) in KSS_MONTHS.items():
        events.append((month_after(period), "kss", "bill_closed", period, {"lines": lines, "amount": amount}))
    events.append(("2026-02-14T09:00:00Z", "kss", "trial_end", "trial", {"license_count": 10}))
    events.append(("2026-04-10T00:00:00Z", "kss", "pause_end", "paused", {"license_count": 5, "status": "Started"}))
    events.append(("2026-07-01T00:00:00Z", "kss", "end", "cancelled", {"status": "SoftCancelled"}))
    for m in range(3, 14):  # 1 March 2026 .. 1 January 2027
        events.append((month_after(f"2026-{m - 1:02d}"), "kss", "renew", "trial", {"license_count": 10}))
    for m in range(5, 14):  # 1 May 2026 .. 1 January 2027
        events.append((month_after(f"2026-{m - 1:02d}"), "kss", "renew", "paused", {"license_count": 5}))
    events.append(
        (
            "2027-01-15T00:00:00Z",
            "korm",
            "anniversary",
            "yearly",
            {"anniversary": "2027-01-15", "year": 1, "quantity": 20, "unit_price": "28.20", "amount": "564.00"},
        )
    )
    # Date order; at one instant closings first (korm before kss), then changes by subscriber.
    rank = {"statement_closed": 0, "bill_closed": 0}
    return sorted(events, key=lambda e: (e[0], rank.get(e[2], 1), e[1], e[3]))


def set_up(world: World) -> Kss:
    """The year's subscriptions, all ordered at the partner's start (2026-01-15 09:00)."""
    world.call(korm.order, Order("payg", "KESB-SELECT-PAYG-20-49", 31))
    world.call(korm.order, Order("yearly", "KESB-SELECT-YEARLY-20-49", 20))
    kss = Kss(world)
    kss.ok(act("trial", start="2026-01-15T09:00", product="KIS", count=10, trial_days=30))
    kss.ok(act("paused", start="2026-01-15T09:00", product="KTS", count=5))
    kss.ok(Pause(1, "paused", T("2026-01-15T09:00"), resume_time=T("2026-04-10")))
    kss.ok(act("cancelled", start="2026-01-15T09:00", product="KAV", count=4))
    kss.ok(SoftCancel(2, "cancelled", T("2026-07-01")))
    return kss


def move(world: World, to: dt.datetime) -> None:
    with world.store.begin() as conn:
        move_clock(conn, world.partner_id, to, sources=SERVICES.due_sources)


def vendor_events(world: World) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """The clock's entries in log order; KORM subscriptions named by their customer (ids differ between runs)."""
    with world.store.begin() as conn:
        entries = audit.entries(conn, world.partner_id, limit=1000)[0]
    customers = {s["id"]: s["customer_id"] for s in world.call(korm.list_subscriptions, include_deleted=True)}
    return [
        (e["at"], e["service"], e["action"], customers.get(e["object_id"], e["object_id"]), e["details"])
        for e in entries
        if e["actor"] == VENDOR
    ]


def brief(events: list[tuple[str, str, str, str, dict[str, Any]]]) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """Each event with only the figures the hand-made list names."""
    wanted = {(e[0], e[2], e[3]): e[4].keys() for e in expected_events()}
    return [
        (at, svc, action, obj, {k: d.get(k) for k in wanted.get((at, action, obj), ())})
        for at, svc, action, obj, d in events
    ]


@pytest.fixture
def partner(make_world: Any) -> World:
    return make_world(programme="xsp", now=START)


def test_SIM_CLOCK_1_KORM_YEAR_4_KSS_RENEW_1_KSS_PAUSE_1_KSS_STOP_1_one_jump_runs_a_year_in_date_order(
    partner: World,
) -> None:
    kss = set_up(partner)
    move(partner, END)
    events = vendor_events(partner)
    assert brief(events) == expected_events()
    assert len(events) == 12 + 12 + 3 + 11 + 9 + 1
    ats = [e[0] for e in events]
    assert ats == sorted(ats)  # one date order across services, as the log's ids run
    # Full figures of a closing, a bill and an anniversary.
    closings = {(e[2], e[3]): e[4] for e in events}
    assert closings[("statement_closed", "2026-01")] == {
        "period": "2026-01",
        "currency": "EUR",
        "lines": 2,
        "gross": "611.94",
        "discount": "0.00",
        "amount": "611.94",
    }
    assert closings[("bill_closed", "2026-04")] == {
        "period": "2026-04",
        "billing_period": "calendar_month",
        "currency": "EUR",
        "lines": 3,
        "customers": 3,
        "gross": "57.81",
        "discount": "0.00",
        "amount": "57.81",
    }
    assert closings[("anniversary", "yearly")] == {
        "anniversary": "2027-01-15",
        "year": 1,
        "sku": "KESB-SELECT-YEARLY-20-49",
        "quantity": 20,
        "unit_price": "28.20",
        "gross": "564.00",
        "discount_percent": "0.00",
        "discount": "0.00",
        "amount": "564.00",
        "until": "2028-01-15",
    }
    # The state the events left: the pause is over, the cancel took effect, the trial is over.
    assert (kss.info("paused").status, kss.info("paused").status_change_time) == ("Started", T("2026-04-10"))
    assert (kss.info("cancelled").status, kss.info("cancelled").status_change_time) == (
        "SoftCancelled",
        T("2026-07-01"),
    )
    assert kss.info("trial").status == "Started"


def test_SIM_CLOCK_1_many_small_steps_give_the_same_events_as_one_jump(make_world: Any) -> None:
    jump, steps = make_world(programme="xsp", now=START), make_world(programme="xsp", now=START)
    set_up(jump)
    set_up(steps)
    move(jump, END)
    at = START
    # Odd steps of 4 days 7 hours, some landing exactly on an event (00:00 of a first, a pause end).
    stops = {
        dt.datetime(2026, 3, 1, tzinfo=UTC),
        dt.datetime(2026, 4, 10, tzinfo=UTC),
        dt.datetime(2026, 7, 1, tzinfo=UTC),
    }
    while at < END:
        following = min([at + dt.timedelta(days=4, hours=7), END] + [s for s in stops if s > at])
        move(steps, following)
        at = following
    assert vendor_events(steps) == vendor_events(jump)
    assert brief(vendor_events(steps)) == expected_events()


def test_SIM_CLOCK_1_clocks_never_go_back_but_a_reset_replays_the_same_events(partner: World) -> None:
    set_up(partner)
    move(partner, END)
    first = vendor_events(partner)
    with pytest.raises(Problem) as info:
        move(partner, END - dt.timedelta(seconds=1))
    assert (info.value.code, info.value.rule) == ("CLOCK_BACKWARDS", "SIM-CLOCK-1")
    move(partner, END)  # standing still: nothing falls due again
    assert vendor_events(partner) == first
    with partner.store.begin() as conn:
        assert reset_partner(conn, partner.partner_id, SERVICES.resets).now == START
    assert vendor_events(partner) == []
    set_up(partner)
    move(partner, END)
    assert vendor_events(partner) == first  # the same events, once each


def test_SIM_CLOCK_1_closings_happen_once_even_if_their_window_is_seen_again(partner: World) -> None:
    set_up(partner)
    move(partner, END)
    before = vendor_events(partner)
    with partner.store.begin() as conn:
        clock = read_clock(conn, partner.partner_id)
        window = Window(partner.partner_id, clock.at(START), clock, partner.ctx(conn).profile)
        closings = [due for due in due_events(conn, window, SERVICES.due_sources) if due.rank == CLOSE]
        assert len(closings) == 24
        for due in closings:
            due.apply()
    assert vendor_events(partner) == before


def test_SIM_CLOCK_1_due_events_fall_at_midnight_in_the_partners_zone(make_world: Any) -> None:
    berlin = make_world(programme="xsp", timezone="Europe/Berlin", now=START)
    berlin.call(korm.order, Order("payg", "KESB-SELECT-PAYG-20-49", 31))
    berlin.call(korm.order, Order("yearly", "KESB-SELECT-YEARLY-20-49", 20))
    move(berlin, END)
    found = [(e[0], e[2], e[3]) for e in vendor_events(berlin)]
    # 1 February 00:00 in Berlin (UTC+1) is 31 January 23:00 UTC; 1 April 00:00 (summer time, UTC+2) 31 March 22:00.
    assert found[0] == ("2026-01-31T23:00:00Z", "statement_closed", "2026-01")
    assert ("2026-03-31T22:00:00Z", "statement_closed", "2026-03") in found
    assert found[-1] == ("2027-01-14T23:00:00Z", "anniversary", "yearly")


def test_KSS_PERIOD_1_a_30_day_bill_closes_when_its_last_period_is_over(make_world: Any) -> None:
    world = make_world(programme="xsp", billing_period="30_days", now=dt.datetime(2026, 1, 31, 9, tzinfo=UTC))
    kss = Kss(world)
    kss.ok(act("s1", start="2026-01-31T09:00", product="KIS", count=10))
    kss.at("2026-03-01T23:59")
    assert [e for e in vendor_events(world) if e[2] == "bill_closed"] == []
    # The January bill holds the period 31 January .. 2 March (30 days): final at 2 March 00:00, 10 x 2.99.
    kss.at("2026-03-02T00:00")
    closed = [(e[0], e[3], e[4]["amount"]) for e in vendor_events(world) if e[2] == "bill_closed"]
    assert closed == [("2026-03-02T00:00:00Z", "2026-01", "29.90")]


def test_KORM_YEAR_4_no_anniversary_after_a_stop(partner: World) -> None:
    sub = partner.call(korm.order, Order("yearly", "KESB-SELECT-YEARLY-20-49", 20))
    partner.go_to("2026-06-01")
    partner.call(korm.stop, sub["id"])
    move(partner, END + dt.timedelta(days=365))
    assert [e for e in vendor_events(partner) if e[2] == "anniversary"] == []
    # Statements close while they have a line: January (the year's fee) only; the stop refunds nothing.
    assert [(e[3], e[4]["amount"]) for e in vendor_events(partner) if e[2] == "statement_closed"] == [
        ("2026-01", "564.00"),
    ]
