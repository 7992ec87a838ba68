"""KSS over SOAP on a real socket: zeep clients (from the contract's WSDL and from the server's ?wsdl) and
hand-written XML as real clients send it, against the rules, per partner. Every answer read here is checked
against contracts/kss-upi.xsd (tests/wire/conftest.py)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import pytest
import zeep
from lxml import etree

from tests.wire.conftest import (
    ENDPOINT,
    EXT,
    KSS,
    ROOT,
    SAFE,
    SOAP_ACTION,
    KssPartner,
    q,
    read_answer,
    zeep_call,
    zeep_units,
)

pytestmark = pytest.mark.wire

UTC = dt.UTC
SAMPLES = ROOT / "tests" / "contract" / "kss_samples"
CODE = re.compile(r"^[0-9A-Z]{5}(-[0-9A-Z]{5}){3}$")
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"


def activate(
    unit: int, sid: str, start: str, end: str = "indefinite", product: str = "KIS", count: int = 1, extra: str = ""
) -> str:
    return (
        f'<Activate UnitId="{unit}" SubscriberId="{sid}" StartTime="{start}" EndTime="{end}" '
        f'LicenseCount="{count}" ProductId="{product}"{extra}/>'
    )


# ======================================================================== zeep, every item kind


@pytest.fixture(params=["contract", "server"])
def zeep_client(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(f"zeep_from_{request.param}")


def test_KSS_QTY_1_KSS_CODE_1_KSS_TRIAL_1_KSS_PAUSE_1_every_item_kind_through_zeep(
    zeep_client: Any, kss_partner: Any
) -> None:
    client, service = zeep_client
    partner: KssPartner = kss_partner(now="2026-04-15T09:00:00Z")
    t = lambda name: client.get_type(q(KSS, name))
    e = lambda name: client.get_element(q(EXT, name))
    now = dt.datetime(2026, 4, 15, 9, 0)  # zone-less, as real clients send; the partner's zone is UTC
    act = lambda unit, sid, **kw: {
        "Activate": t("SubscriptionRequestActivateItem")(
            UnitId=unit, SubscriberId=sid, StartTime=now, **{"EndTime": "indefinite", "ProductId": "KIS", **kw}
        )
    }
    first = zeep_call(
        client,
        service,
        partner,
        [
            act(1, "sub-a", LicenseCount=3, TrialDays=14, CustomerId="cust-1"),
            act(2, "sub-b", EndTime=dt.datetime(2026, 12, 31, tzinfo=UTC), ProductId="KTS", ActivationType="Secondary"),
            act(3, "sub-c"),
            act(4, "sub-d"),
            act(5, "sub-e"),
            {
                "GetDownloadLinks": t("SubscriptionRequestGetDownloadLinksItem")(
                    UnitId=6,
                    SubscriberId="sub-a",
                    Language="pt",
                    Alphabet="Latin",
                    Region="BR",
                    RebrandingCode="ACME",
                    Platform="Android",
                )
            },
            {"ChangeLicenseCount": e("ChangeLicenseCount")(UnitId=7, SubscriberId="sub-a", LicenseCount=5)},
            {"ChangeProduct": e("ChangeProduct")(UnitId=8, SubscriberId="sub-c", ProductId="KTS")},
            {"ChangeLicenseCount": e("ChangeLicenseCount")(UnitId=9, SubscriberId="sub-c", LicenseCount=1)},
            {"ChangeProduct": e("ChangeProduct")(UnitId=10, SubscriberId="sub-d", ProductId="NOPE")},
            {
                "Pause": t("SubscriptionRequestPauseItem")(
                    UnitId=11, SubscriberId="sub-d", PauseTime=now, ResumeTime=dt.datetime(2026, 6, 1)
                )
            },
            {"Pause": t("SubscriptionRequestPauseItem")(UnitId=12, SubscriberId="sub-b", PauseTime=now)},
            {
                "Renew": t("SubscriptionRequestRenewItem")(
                    UnitId=13, SubscriberId="sub-b", EndTime=dt.datetime(2027, 6, 30, tzinfo=UTC)
                )
            },
            {
                "SoftCancel": t("SubscriptionRequestSoftCancelItem")(
                    UnitId=14, SubscriberId="sub-e", EndTime=dt.datetime(2026, 5, 31, tzinfo=UTC)
                )
            },
            {"HardCancel": t("SubscriptionRequestHardCancelItem")(UnitId=15, SubscriberId="sub-c", EndTime=now)},
            {"Resume": t("SubscriptionRequestResumeItem")(UnitId=16, SubscriberId="sub-d")},
            {
                "GetInfo": t("SubscriptionRequestGetInfoItem")(
                    UnitId=17, SubscriberId="sub-a", InfoSection="Subscription, SubscriptionUsage"
                )
            },
            {"GetInfo": t("SubscriptionRequestGetInfoItem")(UnitId=18, SubscriberId="sub-c")},
        ],
        txn="zeep-every-kind",
    )
    assert first.TransactionId == "zeep-every-kind" and first.TransactionError is None
    assert first.Timestamp == dt.datetime(2026, 4, 15, 9, 0, tzinfo=first.Timestamp.tzinfo)
    assert first.Timestamp.utcoffset() == dt.timedelta(0)
    units = zeep_units(first)
    assert sorted(units) == list(range(1, 19))
    kinds = {u: (kind, ok) for u, (kind, ok, _) in units.items()}
    assert kinds == {
        1: ("Activate", True),
        2: ("Activate", True),
        3: ("Activate", True),
        4: ("Activate", True),
        5: ("Activate", True),
        6: ("GetDownloadLinks", True),
        7: ("ChangeLicenseCountResult", True),
        8: ("ChangeProductResult", True),
        9: ("ChangeLicenseCountError", False),
        10: ("ChangeProductError", False),
        11: ("PauseError", False),
        12: ("PauseError", False),
        13: ("Renew", True),
        14: ("SoftCancel", True),
        15: ("HardCancel", True),
        16: ("ResumeError", False),
        17: ("GetInfo", True),
        18: ("GetInfo", True),
    }
    # SIM-ERR-1: a Pause and a Resume of one subscriber in one container contradict each other: both refused.
    assert (units[11][2].ErrorCode, units[16][2].ErrorCode) == (602, 602)
    code = {u: units[u][2].ActivationCode for u in range(1, 6)}
    assert all(CODE.match(c) for c in code.values()) and len(set(code.values())) == 5
    assert units[7][2].ActivationCode == code[1] and units[8][2].ActivationCode == code[3]  # KSS-CODE-1
    assert (units[9][2].ErrorCode, units[10][2].ErrorCode, units[12][2].ErrorCode) == (707, 9, 401)
    assert units[9][2].SubscriberId == "sub-c" and "already has 1 licence" in units[9][2].ErrorMessage
    links = units[6][2]
    assert links.Platform == "Android"
    (link,) = links.DownloadLinks.DownloadLink
    assert (link.Url, link.Language, link.Alphabet, link.Region, link.RebrandingCode, link.ApplicationName) == (
        "https://downloads.ksim.invalid/KIS/Android/pt/setup?rebranding=ACME",
        "pt",
        "Latin",
        "BR",
        "ACME",
        "Kaspersky Internet Security",
    )
    info_a = units[17][2]
    (sub_a,) = info_a.Subscription
    assert (sub_a.Status, sub_a.LicenseCount, sub_a.ProductId, sub_a.ActivationCode) == ("Started", 5, "KIS", code[1])
    assert sub_a.StartTime == dt.datetime(2026, 4, 15, 9, 0, tzinfo=sub_a.StartTime.tzinfo)
    assert sub_a.EndTime == "indefinite" and sub_a.CustomerId == "cust-1"
    assert sub_a.TrialEndTime == dt.datetime(2026, 4, 29, 9, 0, tzinfo=sub_a.TrialEndTime.tzinfo)  # KSS-TRIAL-1
    assert sub_a.PauseEndTime is None
    assert [getattr(u, "FirstActivationTime", None) for u in info_a.SubscriptionUsage] in ([], [None])  # no device
    (sub_c,) = units[18][2].Subscription
    assert (sub_c.Status, sub_c.ProductId, sub_c.ActivationCode) == ("HardCancelled", "KTS", code[3])
    assert units[18][2].SubscriptionUsage == []

    # Every error item, a pause for a term and the ext answer attributes.
    second = zeep_call(
        client,
        service,
        partner,
        [
            act(1, "sub-a"),  # already activated: 1
            {
                "Renew": t("SubscriptionRequestRenewItem")(
                    UnitId=2, SubscriberId="sub-b", EndTime="2027-01-01T00:00:00Z"
                )
            },
            {"HardCancel": t("SubscriptionRequestHardCancelItem")(UnitId=3, SubscriberId="sub-c", EndTime=now)},
            {"SoftCancel": t("SubscriptionRequestSoftCancelItem")(UnitId=4, SubscriberId="sub-c", EndTime=now)},
            {
                "Pause": t("SubscriptionRequestPauseItem")(
                    UnitId=5, SubscriberId="sub-d", PauseTime=now, ResumeTime=dt.datetime(2026, 5, 1, 0, 0)
                )
            },
            {"Resume": t("SubscriptionRequestResumeItem")(UnitId=6, SubscriberId="sub-a")},
            {"GetInfo": t("SubscriptionRequestGetInfoItem")(UnitId=7, SubscriberId="nobody")},
            {
                "GetDownloadLinks": t("SubscriptionRequestGetDownloadLinksItem")(
                    UnitId=8, SubscriberId="sub-c", Language="en", Platform="iOS"
                )
            },
            {
                "GetInfo": t("SubscriptionRequestGetInfoItem")(
                    UnitId=9, SubscriberId="sub-d", InfoSection="Subscription"
                )
            },
            {"GetInfo": t("SubscriptionRequestGetInfoItem")(UnitId=10, SubscriberId="sub-b")},
            {"ChangeProduct": e("ChangeProduct")(UnitId=11, SubscriberId="sub-c", ProductId="KIS")},
            {"ChangeLicenseCount": e("ChangeLicenseCount")(UnitId=12, SubscriberId="nobody", LicenseCount=2)},
        ],
    )
    units = zeep_units(second)
    errors = {u: (kind, item.ErrorCode) for u, (kind, ok, item) in units.items() if not ok}
    assert errors == {
        1: ("ActivateError", 1),
        2: ("RenewError", 3),
        3: ("HardCancelError", 4),
        4: ("SoftCancelError", 4),
        6: ("ResumeError", 501),
        7: ("GetInfoError", 5),
        8: ("GetDownloadLinksError", 4),
        11: ("ChangeProductError", 4),
        12: ("ChangeLicenseCountError", 5),
    }
    assert units[5][:2] == ("Pause", True)
    (sub_d,) = units[9][2].Subscription
    assert sub_d.Status == "Paused"
    assert sub_d.PauseEndTime == dt.datetime(2026, 5, 1, 0, 0, tzinfo=sub_d.PauseEndTime.tzinfo)  # KSS-PAUSE-1
    (sub_b,) = units[10][2].Subscription
    assert (sub_b.Status, sub_b.ProductId, sub_b.CustomerId, sub_b.MaxLicenseCountThisPeriod) == (
        "Started",
        "KTS",
        "sub-b",
        1,
    )
    assert sub_b.EndTime == "2027-06-30T00:00:00Z"  # the union type comes back as a string


def test_zeep_strict_2_0_request_gets_a_2_0_answer(zeep_from_contract: Any, kss_partner: Any) -> None:
    """A client that knows nothing of ext: its requests carry nothing of ours, and the answer to them has
    nothing of ours but the optional GetInfo attributes."""
    client, service = zeep_from_contract
    partner = kss_partner(now="2026-04-15T09:00:00Z")
    t = lambda name: client.get_type(q(KSS, name))
    result = zeep_call(
        client,
        service,
        partner,
        [
            {
                "Activate": t("SubscriptionRequestActivateItem")(
                    UnitId=1,
                    SubscriberId="s-1",
                    StartTime=dt.datetime(2026, 4, 15, 9),
                    EndTime="indefinite",
                    ProductId="KIS",
                )
            },
            {"Renew": t("SubscriptionRequestRenewItem")(UnitId=2, SubscriberId="s-1", EndTime="indefinite")},
        ],
    )
    units = zeep_units(result)
    assert (units[1][:2], units[2][:2], units[2][2].ErrorCode) == (("Activate", True), ("RenewError", False), 202)
    raw = partner.post(
        partner.envelope(
            '<Activate UnitId="1" SubscriberId="s-2" StartTime="2026-04-15T09:00:00" EndTime="indefinite" ProductId="KIS"/>'
            '<Pause UnitId="2" SubscriberId="s-2"/>'
        )
    )
    assert EXT.encode() not in raw.content
    assert partner.info("s-2")["LicenseCount"] == "1"  # the schema default


# ======================================================================== hand-written XML, as real clients send


def test_KSS_CODE_1_KSS_STOP_1_real_client_container_partly_succeeds(kss_partner: Any) -> None:
    """tests/contract/kss_samples/request_real_client_interleaved.xml as is: no prefixes, zone-less local times
    (provider in America/Sao_Paulo, UTC-3), items of several kinds interleaved, batched units, a licence
    change as HardCancel + Activate of one SubscriberId. The answer is the one docs/kss-wire.md shows."""
    partner = kss_partner(timezone="America/Sao_Paulo", now="2025-12-01T12:00:00Z")
    start = "2025-12-01T09:00:00"  # local = 12:00Z, the partner's now
    setup = partner.send(
        "".join(
            [
                activate(1, "4810fc6f-f25e-430d-bee7-319fba4644bd", start),
                activate(2, "D4567E02-8A91-43B2-AD48-5D04DAFD38C3", start, product="KTSMD", count=2),
                activate(3, "sub-0005", start, product="KTSMD", count=2),
                activate(4, "sub-0006", start),
                activate(5, "sub-0007", start, end="2026-12-01T09:00:00"),
                activate(6, "sub-0009", start),
                activate(7, "sub-0010", start),
            ]
        )
    )
    assert all(setup[u].ok for u in range(1, 8)), setup.order
    old_code = setup[2]["ActivationCode"]
    assert partner.device("4810fc6f-f25e-430d-bee7-319fba4644bd").status_code == 201  # FirstActivationTime
    assert partner.advance(to="2026-01-05T12:00:00Z")["now"] == "2026-01-05T12:00:00Z"
    prepared = partner.send(
        '<SoftCancel UnitId="1" SubscriberId="sub-0005" EndTime="2026-01-05T09:00:00"/>'
        '<Pause UnitId="2" SubscriberId="sub-0006"/>'
    )
    assert prepared[1].ok and prepared[2].ok

    body = (SAMPLES / "request_real_client_interleaved.xml").read_text(encoding="utf-8")
    body = body.replace("acme_isp", partner.username).replace("s3cret", partner.password)
    answer = read_answer(partner.post(body), partner.schema)
    assert answer.transaction_error is None
    assert (answer.timestamp, answer.transaction_id) == ("2026-01-05T12:00:00Z", "20260105090000123456")
    assert answer.order == [
        ("ok", 1767603600),
        ("ok", 2),
        ("ok", 3),
        ("ok", 4),
        ("ok", 5),
        ("ok", 8),
        ("ok", 11),
        ("error", 6),
        ("error", 7),
        ("error", 9),
        ("error", 10),
    ]
    assert {u: (answer[u].kind, answer[u].code) for u in (6, 7, 9, 10)} == {
        6: ("SoftCancelError", 303),
        7: ("PauseError", 401),
        9: ("ResumeError", 501),
        10: ("RenewError", 202),
    }
    for unit in (6, 7, 9, 10):
        assert answer[unit]["ErrorMessage"]
    assert answer[6]["SubscriberId"] == "sub-0006"
    new_code = answer[1767603600]["ActivationCode"]
    assert CODE.match(new_code) and new_code != old_code
    assert answer[4]["ActivationCode"] == old_code  # KSS-CODE-1: licence change keeps the code
    assert [answer[u].kind for u in (3, 5, 11)] == ["HardCancel", "Renew", "GetDownloadLinks"]
    info = answer[2].sub("Subscription").attrib
    assert dict(info) == {
        "Status": "Started",
        "StatusChangeTime": "2025-12-01T12:00:00Z",
        "StartTime": "2025-12-01T12:00:00Z",
        "EndTime": "indefinite",
        "LicenseCount": "1",
        "ProductId": "KIS",
        "ActivationCode": info["ActivationCode"],
    }  # a pure 2.0 request (the sample declares no ext namespace): a pure 2.0 answer
    assert answer[2].sub("SubscriptionUsage").get("FirstActivationTime") == "2025-12-01T12:00:00Z"
    reactivated = answer[8].sub("Subscription")
    assert (reactivated.get("Status"), reactivated.get("StatusChangeTime"), reactivated.get("EndTime")) == (
        "Started",
        "2026-01-05T12:00:00Z",
        "indefinite",
    )  # KSS-STOP-1: Renew indefinite reactivates
    assert answer[8].el.find(q(KSS, "SubscriptionUsage")) is None
    (link,) = answer[11].sub("DownloadLinks")
    assert dict(link.attrib) == {
        "Url": "https://downloads.ksim.invalid/KISMD/Android/pt/setup",
        "Language": "pt",
        "Region": "BR",
        "ApplicationName": "Kaspersky Internet Security, multi-device",
    }
    assert answer[11]["Platform"] == "Android"

    changed = partner.info("D4567E02-8A91-43B2-AD48-5D04DAFD38C3")
    assert (changed["Status"], changed["LicenseCount"], changed["ProductId"], changed["ActivationCode"]) == (
        "Started",
        "5",
        "KTSMD",
        old_code,
    )
    started = partner.info("C8147E02-8A91-43B2-AD48-5D04DAFD38C2")  # zone-less 09:05 local is 12:05Z, 5 min ahead
    assert (started["Status"], started["StartTime"]) == ("Started", "2026-01-05T12:00:00Z")  # a frozen clock: now

    # SIM-IDEM-1: the same container again is refused whole and changes nothing.
    audit = partner.audit_total()
    again = read_answer(partner.post(body), partner.schema)
    assert again.transaction_error == (
        6,
        "duplicated order: TransactionId '20260105090000123456' was received at 2026-01-05T12:00:00Z",
    )
    assert again.transaction_id == "20260105090000123456" and again.units == {}
    assert partner.audit_total() == audit
    assert partner.info("D4567E02-8A91-43B2-AD48-5D04DAFD38C3") == changed


def test_KSS_CODE_1_hard_cancel_then_activate_grouped_by_kind_keeps_the_code(kss_partner: Any) -> None:
    """The suds client's order (kinds grouped, HardCancel first) with several subscribers batched."""
    partner = kss_partner(now="2026-04-15T09:00:00Z")
    first = partner.send(
        activate(1, "s-1", "2026-04-15T09:00:00Z", count=3)
        + activate(2, "s-2", "2026-04-15T09:00:00Z", count=1, product="KTS")
    )
    codes = {sid: first[u]["ActivationCode"] for u, sid in ((1, "s-1"), (2, "s-2"))}
    change = partner.send(
        '<HardCancel UnitId="10" SubscriberId="s-1" EndTime="2026-04-15T09:00:00Z"/>'
        '<HardCancel UnitId="11" SubscriberId="s-2" EndTime="2026-04-15T09:00:00Z"/>'
        + activate(12, "s-1", "2026-04-15T09:00:00Z", count=7)
        + activate(13, "s-2", "2026-04-15T09:00:00Z", count=2, product="KIS")
    )
    assert change.order == [("ok", 10), ("ok", 11), ("ok", 12), ("ok", 13)]
    assert change[12]["ActivationCode"] == codes["s-1"] and change[13]["ActivationCode"] == codes["s-2"]
    s1, s2 = partner.info("s-1"), partner.info("s-2")
    assert (s1["Status"], s1["LicenseCount"], s1["ActivationCode"]) == ("Started", "7", codes["s-1"])
    assert (s2["Status"], s2["LicenseCount"], s2["ProductId"], s2["ActivationCode"]) == (
        "Started",
        "2",
        "KIS",
        codes["s-2"],
    )


