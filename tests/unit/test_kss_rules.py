"""KSS 3.0 rules, called directly on a real SQLite store (no SOAP). One test per rule ID, named after it.

Default partner: xsp, calendar months, clock 2026-03-01 09:00 UTC. KIS = 2.99 per licence per period.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa

from ksimkit.simulators.core.catalog import load_profile
from ksimkit.simulators.kss import control, handlers, state, views
from ksimkit.simulators.kss.errors import KssCode, KssError
from ksimkit.simulators.kss.model import (
    Activate,
    ChangeLicenseCount,
    ChangeProduct,
    GetDownloadLinks,
    GetInfo,
    HardCancel,
    ItemError,
    ItemResult,
    Pause,
    Renew,
    Resume,
    SoftCancel,
    UsageInfo,
)
from ksimkit.simulators.kss.tables import code_pools, history, transactions
from ksimkit.simulators.services import default_services
from tests.unit.conftest import Kss, T, act

SERVICES = default_services()  # what a clock move runs and a reset clears, as an app would

CODE_PATTERN = r"^[A-Z0-9]{5}(-[A-Z0-9]{5}){3}$"


def history_events(kss: Kss, sid: str, source: str | None = None) -> list[tuple[str, str, str]]:
    return [
        (e["effective"], e["source"], e["event"])
        for e in kss.sub(sid)["history"]
        if source is None or e["source"] == source
    ]


# ---------------------------------------------------------------- KSS-CODE-1, KSS-QTY-1


def test_KSS_CODE_1_one_code_for_life(kss: Kss) -> None:
    code = kss.ok(act("s1")).activation_code
    assert code is not None and re.match(CODE_PATTERN, code)
    kss.go_to("2026-03-05")
    assert kss.ok(ChangeLicenseCount(1, "s1", 12)).activation_code == code
    assert kss.ok(ChangeProduct(2, "s1", "KTS")).activation_code == code
    kss.ok(SoftCancel(3, "s1", T("2026-04-01")))
    kss.go_to("2026-04-10")
    kss.ok(Renew(4, "s1", None))  # reactivation of a soft-cancelled subscriber
    kss.ok(HardCancel(5, "s1", T("2026-04-10T09:00")))
    assert kss.ok(act("s1", start="2026-04-10T09:00", product="KIS", count=3)).activation_code == code
    info = kss.info("s1")
    assert (info.activation_code, info.status, info.product_id, info.license_count) == (code, "Started", "KIS", 3)
    # A different subscriber always gets a different code.
    assert kss.ok(act("s2")).activation_code != code


@pytest.mark.parametrize("cancel_first", [True, False], ids=["cancel-first", "activate-first"])
def test_KSS_CODE_1_licence_change_by_hard_cancel_and_activate_in_one_container(kss: Kss, cancel_first: bool) -> None:
    """In either wire order (a client sending lists per kind follows its WSDL's order): one licence change, never
    a stop; the code stays, the subscription never leaves Started, and it is billed as ChangeLicenseCount."""
    code = kss.ok(act("s1", count=10)).activation_code
    kss.go_to("2026-03-20")
    cancel, activation = HardCancel(1, "s1", T("2026-03-20T09:00")), act("s1", start="2026-03-20T09:00", count=25)
    answer = kss.send(*((cancel, activation) if cancel_first else (activation, cancel)))
    assert answer.errors == []
    wire = [("HardCancel", None), ("Activate", code)]
    assert [(r.kind, r.activation_code) for r in answer.results] == (wire if cancel_first else wire[::-1])
    info = kss.info("s1")
    assert (info.status, info.license_count, info.activation_code) == ("Started", 25, code)
    assert info.status_change_time == T("2026-03-01")  # never stopped
    assert kss.ok(GetInfo(2, "s1", ("SubscriptionUsage",))).usage == UsageInfo(None)  # no device used it yet
    # Paid without a gap; March is charged at the maximum, 25 x 2.99 = 74.75.
    assert kss.lines("2026-03") == [("s1", 31, 25, "74.75")]
    # A reduction the same way costs from the next period (KSS-QTY-3), as ChangeLicenseCount's does.
    kss.go_to("2026-03-21")
    kss.send(act("s1", start="2026-03-21T09:00", count=5), HardCancel(3, "s1", T("2026-03-21T09:00")))
    assert kss.info("s1").license_count == 5
    assert kss.lines("2026-03") == [("s1", 31, 25, "74.75")]


def test_KSS_QTY_1_count_changes_at_any_time_within_the_term(kss: Kss) -> None:
    code = kss.ok(act("s1", count=10)).activation_code
    assert kss.ok(ChangeLicenseCount(1, "s1", 30)).activation_code == code
    assert kss.ok(ChangeLicenseCount(2, "s1", 2)).activation_code == code
    kss.go_to("2026-03-10")
    kss.ok(Pause(3, "s1", T("2026-03-10T09:00")))
    kss.ok(ChangeLicenseCount(4, "s1", 4))  # paused is still within the term
    kss.ok(Resume(5, "s1"))
    kss.ok(SoftCancel(6, "s1", T("2026-04-01")))
    kss.ok(ChangeLicenseCount(7, "s1", 5))  # soft-cancelled, not yet ended
    assert kss.code(ChangeLicenseCount(8, "s1", 5)) == 707  # nothing to change
    info = kss.info("s1")
    assert (info.license_count, info.activation_code, info.start_time) == (5, code, T("2026-03-01"))
    kss.go_to("2026-04-02")
    assert kss.code(ChangeLicenseCount(9, "s1", 6)) == 105  # the term is over
    # Before the start: not yet activated (on a running clock, which reaches a StartTime ahead by itself).
    kss.world.running = True
    kss.ok(act("s2", start="2026-04-02T09:05"))
    assert kss.code(ChangeLicenseCount(10, "s2", 6)) == 2
    # No new activation was ever made: one activate in the history of s1.
    assert [e for _, _, e in history_events(kss, "s1")].count("activate") == 1


# ---------------------------------------------------------------- KSS-RENEW-1, KSS-PAUSE-1, KSS-STOP-1


def test_KSS_RENEW_1_renews_each_period_unless_paused_or_cancelled(kss: Kss) -> None:
    kss.ok(act("open"))
    kss.ok(act("paused"))
    kss.ok(act("fixed", end="2026-05-15"))
    kss.ok(act("cancelled"))
    kss.go_to("2026-03-10")
    kss.ok(Pause(1, "paused", T("2026-03-10T09:00")))
    kss.ok(SoftCancel(2, "cancelled", T("2026-04-01")))
    kss.go_to("2026-06-15")
    renewals = [e for e in history_events(kss, "open", "vendor") if e[2] == "renew"]
    assert renewals == [
        ("2026-04-01T00:00:00Z", "vendor", "renew"),
        ("2026-05-01T00:00:00Z", "vendor", "renew"),
        ("2026-06-01T00:00:00Z", "vendor", "renew"),
    ]
    for sid in ("paused", "fixed", "cancelled"):
        assert [e for e in history_events(kss, sid, "vendor") if e[2] == "renew"] == [], sid
    # The fixed term ends at its EndTime instead.
    assert history_events(kss, "fixed", "vendor") == [("2026-05-15T00:00:00Z", "vendor", "end")]
    vendor = [(e["action"], e["object_id"], e["at"]) for e in kss.audit() if e["actor"] == "ksim-vendor"]
    assert [v for v in vendor if v[0] != "bill_closed"] == [
        ("end", "cancelled", "2026-04-01T00:00:00Z"),  # the soft cancel takes effect (KSS-STOP-1)
        ("renew", "open", "2026-04-01T00:00:00Z"),
        ("renew", "open", "2026-05-01T00:00:00Z"),
        ("end", "fixed", "2026-05-15T00:00:00Z"),
        ("renew", "open", "2026-06-01T00:00:00Z"),
    ]
    # Each renewed period is charged: 10 x 2.99 = 29.90.
    assert kss.lines("2026-06") == [("open", 30, 10, "29.90")]


def test_KSS_PAUSE_1_pause_for_a_term_resumes_by_itself_or_on_request(kss: Kss) -> None:
    kss.ok(act("s1"))
    kss.ok(act("s2"))
    kss.go_to("2026-03-20")
    kss.ok(Pause(1, "s1", T("2026-03-20T09:00"), resume_time=T("2026-06-10")))
    kss.ok(Pause(2, "s2", T("2026-03-20T09:00")))
    info = kss.info("s1")
    assert (info.status, info.status_change_time, info.pause_end_time) == (
        "Paused",
        T("2026-03-20T09:00"),
        T("2026-06-10"),
    )
    assert kss.info("s2").pause_end_time is None
    kss.go_to("2026-04-01")
    kss.ok(Resume(3, "s2"))  # earlier, on request
    assert (kss.info("s2").status, kss.info("s2").status_change_time) == ("Started", T("2026-04-01T09:00"))
    kss.go_to("2026-06-09")
    assert kss.info("s1").status == "Paused"
    kss.go_to("2026-06-10")
    info = kss.info("s1")
    assert (info.status, info.status_change_time, info.pause_end_time) == ("Started", T("2026-06-10"), None)
    # March has paid days (1-20), April and May lie wholly in the pause, June is paid from the 10th.
    assert kss.lines("2026-03") == [("s1", 20, 10, "29.90"), ("s2", 20, 10, "29.90")]
    assert kss.lines("2026-04") == [("s2", 30, 10, "29.90")]
    assert kss.lines("2026-05") == [("s2", 31, 10, "29.90")]
    assert kss.lines("2026-06") == [("s1", 21, 10, "29.90"), ("s2", 30, 10, "29.90")]


def test_KSS_STOP_1_soft_cancel_at_month_end_renew_hard_cancel_activate(kss: Kss) -> None:
    code = kss.ok(act("s1")).activation_code
    kss.go_to("2026-04-10")
    kss.ok(SoftCancel(1, "s1", T("2026-05-01")))  # stopped at the end of April
    info = kss.info("s1")
    assert (info.status, info.status_change_time, info.end_time) == (
        "SoftCancelled",
        T("2026-04-10T09:00"),
        T("2026-05-01"),
    )
    # April, the last month, is still charged; May is not.
    assert kss.lines("2026-04") == [("s1", 30, 10, "29.90")]
    assert kss.lines("2026-05") == []
    kss.go_to("2026-05-20")
    assert kss.info("s1").status == "SoftCancelled"
    kss.ok(Renew(2, "s1", None))  # reactivated, same code
    info = kss.info("s1")
    assert (info.status, info.end_time, info.activation_code) == ("Started", None, code)
    assert kss.lines("2026-05") == [("s1", 12, 10, "29.90")]  # 20-31 May
    kss.ok(HardCancel(3, "s1", T("2026-05-20T09:00")))
    for item in [
        Renew(4, "s1", None),
        SoftCancel(5, "s1", T("2026-05-21")),
        HardCancel(6, "s1", T("2026-05-20T09:00")),
        Pause(7, "s1", T("2026-05-20T09:00")),
        Resume(8, "s1"),
        GetDownloadLinks(9, "s1", "en", "Windows"),
        ChangeLicenseCount(10, "s1", 3),
        ChangeProduct(11, "s1", "KTS"),
    ]:
        assert kss.code(item) == 4, item
    info = kss.info("s1")  # GetInfo still answers
    assert (info.status, info.end_time) == ("HardCancelled", T("2026-05-20T09:00"))
    assert kss.ok(act("s1", start="2026-05-20T09:00", count=2)).activation_code == code
    assert (kss.info("s1").status, kss.info("s1").license_count) == ("Started", 2)


# ---------------------------------------------------------------- KSS-TRIAL-1/2


def test_KSS_TRIAL_1_trial_caps_per_programme(make_kss: Any) -> None:
    xsp = make_kss()
    # 2 calendar months from 1 March = 1 March .. 1 May = 61 days.
    assert handlers.add_months(dt.date(2026, 3, 1), 2) == dt.date(2026, 5, 1)
    err = xsp.one(act("a", trial_days=62))
    assert isinstance(err, ItemError) and err.code == 701 and "KSS-TRIAL-1" in err.message
    xsp.ok(act("b", trial_days=61))
    assert xsp.info("b").trial_end_time == T("2026-05-01")
    assert xsp.count_subscriptions() == 1
    for programme in ("reseller", "msp"):
        partner = make_kss(programme=programme)
        assert partner.code(act("a", product="KSOS", trial_days=31)) == 701
        partner.ok(act("b", product="KSOS", trial_days=30))
        assert partner.info("b").trial_end_time == T("2026-03-31")


def test_KSS_TRIAL_2_trial_once_per_subscription(kss: Kss) -> None:
    kss.ok(act("s1", trial_days=30))
    kss.go_to("2026-03-10")
    kss.ok(ChangeProduct(1, "s1", "KTS"))  # the trial runs on; no new one
    assert kss.info("s1").trial_end_time == T("2026-03-31")
    kss.ok(HardCancel(2, "s1", T("2026-03-10T09:00")))
    err = kss.one(act("s1", start="2026-03-10T09:00", trial_days=10))
    assert isinstance(err, ItemError) and err.code == 702 and "KSS-TRIAL-2" in err.message
    kss.ok(act("s1", start="2026-03-10T09:00", product="KTS"))
    assert kss.info("s1").trial_end_time == T("2026-03-31")  # the first trial runs its course
    # Trial days are not charged: only 31 March is paid, at 10 x 3.99 = 39.90.
    assert kss.lines("2026-03") == [("s1", 1, 10, "39.90")]


# ---------------------------------------------------------------- KSS-PREPAID-1, KSS-AUDIT-1, KSS-MSP-2, KSS-PROD-1


def test_KSS_PREPAID_1_prepaid_licences_block_a_subscription_to_that_product(make_kss: Any) -> None:
    kss = make_kss(programme="reseller")
    seeded = kss.call(control.seed_prepaid, "c1", "KSOS", 5, dt.date(2026, 4, 1))
    assert {k: seeded[k] for k in ("customer_id", "product_id", "licence_count", "expires_on", "active")} == {
        "customer_id": "c1",
        "product_id": "KSOS",
        "licence_count": 5,
        "expires_on": "2026-04-01",
        "active": True,
    }
    err = kss.one(act("s1", product="KSOS", customer_id="c1"))
    assert isinstance(err, ItemError) and err.code == 703 and "KSS-PREPAID-1" in err.message
    kss.ok(act("s2", product="KSOS", customer_id="c2"))  # another customer
    kss.ok(act("s3", product="KESB-SELECT", customer_id="c1"))  # another product
    assert kss.code(ChangeProduct(1, "s3", "KSOS")) == 703
    assert kss.count_subscriptions() == 2
    kss.go_to("2026-04-01")  # phased out: expires_on is no longer after today
    kss.ok(act("s1", start="2026-04-01", product="KSOS", customer_id="c1"))
    kss.ok(ChangeProduct(2, "s3", "KSOS"))


def test_KSS_AUDIT_1_every_change_recorded_with_who_and_when(kss: Kss) -> None:
    kss.ok(act("s1"), actor="alice")
    kss.go_to("2026-03-05")
    kss.ok(ChangeLicenseCount(1, "s1", 12), actor="bob")
    kss.ok(GetInfo(2, "s1"), actor="bob")  # a read is not a modification
    kss.code(ChangeLicenseCount(3, "s1", 12), actor="bob")  # neither is a refusal
    kss.ok(Pause(4, "s1", T("2026-03-05T09:00")), actor="carol")
    found = [(e["action"], e["actor"], e["object_id"], e["at"]) for e in kss.audit()]
    assert found == [
        ("activate", "alice", "s1", "2026-03-01T09:00:00Z"),
        ("change_license_count", "bob", "s1", "2026-03-05T09:00:00Z"),
        ("pause", "carol", "s1", "2026-03-05T09:00:00Z"),
    ]
    entry = kss.audit()[1]
    assert entry["service"] == "kss" and entry["details"]["license_count"] == 12


def test_KSS_MSP_2_only_registered_msp_partners_order_msp_subscriptions(make_kss: Any) -> None:
    unregistered = make_kss(programme="msp", msp_registered=False)
    err = unregistered.one(act("s1", product="KESB-SELECT"))
    assert isinstance(err, ItemError) and err.code == 704 and "KSS-MSP-2" in err.message
    assert unregistered.count_subscriptions() == 0
    make_kss(programme="msp").ok(act("s1", product="KESB-SELECT"))
    make_kss(programme="reseller", msp_registered=False).ok(act("s1", product="KESB-SELECT"))


def test_KSS_PROD_1_closed_catalog(make_kss: Any) -> None:
    xsp, reseller = make_kss(), make_kss(programme="reseller")
    err = xsp.one(act("s1", product="NOPE"))
    assert isinstance(err, ItemError) and err.code == 9 and "KSS-PROD-1" in err.message
    assert xsp.code(act("s1", product="KESB-SELECT")) == 705  # business product, xsp partner
    assert reseller.code(act("s1", product="KIS")) == 705  # consumer product, reseller partner
    xsp.ok(act("s1", product="KIS"))
    assert xsp.code(ChangeProduct(1, "s1", "NOPE")) == 9
    assert xsp.code(ChangeProduct(2, "s1", "KESC")) == 705
    assert xsp.code(ChangeProduct(3, "s1", "KIS")) == 707
    products = load_profile().kss_products
    business = {p.name for p in products.values() if "reseller" in p.programmes}
    consumer = {p.name for p in products.values() if "xsp" in p.programmes}
    assert len(business) == 14 and len(products) == 23
    assert {
        "Kaspersky Endpoint Security for Business Select",
        "Kaspersky Endpoint Security for Business Advanced",
        "Kaspersky Endpoint Security Cloud, User",
        "Kaspersky Endpoint Security Cloud Plus, User",
        "Kaspersky Security for Office 365",
        "Kaspersky Security for Mail Server",
        "Kaspersky Security for Internet Gateway",
        "Kaspersky Hybrid Cloud Security, Desktop",
        "Kaspersky Hybrid Cloud Security, Server",
        "Kaspersky Hybrid Cloud Security, CPU",
        "Kaspersky Hybrid Cloud Security Enterprise, Server",
        "Kaspersky Hybrid Cloud Security Enterprise, CPU",
        "Kaspersky Small Office Security",
        "Kaspersky Automated Security Awareness Platform",
    } == business
    assert {
        "Kaspersky Anti-Virus",
        "Kaspersky Internet Security",
        "Kaspersky Total Security",
        "Kaspersky Internet Security for Android",
        "Kaspersky Safe Kids",
        "Kaspersky Small Office Security",
        "Kaspersky Secure Connection",
    } <= consumer


# ---------------------------------------------------------------- SIM-IDEM-1, SIM-AUTH-1, SIM-CLOCK-1


def test_SIM_IDEM_1_repeated_transaction_id_is_refused_with_6_and_changes_nothing(kss: Kss) -> None:
    first = kss.send(act("s1"), txn="20260301090000")
    assert first.transaction_error is None and len(first.results) == 1
    before = (kss.count_subscriptions(), len(kss.audit()))
    again = kss.send(act("s2"), ChangeLicenseCount(1, "s1", 99), txn="20260301090000")
    assert again.transaction_id == "20260301090000"
    assert again.transaction_error is not None and again.transaction_error.code == 6
    assert (again.results, again.errors) == ([], [])
    assert (kss.count_subscriptions(), len(kss.audit())) == before
    assert kss.info("s1").license_count == 10
    # A container whose every unit failed was still received: its TransactionId is used up.
    failed = kss.send(GetInfo(1, "nobody"), txn="T-failed")
    assert [e.code for e in failed.errors] == [5]
    assert kss.send(act("s3"), txn="T-failed").transaction_error.code == 6  # type: ignore[union-attr]
    # A refused container stores nothing: a repeated UnitId (708) leaves its TransactionId free.
    dup = kss.send(act("s4"), GetInfo(7, "s1"), GetInfo(7, "s1"), txn="T-dup")
    assert dup.transaction_error is not None and dup.transaction_error.code == 708
    assert kss.count_subscriptions() == 1
    assert kss.send(act("s4"), txn="T-dup").transaction_error is None


def test_SIM_AUTH_1_another_partners_subscriber_is_unknown(make_kss: Any) -> None:
    alice, bob = make_kss(), make_kss()
    code = alice.ok(act("s1")).activation_code
    for item in [
        GetInfo(1, "s1"),
        ChangeLicenseCount(2, "s1", 3),
        Renew(3, "s1", None),
        SoftCancel(4, "s1", T("2026-04-01")),
        HardCancel(5, "s1", T("2026-03-01T09:00")),
        Pause(6, "s1", T("2026-03-01T09:00")),
        Resume(7, "s1"),
        GetDownloadLinks(8, "s1", "en", "Windows"),
        ChangeProduct(9, "s1", "KTS"),
    ]:
        assert bob.code(item) == 5, item
    # The same SubscriberId is a separate subscription for bob, with its own code.
    assert bob.ok(act("s1", count=1)).activation_code != code
    assert alice.info("s1").license_count == 10 and bob.info("s1").license_count == 1
    assert [line[2] for line in bob.lines("2026-03")] == [1]
    assert alice.call(views.get_subscription, "s1")["license_count"] == 10
    # A TransactionId is per partner.
    assert alice.send(GetInfo(1, "s1"), txn="same").transaction_error is None
    assert bob.send(GetInfo(1, "s1"), txn="same").transaction_error is None


def test_SIM_CLOCK_1_status_moves_with_the_partner_clock(make_kss: Any) -> None:
    kss, other = make_kss(), make_kss()
    kss.world.running = other.world.running = True  # a frozen clock would start "later" at once (below)
    kss.ok(act("later", start="2026-03-01T09:05"))  # a few minutes ahead: allowed, not started yet
    kss.ok(act("fixed", end="2026-04-05"))
    kss.ok(act("paused"))
    kss.ok(Pause(1, "paused", T("2026-03-01T09:00"), resume_time=T("2026-03-01T12:00")))
    other.ok(act("later", start="2026-03-01T09:05"))
    assert kss.info("later").status == "NotStarted"
    assert kss.info("later").status_change_time == T("2026-03-01T09:00")
    kss.at("2026-03-01T10:00")
    info = kss.info("later")
    assert (info.status, info.status_change_time) == ("Started", T("2026-03-01T09:05"))
    assert kss.info("paused").status == "Paused"
    assert other.info("later").status == "NotStarted"  # its own clock did not move
    kss.at("2026-03-01T12:00")
    assert (kss.info("paused").status, kss.info("paused").status_change_time) == ("Started", T("2026-03-01T12:00"))
    kss.at("2026-04-04T23:59")
    assert kss.info("fixed").status == "Started"
    kss.go_to("2026-04-05")
    info = kss.info("fixed")
    assert (info.status, info.status_change_time) == ("SoftCancelled", T("2026-04-05"))
    assert history_events(kss, "later", "vendor") == [
        ("2026-03-01T09:05:00Z", "vendor", "start"),
        ("2026-04-01T00:00:00Z", "vendor", "renew"),
    ]


# ---------------------------------------------------------------- containers


def test_partial_success_within_one_container(kss: Kss) -> None:
    answer = kss.send(
        Activate(1, "s1", T("2026-03-01"), None, "KIS", 10),
        Activate(2, "s2", T("2026-03-01"), None, "NOPE", 10),
        ChangeLicenseCount(3, "s1", 20),  # sees unit 1's subscription
        GetInfo(4, "nobody"),
        Activate(5, "s1", T("2026-03-01"), None, "KIS", 10),
        GetInfo(6, "s1", ("Subscription", "SubscriptionUsage")),
    )
    assert answer.transaction_error is None
    assert [(r.kind, r.unit_id) for r in answer.results] == [("Activate", 1), ("ChangeLicenseCount", 3), ("GetInfo", 6)]
    assert [(e.kind, e.unit_id, e.subscriber_id, e.code) for e in answer.errors] == [
        ("Activate", 2, "s2", 9),
        ("GetInfo", 4, "nobody", 5),
        ("Activate", 5, "s1", 1),
    ]
    got = answer.results[2]
    assert got.subscription is not None and got.subscription.license_count == 20
    assert got.usage == UsageInfo(None)  # no device has used the code
    assert answer.results[0].activation_code == got.subscription.activation_code
    assert kss.count_subscriptions() == 1


def test_a_refused_unit_leaves_no_partial_write(kss: Kss, monkeypatch: pytest.MonkeyPatch) -> None:
    kss.call(control.set_code_pool, 5)

    def broken(*_: Any) -> str:  # fails after the pool was decremented
        raise KssError(KssCode.CODE_POOL_EMPTY, "pool exhausted midway")

    monkeypatch.setattr(state, "issue_code", broken)
    answer = kss.send(act("s1"), GetInfo(2, "s0"))
    assert [e.code for e in answer.errors] == [8, 5]
    with kss.world.store.begin() as conn:
        remaining = conn.execute(sa.select(code_pools.c.remaining)).scalar_one()
        entries = conn.execute(sa.select(sa.func.count()).select_from(history)).scalar_one()
        stored = conn.execute(sa.select(transactions.c.units)).scalar_one()
    assert (remaining, entries, stored) == (5, 0, 2)
    assert kss.count_subscriptions() == 0


def test_get_download_links_are_deterministic(kss: Kss) -> None:
    kss.ok(act("s1", product="KTS"))
    result = kss.ok(GetDownloadLinks(1, "s1", "en", "macOS", alphabet="Latin", region="EU", rebranding_code="RB1"))
    assert result.platform == "macOS"
    [link] = result.links
    assert link.url == "https://downloads.ksim.invalid/KTS/macOS/en/setup?rebranding=RB1"
    assert (link.application_name, link.language, link.alphabet, link.region) == (
        "Kaspersky Total Security",
        "en",
        "Latin",
        "EU",
    )
    assert kss.code(GetDownloadLinks(2, "s1", "en", "Amiga")) == 602


def test_get_download_links_escape_the_partners_text(kss: Kss) -> None:
    """Found by the SOAP fuzzer: a RebrandingCode of "%" made a Url that is no xs:anyURI."""
    kss.ok(act("s1", product="KTS"))
    [link] = kss.ok(GetDownloadLinks(1, "s1", "pt br/ü", "Windows", rebranding_code="% &x=1")).links
    assert link.url == "https://downloads.ksim.invalid/KTS/Windows/pt%20br%2F%C3%BC/setup?rebranding=%25+%26x%3D1"
    assert link.language == "pt br/ü" and link.rebranding_code == "% &x=1"


# ---------------------------------------------------------------- every error code


def test_error_codes_of_the_public_service(kss: Kss) -> None:
    kss.world.running = True  # "soon" stays NotStarted (a frozen clock starts it at once: test_SIM_CLOCK_1_...)
    kss.ok(act("open"))
    kss.ok(act("fixed", end="2026-06-01"))
    kss.ok(act("soon", start="2026-03-01T09:05"))
    kss.ok(act("paused"))
    kss.ok(Pause(1, "paused", T("2026-03-01T09:00")))
    kss.ok(act("soft"))
    kss.ok(SoftCancel(2, "soft", T("2026-04-01")))
    kss.ok(act("hard"))
    kss.ok(HardCancel(3, "hard", T("2026-03-01T09:00")))
    cases: list[tuple[Any, int]] = [
        (act("open"), 1),  # already activated
        (Renew(10, "soon", None), 2),  # not yet activated
        (Pause(11, "soon", T("2026-03-01T09:00")), 2),
        (Renew(12, "fixed", T("2026-05-01")), 3),  # earlier than the current EndTime
        (Renew(13, "soft", T("2026-03-20")), 3),
        (Renew(14, "hard", None), 4),
        (GetInfo(15, "ghost"), 5),
        (act("new", product="KXX"), 9),
        (act("new", end="2026-03-28"), 101),  # 27 days
        (act("new", start="2026-03-01T09:11"), 103),  # 11 minutes ahead, tolerance 10
        (SoftCancel(16, "soft", T("2026-04-01")), 105),
        (Pause(17, "soft", T("2026-03-01T09:00")), 105),
        (Renew(18, "open", None), 202),
        (Renew(19, "paused", None), 204),
        (SoftCancel(20, "paused", T("2026-04-01")), 303),
        (SoftCancel(21, "open", T("2026-02-14T08:59")), 304),  # more than 14 days back
        (HardCancel(22, "open", T("2026-02-14T08:59")), 304),
        (Pause(23, "fixed", T("2026-03-01T09:00")), 401),
        (Pause(24, "paused", T("2026-03-01T09:00")), 402),
        (Resume(25, "open"), 501),
        (act("new", start="2007-12-31T23:00"), 602),  # before 2008
        (act("new", start="2026-03-01", end="2026-02-01"), 602),  # EndTime before StartTime
        (act("new", count=0), 602),
        (SoftCancel(26, "open", T("2026-02-28")), 602),  # before the StartTime
        (Pause(27, "open", T("2026-02-28")), 602),
        (GetInfo(28, "open", ("Everything",)), 602),
    ]
    for item, code in cases:
        assert kss.code(item) == code, item
    # 8: the provider's code pool is empty (a limit set through the control plane).
    assert kss.call(control.set_code_pool, 1) == {"remaining": 1}
    kss.ok(act("last"))
    assert kss.code(act("one-too-many")) == 8
    kss.call(control.set_code_pool, None)
    kss.ok(act("one-too-many"))
    assert kss.code(act("new", activation_type="Tertiary")) == 602
    # 304 is about the past only: exactly 14 days back is fine.
    kss.go_to("2026-03-20")
    kss.ok(SoftCancel(29, "open", T("2026-03-06T09:00")))
    assert kss.info("open").end_time == T("2026-03-06T09:00")
    # 6 is a TransactionError: see test_SIM_IDEM_1.


def test_error_codes_of_ours_7xx(make_kss: Any) -> None:
    kss = make_kss()
    assert kss.code(act("s1", trial_days=62)) == 701
    kss.ok(act("s1", trial_days=5))
    kss.ok(HardCancel(1, "s1", T("2026-03-01T09:00")))
    assert kss.code(act("s1", start="2026-03-01T09:00", trial_days=1)) == 702
    kss.call(control.seed_prepaid, "c1", "KIS", 1, dt.date(2027, 1, 1))
    assert kss.code(act("s2", customer_id="c1")) == 703
    assert make_kss(programme="msp", msp_registered=False).code(act("s3", product="KSOS")) == 704
    assert kss.code(act("s4", product="KSMS")) == 705
    kss.ok(act("s5"))
    assert kss.code(Pause(2, "s5", T("2026-03-01T09:00"), resume_time=T("2026-03-01T08:00"))) == 706
    assert kss.code(ChangeLicenseCount(3, "s5", 10)) == 707
    assert kss.code(ChangeProduct(4, "s5", "KIS")) == 707
    answer = kss.send(GetInfo(9, "s5"), GetInfo(9, "s1"))
    assert answer.transaction_error is not None and answer.transaction_error.code == 708
    assert answer.results == [] and answer.errors == []


def test_clamps_an_accepted_change_is_never_undone(kss: Kss) -> None:
    kss.ok(act("s1"))
    kss.go_to("2026-03-10")
    kss.ok(ChangeLicenseCount(1, "s1", 20))
    # A cancel dated before that change takes effect at the change.
    kss.ok(HardCancel(2, "s1", T("2026-03-05")))
    assert kss.info("s1").end_time == T("2026-03-10T09:00")
    # Paid 1-10 March (not 1-4); the count of 20 was in force for no paid moment, so 10 x 2.99 = 29.90.
    assert kss.lines("2026-03") == [("s1", 10, 10, "29.90")]


def test_control_plane_validation(kss: Kss) -> None:
    from ksimkit.simulators.core.errors import Problem

    for fn, args, code in [
        (control.seed_prepaid, ("c1", "NOPE", 1, dt.date(2027, 1, 1)), "UNKNOWN_PRODUCT"),
        (control.seed_prepaid, ("c1", "KIS", 0, dt.date(2027, 1, 1)), "VALIDATION_ERROR"),
        (control.set_code_pool, (-1,), "VALIDATION_ERROR"),
        (views.get_subscription, ("ghost",), "SUBSCRIBER_NOT_FOUND"),
    ]:
        with pytest.raises(Problem) as info:
            kss.call(fn, *args)
        assert info.value.code == code


def test_reset_deletes_the_partners_kss_data(make_kss: Any) -> None:
    from ksimkit.simulators.core.partners import reset_partner

    kss, other = make_kss(), make_kss()
    kss.ok(act("s1"), txn="T1")
    other.ok(act("s1"))
    kss.call(control.set_code_pool, 3)
    kss.go_to("2026-04-02")
    with kss.world.store.begin() as conn:
        reset_partner(conn, kss.partner_id, SERVICES.resets)
    assert kss.count_subscriptions() == 0 and other.count_subscriptions() == 1
    assert kss.send(act("s1"), txn="T1").transaction_error is None  # TransactionIds forgotten too
    assert isinstance(kss.one(GetInfo(1, "s1")), ItemResult)


def test_KSS_CODE_1_licence_change_with_the_clients_clock_a_little_behind(kss: Kss) -> None:
    code = kss.ok(act("s1", count=3)).activation_code
    kss.at("2026-03-01T09:00:10")
    answer = kss.send(HardCancel(1, "s1", T("2026-03-01T09:00:05")), act("s1", start="2026-03-01T09:00", count=4))
    assert answer.errors == [] and answer.results[1].activation_code == code
    info = kss.info("s1")
    assert (info.status, info.license_count, info.start_time, info.end_time) == ("Started", 4, T("2026-03-01"), None)
    # One licence change, effective now (as ChangeLicenseCount), never a stop: the subscription keeps its start.
    assert history_events(kss, "s1")[-1:] == [("2026-03-01T09:00:10Z", "partner", "licence_change")]
    assert kss.lines("2026-03") == [("s1", 31, 4, "11.96")]  # 4 x 2.99, paid without a gap


def test_KSS_STOP_1_hard_cancel_and_activate_of_a_hard_cancelled_subscription_reactivate_it(kss: Kss) -> None:
    """Not a licence change (nothing live to change): HardCancel first answers 4, the Activate brings it back."""
    code = kss.ok(act("s1", count=3)).activation_code
    kss.ok(HardCancel(1, "s1", T("2026-03-01T09:00")))
    answer = kss.send(act("s1", start="2026-03-01T09:00", count=6), HardCancel(3, "s1", T("2026-03-01T09:00")))
    assert [(e.kind, e.code) for e in answer.errors] == [("HardCancel", 4)]
    assert [(r.kind, r.activation_code) for r in answer.results] == [("Activate", code)]
    assert (kss.info("s1").status, kss.info("s1").license_count) == ("Started", 6)


def test_KSS_CODE_1_a_refused_activate_of_a_licence_change_leaves_the_hard_cancel_alone(kss: Kss) -> None:
    """The pair is not a licence change when the Activate is refused: each unit is then judged on its own, cancel
    first, as ksim documents (docs/kss-wire.md, "The order of items")."""
    kss.ok(act("s1", count=3))
    answer = kss.send(
        act("s1", start="2026-03-01T09:00", product="NOPE", count=6), HardCancel(2, "s1", T("2026-03-01T09:00"))
    )
    assert [(e.kind, e.code) for e in answer.errors] == [("Activate", 9)]
    assert [r.kind for r in answer.results] == ["HardCancel"]
    assert kss.info("s1").status == "HardCancelled"


@pytest.mark.parametrize("first", ["Pause", "Resume"])
def test_SIM_ERR_1_contradictory_items_of_one_subscriber_are_refused_in_either_order(kss: Kss, first: str) -> None:
    """Pause + Resume (and SoftCancel + Renew, SoftCancel + HardCancel) of one SubscriberId in one container: the
    result would depend on their order, so both are refused with 602 and nothing changes."""
    kss.ok(act("s1"))
    pause, resume = Pause(1, "s1", T("2026-03-01T09:00")), Resume(2, "s1")
    answer = kss.send(*((pause, resume) if first == "Pause" else (resume, pause)), GetInfo(3, "s1"))
    assert sorted((e.kind, e.code) for e in answer.errors) == [("Pause", 602), ("Resume", 602)]
    assert all("contradict" in e.message for e in answer.errors)
    assert kss.info("s1").status == "Started"
    answer = kss.send(Renew(4, "s1", None), SoftCancel(5, "s1", T("2026-04-01")))
    assert sorted((e.kind, e.code) for e in answer.errors) == [("Renew", 602), ("SoftCancel", 602)]


@pytest.mark.parametrize("reads_first", [True, False])
def test_KSS_QTY_1_reads_of_a_subscriber_see_every_change_in_the_container(kss: Kss, reads_first: bool) -> None:
    """A client sending lists per kind may put GetInfo before or after the changes: the reads see them either way,
    and an Activate of a new subscriber comes before the changes to it."""
    items = [GetInfo(1, "n1"), ChangeLicenseCount(2, "n1", 7), act("n1", count=2)]
    answer = kss.send(*(items if reads_first else items[::-1]))
    assert answer.errors == []
    assert [r.unit_id for r in answer.results] == (
        [1, 2, items[2].unit_id] if reads_first else [items[2].unit_id, 2, 1]
    )  # answered in request order
    info = next(r for r in answer.results if r.kind == "GetInfo").subscription
    assert info is not None and info.license_count == 7
