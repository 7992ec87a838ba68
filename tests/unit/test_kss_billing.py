"""KSS 3.0 bills and reports, computed by hand in the comments.

Prices (packaged profile, per licence per billing period): KIS 2.99, KTS 3.99, KAV 1.99, KSOS 2.20,
KESB-SELECT 3.00, KSMS 1.50. MSP tiers: from 50 licences 5 %, from 100 10 %.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ksimkit.simulators.core.errors import Problem
from ksimkit.simulators.kss import billing
from ksimkit.simulators.kss.model import ChangeLicenseCount, HardCancel, Pause, SoftCancel
from tests.unit.conftest import Kss, T, act

UTC = dt.UTC


def summary(bill: dict[str, Any]) -> dict[str, Any]:
    return {k: bill[k] for k in ("customers", "volume", "totals")}


def worked_example(kss: Kss) -> None:
    """RULES worked figures: 10 KIS from 1 March, 15 from 20 March, 8 from 5 April."""
    kss.ok(act("s1", start="2026-03-01", count=10))
    kss.go_to("2026-03-20")
    kss.ok(ChangeLicenseCount(1, "s1", 15))


def test_KSS_QTY_2_an_increase_costs_from_the_current_period(kss: Kss) -> None:
    worked_example(kss)
    # March is charged at the new, higher count: 15 x 2.99 = 44.85.
    assert kss.lines("2026-03") == [("s1", 31, 15, "44.85")]
    assert kss.info("s1").max_license_count_this_period == 15


def test_KSS_QTY_3_a_reduction_costs_from_the_next_period(kss: Kss) -> None:
    worked_example(kss)
    kss.go_to("2026-04-05")
    kss.ok(ChangeLicenseCount(2, "s1", 8))
    info = kss.info("s1")
    assert (info.license_count, info.max_license_count_this_period) == (8, 15)
    # April at its maximum, 15 x 2.99 = 44.85; May at 8 x 2.99 = 23.92.
    assert kss.lines("2026-04") == [("s1", 30, 15, "44.85")]
    assert kss.lines("2026-05") == [("s1", 31, 8, "23.92")]
    kss.go_to("2026-05-02")
    assert kss.info("s1").max_license_count_this_period == 8
    line = kss.bill("2026-04")["lines"][0]
    assert line == {
        "customer_id": "s1",
        "subscriber_id": "s1",
        "product_id": "KIS",
        "period_start": "2026-04-01",
        "period_end": "2026-05-01",
        "paid_days": 30,
        "charged_count": 15,
        "unit_price": "2.99",
        "gross": "44.85",
        "discount_percent": "0.00",
        "discount": "0.00",
        "amount": "44.85",
    }


def test_KSS_BILL_0_maximum_count_over_paid_days_only(kss: Kss) -> None:
    kss.ok(act("s1", count=20, trial_days=30))  # trial until 31 March 00:00
    kss.go_to("2026-03-25")
    kss.ok(ChangeLicenseCount(1, "s1", 5))  # still in the trial: the 20 never was in force on a paid day
    assert kss.info("s1").max_license_count_this_period == 5
    # March: one paid day (31st) at 5: 5 x 2.99 = 14.95.
    assert kss.lines("2026-03") == [("s1", 1, 5, "14.95")]
    kss.go_to("2026-04-10")
    kss.ok(Pause(2, "s1", T("2026-04-10T09:00"), resume_time=T("2026-04-25")))
    kss.go_to("2026-04-15")
    kss.ok(ChangeLicenseCount(3, "s1", 40))  # only while paused
    kss.go_to("2026-04-20")
    kss.ok(ChangeLicenseCount(4, "s1", 5))
    kss.go_to("2026-04-26")
    # April: paid 1-10 and 25-30 = 16 days, all at 5 (the 40 fell wholly in the pause): 14.95.
    assert kss.lines("2026-04") == [("s1", 16, 5, "14.95")]
    assert kss.lines("2026-05") == [("s1", 31, 5, "14.95")]


def test_KSS_TRIAL_2_trial_days_are_not_charged(kss: Kss) -> None:
    # RULES worked figure: a 30-day trial from 1 March leaves 31 March paid, so March is charged.
    kss.ok(act("s1", trial_days=30))
    assert kss.lines("2026-03") == [("s1", 1, 10, "29.90")]
    kss.ok(act("s2", trial_days=61))  # the xsp cap: the trial covers March and April
    kss.go_to("2026-05-02")
    assert kss.lines("2026-04") == [("s1", 30, 10, "29.90")]
    assert kss.lines("2026-05") == [("s1", 31, 10, "29.90"), ("s2", 31, 10, "29.90")]


def test_KSS_FREE_1_resellers_first_month_is_free(make_kss: Any) -> None:
    now = dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    for programme in ("reseller", "msp"):
        kss = make_kss(programme=programme, now=now)
        kss.ok(act("s1", start="2026-03-10T09:00", product="KSOS", count=4))
        assert kss.lines("2026-03") == [], programme
        # First settlement for April, at the end of April: 4 x 2.20 = 8.80.
        assert kss.lines("2026-04") == [("s1", 30, 4, "8.80")], programme
        assert kss.info("s1").max_license_count_this_period is None  # March is not charged
        kss.go_to("2026-04-30")
        assert kss.bill("2026-04")["provisional"] is True
        kss.go_to("2026-05-01")
        assert kss.bill("2026-04")["provisional"] is False
    xsp = make_kss(now=now)
    xsp.ok(act("s1", start="2026-03-10T09:00", product="KSOS", count=4))
    assert xsp.lines("2026-03") == [("s1", 22, 4, "8.80")]  # 10-31 March, charged in full


def test_KSS_PERIOD_1_calendar_months(kss: Kss) -> None:
    kss.go_to("2026-03-10")
    kss.ok(act("s1", start="2026-03-10T09:00", count=2))
    [line] = kss.bill("2026-03")["lines"]
    # 1st to last day; 10-31 March paid; a started month is charged in full: 2 x 2.99 = 5.98.
    assert (line["period_start"], line["period_end"], line["paid_days"], line["amount"]) == (
        "2026-03-01",
        "2026-04-01",
        22,
        "5.98",
    )
    assert kss.bill("2026-03")["billing_period"] == "calendar_month"


def test_KSS_PERIOD_1_thirty_days_from_the_paid_start(make_kss: Any) -> None:
    kss = make_kss(billing_period="30_days", now=dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    kss.ok(act("s1", start="2026-03-10T09:00", count=10))
    # Periods: 10 Mar-9 Apr, 9 Apr-9 May, 9 May-8 Jun (end exclusive).
    kss.go_to("2026-04-05")
    kss.ok(ChangeLicenseCount(1, "s1", 12))  # within the first period
    kss.go_to("2026-05-01")
    kss.ok(ChangeLicenseCount(2, "s1", 7))  # within the second period
    kss.ok(act("s2", start="2026-05-01", count=1))  # periods 1-31 May and 31 May-30 June: both start in May
    kss.go_to("2026-06-10")

    def periods(period: str) -> list[tuple[str, str, str, int, int, str]]:
        return [
            (x["subscriber_id"], x["period_start"], x["period_end"], x["paid_days"], x["charged_count"], x["amount"])
            for x in kss.bill(period)["lines"]
        ]

    # 12 x 2.99 = 35.88; 7 x 2.99 = 20.93; 1 x 2.99 = 2.99.
    assert periods("2026-03") == [("s1", "2026-03-10", "2026-04-09", 30, 12, "35.88")]
    assert periods("2026-04") == [("s1", "2026-04-09", "2026-05-09", 30, 12, "35.88")]
    assert periods("2026-05") == [
        ("s1", "2026-05-09", "2026-06-08", 30, 7, "20.93"),
        ("s2", "2026-05-01", "2026-05-31", 30, 1, "2.99"),
        ("s2", "2026-05-31", "2026-06-30", 30, 1, "2.99"),
    ]
    may = kss.bill("2026-05")
    assert (may["billing_period"], may["provisional"], may["totals"]["amount"]) == ("30_days", True, "26.91")
    renewals = [e["effective"] for e in kss.sub("s1")["history"] if e["event"] == "renew"]
    assert renewals == ["2026-04-09T00:00:00Z", "2026-05-09T00:00:00Z", "2026-06-08T00:00:00Z"]
    assert kss.info("s1").max_license_count_this_period == 7  # period 8 Jun-8 Jul


def test_KSS_PERIOD_1_days_are_the_partners_calendar_dates(make_kss: Any) -> None:
    kss = make_kss(timezone="Europe/Berlin", now=dt.datetime(2026, 3, 31, 23, 30, tzinfo=UTC))
    kss.ok(act("s1", start="2026-03-31T23:00"))  # 1 April 01:00 in Berlin
    kss.ok(SoftCancel(1, "s1", T("2026-04-30T22:00")))  # 1 May 00:00 in Berlin: 1 May is not used
    assert kss.lines("2026-03") == []
    assert kss.lines("2026-04") == [("s1", 30, 10, "29.90")]
    assert kss.lines("2026-05") == []


def test_KSS_BILL_1_one_collective_bill_for_all_customers(make_kss: Any) -> None:
    kss, other = make_kss(), make_kss()
    kss.ok(act("a", customer_id="c1", product="KIS", count=10))  # 29.90
    kss.ok(act("b", customer_id="c1", product="KTS", count=2))  # 2 x 3.99 = 7.98
    kss.ok(act("c", customer_id="c2", product="KAV", count=3))  # 3 x 1.99 = 5.97
    other.ok(act("z", customer_id="c1", product="KIS", count=100))
    kss.go_to("2026-04-01")
    bill = kss.bill("2026-03")
    assert (bill["period"], bill["currency"], bill["provisional"], bill["partner_id"]) == (
        "2026-03",
        "EUR",
        False,
        kss.partner_id,
    )
    assert [(x["customer_id"], x["subscriber_id"], x["amount"]) for x in bill["lines"]] == [
        ("c1", "a", "29.90"),
        ("c1", "b", "7.98"),
        ("c2", "c", "5.97"),
    ]
    assert summary(bill) == {
        "customers": [
            {"customer_id": "c1", "lines": 2, "gross": "37.88", "discount": "0.00", "amount": "37.88"},
            {"customer_id": "c2", "lines": 1, "gross": "5.97", "discount": "0.00", "amount": "5.97"},
        ],
        "volume": [],
        "totals": {"gross": "43.85", "discount": "0.00", "amount": "43.85"},
    }
    assert kss.bill("2026-02")["lines"] == []


def test_KSS_REPORT_1_active_subscriptions_per_customer(kss: Kss) -> None:
    codes = {
        sid: kss.ok(act(sid, customer_id=cid, product=p, count=n)).activation_code
        for sid, cid, p, n in [
            ("a", "c1", "KIS", 10),
            ("b", "c1", "KTS", 2),
            ("c", "c2", "KAV", 3),
            ("e", "c3", "KIS", 1),
        ]
    }
    kss.go_to("2026-03-05")
    kss.ok(SoftCancel(1, "b", T("2026-03-15")))
    kss.ok(HardCancel(2, "e", T("2026-03-05T09:00")))
    kss.go_to("2026-03-10")
    kss.ok(Pause(3, "c", T("2026-03-10T09:00")))
    kss.go_to("2026-03-20")
    kss.ok(ChangeLicenseCount(4, "a", 12))
    kss.go_to("2026-04-02")
    codes["d"] = kss.ok(act("d", start="2026-04-02T09:00", customer_id="c2", product="KIS", count=4)).activation_code
    march = kss.report("2026-03")
    assert (march["period"], march["provisional"]) == ("2026-03", False)
    assert march["customers"] == [
        {
            "customer_id": "c1",
            "licences": 14,
            "subscriptions": [
                {
                    "subscriber_id": "a",
                    "product_id": "KIS",
                    "license_count": 12,
                    "status": "Started",
                    "activation_code": codes["a"],
                },
                {
                    "subscriber_id": "b",
                    "product_id": "KTS",
                    "license_count": 2,
                    "status": "SoftCancelled",
                    "activation_code": codes["b"],
                },
            ],
        },
        {
            "customer_id": "c2",
            "licences": 3,
            "subscriptions": [
                {
                    "subscriber_id": "c",
                    "product_id": "KAV",
                    "license_count": 3,
                    "status": "Paused",
                    "activation_code": codes["c"],
                },
            ],
        },
        {
            "customer_id": "c3",
            "licences": 1,
            "subscriptions": [
                {
                    "subscriber_id": "e",
                    "product_id": "KIS",
                    "license_count": 1,
                    "status": "HardCancelled",
                    "activation_code": codes["e"],
                },
            ],
        },
    ]
    assert march["totals"] == {"customers": 3, "subscriptions": 4, "licences": 18}
    april = kss.report("2026-04")
    assert [
        (c["customer_id"], [(s["subscriber_id"], s["status"]) for s in c["subscriptions"]]) for c in april["customers"]
    ] == [
        ("c1", [("a", "Started")]),
        ("c2", [("c", "Paused"), ("d", "Started")]),
    ]
    assert april["provisional"] is True


def test_KSS_MSP_1_volume_discount_across_customers(make_kss: Any) -> None:
    msp = make_kss(programme="msp")
    msp.ok(act("s1", customer_id="c1", product="KESB-SELECT", count=30))
    msp.ok(act("s2", customer_id="c2", product="KESB-SELECT", count=25))
    msp.ok(act("s3", customer_id="c3", product="KSOS", count=10))
    msp.go_to("2026-05-01")
    msp.ok(act("s4", start="2026-05-01", customer_id="c4", product="KESB-SELECT", count=50))
    april = msp.bill("2026-04")
    # KESB-SELECT: 30 + 25 = 55 licences -> 5 %. 30 x 3.00 = 90.00 - 4.50; 25 x 3.00 = 75.00 - 3.75.
    # KSOS: 10 licences -> 0 %: 10 x 2.20 = 22.00.
    assert [
        (x["subscriber_id"], x["gross"], x["discount_percent"], x["discount"], x["amount"]) for x in april["lines"]
    ] == [
        ("s1", "90.00", "5.00", "4.50", "85.50"),
        ("s2", "75.00", "5.00", "3.75", "71.25"),
        ("s3", "22.00", "0.00", "0.00", "22.00"),
    ]
    assert april["volume"] == [
        {"product_id": "KESB-SELECT", "licences": 55, "discount_percent": "5.00"},
        {"product_id": "KSOS", "licences": 10, "discount_percent": "0.00"},
    ]
    assert april["totals"] == {"gross": "187.00", "discount": "8.25", "amount": "178.75"}
    # s4 is free in May (KSS-FREE-1), so it does not count towards May's tier; in June 105 licences -> 10 %.
    assert msp.bill("2026-05")["volume"][0] == {"product_id": "KESB-SELECT", "licences": 55, "discount_percent": "5.00"}
    june = msp.bill("2026-06")
    assert june["volume"][0] == {"product_id": "KESB-SELECT", "licences": 105, "discount_percent": "10.00"}
    # 50 x 3.00 = 150.00 - 15.00 = 135.00; 30 x 3.00 = 90.00 - 9.00 = 81.00.
    assert [(x["subscriber_id"], x["amount"]) for x in june["lines"]] == [
        ("s1", "81.00"),
        ("s2", "67.50"),
        ("s3", "22.00"),
        ("s4", "135.00"),
    ]
    # Not an msp partner: no volume discount even above a tier.
    reseller = make_kss(programme="reseller")
    reseller.ok(act("s1", product="KESB-SELECT", count=60))
    bill = reseller.bill("2026-04")
    assert ([x["discount_percent"] for x in bill["lines"]], bill["volume"]) == (["0.00"], [])


def test_KSS_MSP_1_discount_rounds_half_up_once_per_line(make_kss: Any) -> None:
    msp = make_kss(programme="msp")
    msp.ok(act("s1", product="KSMS", count=39))
    msp.ok(act("s2", product="KSMS", count=11))
    # 50 licences -> 5 %. 39 x 1.50 = 58.50, 5 % = 2.925 -> 2.93 (half-even would give 2.92) -> 55.57.
    # 11 x 1.50 = 16.50, 5 % = 0.825 -> 0.83 (half-even 0.82) -> 15.67.
    bill = msp.bill("2026-04")
    assert [(x["discount"], x["amount"]) for x in bill["lines"]] == [("2.93", "55.57"), ("0.83", "15.67")]
    assert bill["totals"] == {"gross": "75.00", "discount": "3.76", "amount": "71.24"}


def test_bill_and_report_refuse_a_malformed_period(kss: Kss) -> None:
    for fn in (billing.bill, billing.report):
        for period in ("2026-3", "2026-13", "March", ""):
            with pytest.raises(Problem) as info:
                kss.call(fn, period)
            assert info.value.code == "INVALID_PERIOD"