def test_KSS_STOP_1_cancel_and_pause_without_a_time_mean_now(kss_partner: Any) -> None:
    partner = kss_partner(now="2026-04-15T09:00:00Z")
    partner.send("".join(activate(u, f"s-{u}", "2026-04-01T00:00:00Z") for u in (1, 2, 3)))
    partner.advance(hours=5)
    answer = partner.send(
        '<SoftCancel UnitId="1" SubscriberId="s-1"/><HardCancel UnitId="2" SubscriberId="s-2"/>'
        '<Pause UnitId="3" SubscriberId="s-3"/>'
    )
    assert answer.order == [("ok", 1), ("ok", 2), ("ok", 3)]
    s1, s2, s3 = (partner.info(f"s-{u}") for u in (1, 2, 3))
    assert (s1["Status"], s1["EndTime"]) == ("SoftCancelled", "2026-04-15T14:00:00Z")
    assert (s2["Status"], s2["EndTime"]) == ("HardCancelled", "2026-04-15T14:00:00Z")
    assert (s3["Status"], s3["StatusChangeTime"], s3["EndTime"]) == ("Paused", "2026-04-15T14:00:00Z", "indefinite")


def test_KSS_times_zone_less_offset_and_Z_read_alike(kss_partner: Any) -> None:
    """A zone-less time is read in the provider's zone (Asia/Tokyo, UTC+9); answers are UTC with Z."""
    partner = kss_partner(timezone="Asia/Tokyo", now="2026-04-15T09:00:00Z")
    answer = partner.send(
        activate(1, "s-1", "2026-04-15T18:00:00")
        + activate(2, "s-2", "2026-04-15T09:00:00Z")
        + activate(3, "s-3", "2026-04-15T12:00:00+03:00")
        + activate(4, "s-4", "2026-04-15T17:00:00.75", end="2026-06-01T00:00:00")
    )
    assert [answer[u].ok for u in (1, 2, 3, 4)] == [True] * 4
    for sid in ("s-1", "s-2", "s-3"):
        assert partner.info(sid)["StartTime"] == "2026-04-15T09:00:00Z"
    s4 = partner.info("s-4")
    assert (s4["StartTime"], s4["EndTime"]) == ("2026-04-15T08:00:00.750000Z", "2026-05-31T15:00:00Z")


def test_SIM_ERR_1_renew_without_end_time_answers_602_in_its_place(kss_partner: Any) -> None:
    partner = kss_partner(now="2026-04-15T09:00:00Z")
    partner.send(activate(1, "s-1", "2026-04-15T09:00:00Z", end="2026-12-01T00:00:00Z"))
    answer = partner.send(
        '<GetInfo UnitId="5" SubscriberId="nobody"/><Renew UnitId="3" SubscriberId="s-1"/>'
        '<Renew UnitId="4" SubscriberId="s-1" EndTime="2027-01-01T00:00:00Z"/>'
        '<Resume UnitId="1" SubscriberId="s-1"/>'
    )
    assert answer.order == [("ok", 4), ("error", 5), ("error", 3), ("error", 1)]
    assert (answer[3].kind, answer[3].code, answer[3]["SubscriberId"]) == ("RenewError", 602, "s-1")
    assert answer[3]["ErrorMessage"] == "Renew needs an EndTime (a dateTime or indefinite)"
    assert partner.info("s-1")["EndTime"] == "2027-01-01T00:00:00Z"


@pytest.mark.parametrize("with_wire_refusal", [False, True], ids=["rules", "with-a-renew-without-end"])
def test_SIM_ERR_1_repeated_unit_id_answers_708_and_changes_nothing(kss_partner: Any, with_wire_refusal: bool) -> None:
    partner = kss_partner(now="2026-04-15T09:00:00Z")
    audit = partner.audit_total()
    twice = (
        '<Renew UnitId="2" SubscriberId="s-1"/>' if with_wire_refusal else '<GetInfo UnitId="2" SubscriberId="s-1"/>'
    )
    items = activate(2, "s-1", "2026-04-15T09:00:00Z") + activate(3, "s-2", "2026-04-15T09:00:00Z") + twice
    answer = partner.send(items, txn="dup-units")
    assert answer.transaction_error == (708, "UnitId 2 appears more than once in the container")
    assert answer.transaction_id == "dup-units" and answer.units == {}
    assert partner.audit_total() == audit and partner.info("s-1") == 5 and partner.info("s-2") == 5
    fixed = partner.send(
        items.replace('UnitId="3"', 'UnitId="1"').replace('UnitId="2"', 'UnitId="3"', 1), txn="dup-units"
    )  # the TransactionId was not used up
    assert fixed.transaction_error is None and fixed[3].ok and fixed[1].ok


def test_SIM_IDEM_1_a_transaction_id_seen_before_answers_6_even_with_another_body(kss_partner: Any) -> None:
    partner = kss_partner(now="2026-04-15T09:00:00Z")
    first = partner.send(activate(1, "s-1", "2026-04-15T09:00:00Z"), txn="20260415090000")
    assert first[1].ok
    partner.advance(hours=1)
    audit = partner.audit_total()
    again = partner.send(
        activate(1, "s-2", "2026-04-15T09:00:00Z") + '<HardCancel UnitId="2" SubscriberId="s-1"/>', txn="20260415090000"
    )
    assert again.transaction_error == (
        6,
        "duplicated order: TransactionId '20260415090000' was received at 2026-04-15T09:00:00Z",
    )
    assert again.timestamp == "2026-04-15T10:00:00Z"
    assert partner.audit_total() == audit
    assert partner.info("s-2") == 5 and partner.info("s-1")["Status"] == "Started"
    other = partner.send(activate(1, "s-2", "2026-04-15T09:00:00Z"), txn="20260415090000 ")  # another string
    assert other[1].ok


# ======================================================================== authentication and isolation


@pytest.mark.parametrize(
    "case",
    ["no-header", "wrong-password", "unknown-user", "other-partners-password", "no-namespace", "no-password", "empty"],
)
def test_SIM_AUTH_1_missing_or_wrong_access_info_answers_710(kss_partner: Any, case: str) -> None:
    partner, other = kss_partner(now="2026-04-15T09:00:00Z"), kss_partner()
    items = activate(1, "s-1", "2026-04-15T09:00:00Z")
    body = {
        "no-header": partner.envelope(items, txn="auth-1", username=None),
        "wrong-password": partner.envelope(items, txn="auth-1", password=partner.password + "x"),
        "unknown-user": partner.envelope(items, txn="auth-1", username="nobody-kss"),
        "other-partners-password": partner.envelope(items, txn="auth-1", password=other.password),
        "empty": partner.envelope(items, txn="auth-1", username="", password=""),
        "no-namespace": partner.envelope(items, txn="auth-1").replace(f'<AccessInfo xmlns="{KSS}">', "<AccessInfo>"),
        "no-password": partner.envelope(items, txn="auth-1").replace(f"<Password>{partner.password}</Password>", ""),
    }[case]
    answer = read_answer(partner.post(body), partner.schema)
    code, message = answer.transaction_error
    assert code == 710 and message.startswith("authentication failed")
    assert answer.transaction_id == "auth-1" and answer.units == {}
    if case == "no-namespace":
        assert "wrong namespace" in message
    assert partner.audit_total() == 0 and other.audit_total() == 0
    assert partner.info("s-1") == 5
    assert partner.send(items, txn="auth-1")[1].ok  # nothing was used up


def test_SIM_AUTH_1_another_partners_subscriber_is_unknown(kss_partner: Any) -> None:
    alice, bob = kss_partner(now="2026-04-15T09:00:00Z"), kss_partner(now="2026-04-15T09:00:00Z")
    code = alice.send(activate(1, "shared-1", "2026-04-15T09:00:00Z", count=4))[1]["ActivationCode"]
    seen = bob.send(
        '<GetInfo UnitId="1" SubscriberId="shared-1"/><Renew UnitId="2" SubscriberId="shared-1" '
        'EndTime="indefinite"/><HardCancel UnitId="3" SubscriberId="shared-1"/>'
        '<ext:ChangeLicenseCount UnitId="4" SubscriberId="shared-1" LicenseCount="9"/>'
    )
    assert {u: (seen[u].kind, seen[u].code) for u in (1, 2, 3, 4)} == {
        1: ("GetInfoError", 5),
        2: ("RenewError", 5),
        3: ("HardCancelError", 5),
        4: ("ChangeLicenseCountError", 5),
    }
    assert seen[1]["ErrorMessage"] == "SubscriberId 'shared-1' is unknown"
    own = bob.send(activate(1, "shared-1", "2026-04-15T09:00:00Z"))[1]["ActivationCode"]
    assert CODE.match(own) and own != code
    info = alice.info("shared-1")
    assert (info["Status"], info["LicenseCount"], info["ActivationCode"]) == ("Started", "4", code)
    assert bob.info("shared-1")["ActivationCode"] == own


# ======================================================================== the clock


def test_SIM_CLOCK_1_advancing_the_partners_clock_moves_get_info_status(kss_partner: Any) -> None:
    partner, bystander = kss_partner(now="2026-04-15T09:00:00Z"), kss_partner(now="2026-04-15T09:00:00Z")
    answer = partner.send(
        activate(1, "later", "2026-04-15T09:05:00Z")  # within the start tolerance of a frozen clock: starts now
        + activate(2, "fixed", "2026-04-15T09:00:00Z", end="2026-05-20T09:00:00Z")
        + activate(3, "paused", "2026-04-15T09:00:00Z")
        + '<Pause UnitId="4" SubscriberId="paused" ext:ResumeTime="2026-04-20T00:00:00Z"/>'
    )
    assert answer.order == [("ok", 1), ("ok", 2), ("ok", 3), ("ok", 4)]
    bystander.send(activate(1, "later", "2026-04-15T09:05:00Z"))
    before = {sid: partner.info(sid)["Status"] for sid in ("later", "fixed", "paused")}
    assert before == {"later": "Started", "fixed": "Started", "paused": "Paused"}
    assert partner.advance(days=40)["now"] == "2026-05-25T09:00:00Z"
    after = {sid: partner.info(sid) for sid in ("later", "fixed", "paused")}
    assert {sid: (i["Status"], i["StatusChangeTime"]) for sid, i in after.items()} == {
        "later": ("Started", "2026-04-15T09:00:00Z"),
        "fixed": ("SoftCancelled", "2026-05-20T09:00:00Z"),
        "paused": ("Started", "2026-04-20T00:00:00Z"),
    }
    assert q(EXT, "PauseEndTime") not in after["paused"]
    assert bystander.info("later")["StatusChangeTime"] == "2026-04-15T09:00:00Z"  # a clock per partner


# ======================================================================== the WSDL


def _wsdl(response: httpx.Response) -> etree._Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    return etree.fromstring(response.content, SAFE)


def _address(root: etree._Element) -> etree._Element:
    (found,) = root.findall(f"{q(WSDL_NS, 'service')}/{q(WSDL_NS, 'port')}/{q(WSDL_SOAP, 'address')}")
    return found


def _canonical(root: etree._Element) -> bytes:
    return etree.tostring(root, method="c14n", with_comments=False)


def test_wsdl_served_is_the_contract_but_for_its_address(server: Any) -> None:
    served = _wsdl(httpx.get(server.url + ENDPOINT + "?wsdl"))
    assert _address(served).get("location") == server.url + ENDPOINT
    contract = etree.parse(str(ROOT / "contracts" / "kss-upi.wsdl"), SAFE).getroot()
    _address(served).set("location", _address(contract).get("location"))
    assert _canonical(served) == _canonical(contract)
    assert _wsdl(httpx.get(server.url + ENDPOINT + "?WSDL")) is not None


def test_wsdl_address_is_computed_per_request_not_cached(server: Any) -> None:
    """The known spyne pitfall: the address must follow each request, not the first one."""
    port = server.url.rsplit(":", 1)[1]
    first = _wsdl(httpx.get(server.url + ENDPOINT + "?wsdl", headers={"Host": "kss.example.test:8443"}))
    assert _address(first).get("location") == "http://kss.example.test:8443/kss/soap/upi"
    second = _wsdl(httpx.get(f"http://localhost:{port}{ENDPOINT}?wsdl"))
    assert _address(second).get("location") == f"http://localhost:{port}/kss/soap/upi"
    third = _wsdl(httpx.get(server.url + ENDPOINT + "?wsdl"))
    assert _address(third).get("location") == server.url + ENDPOINT


def _zeep_view(client: zeep.Client) -> dict[str, Any]:
    """Everything a zeep user sees of a WSDL: elements, types, bindings, operations (but no address)."""
    types = client.wsdl.types
    view: dict[str, Any] = {
        "elements": {
            str(e.qname): (e.signature(schema=types), e.type.signature(schema=types))
            for e in types.elements
            if isinstance(getattr(e, "type", None), zeep.xsd.ComplexType)
        },
        "types": {str(t.qname): t.signature(schema=types) for t in types.types},
        "services": {},
    }
    for name, service in client.wsdl.services.items():
        for port_name, port in service.ports.items():
            ops = {}
            for op_name, op in port.binding._operations.items():
                ops[op_name] = (
                    op.soapaction,
                    op.style,
                    op.input.signature(as_output=False),
                    op.output.signature(as_output=True),
                )
            view["services"][(name, port_name, str(port.binding.name))] = ops
    return view


def test_wsdl_zeep_sees_the_same_contract_from_the_server_and_the_file(
    zeep_from_contract: Any, zeep_from_server: Any, server: Any
) -> None:
    from_file, from_server = _zeep_view(zeep_from_contract[0]), _zeep_view(zeep_from_server[0])
    assert from_server == from_file
    assert set(from_file["elements"]) == {
        *(q(KSS, n) for n in ("AccessInfo", "SubscriptionRequestContainer", "SubscriptionResponseContainer")),
        *(
            q(EXT, f"{kind}{suffix}")
            for kind in ("ChangeLicenseCount", "ChangeProduct")
            for suffix in ("", "Result", "Error")
        ),
    }
    assert "ErrorCode: xsd:integer" in from_file["types"][q(KSS, "SubscriptionResponseErrorItem")]
    port = zeep_from_server[0].wsdl.services["KasperskySubscriptionService"].ports["KasperskySubscriptionServicePort"]
    assert port.binding_options["address"] == server.url + ENDPOINT
    (ops,) = from_file["services"].values()
    assert list(ops) == ["SubscriptionRequest"] and ops["SubscriptionRequest"][:2] == (SOAP_ACTION, "document")


def test_wsdl_every_answer_kind_parses_in_zeep_from_the_server(zeep_from_server: Any, kss_partner: Any) -> None:
    """An answer rendered by the server, TransactionError included, read by the server's own WSDL."""
    client, service = zeep_from_server
    partner = kss_partner(now="2026-04-15T09:00:00Z")
    bad = client.get_element(q(KSS, "AccessInfo"))(UserName=partner.username, Password="wrong")
    result = service.SubscriptionRequest(
        Timestamp=dt.datetime(2026, 4, 15, 9),
        TransactionId="t-710",
        SubscriptionRequest=client.get_type(q(KSS, "SubscriptionRequestItemCollection"))(
            _value_1=[{"Resume": client.get_type(q(KSS, "SubscriptionRequestResumeItem"))(UnitId=1, SubscriberId="s")}]
        ),
        _soapheaders=[bad],
    )
    assert (result.TransactionError.ErrorCode, result.TransactionId) == (710, "t-710")
    assert result.SubscriptionResponse is None and result.SubscriptionError is None


class _WrongAction(zeep.Plugin):
    def egress(self, envelope: Any, http_headers: dict[str, str], operation: Any, binding_options: Any) -> Any:
        http_headers["SOAPAction"] = '"urn:other"'
        return envelope, http_headers


def test_SIM_ERR_1_zeep_raises_the_fault_of_a_wrong_soap_action(kss_partner: Any, server: Any) -> None:
    partner = kss_partner()
    client = zeep.Client(str(ROOT / "contracts" / "kss-upi.wsdl"), plugins=[_WrongAction()])
    service = client.create_service(f"{{{KSS}}}KasperskySubscriptionServiceBinding", server.url + ENDPOINT)
    resume = client.get_type(q(KSS, "SubscriptionRequestResumeItem"))(UnitId=1, SubscriberId="s")
    with pytest.raises(zeep.exceptions.Fault) as raised:
        zeep_call(client, service, partner, [{"Resume": resume}])
    assert raised.value.code == "soapenv:Client"
    assert raised.value.message == (
        "unknown SOAPAction 'urn:other'; the one operation's is "
        "'http://schemas.kaspersky.com/services/subscription/subscriptionRequest'"
    )
