"""The KSS partner-portal REST API (/kss/v1) and the KSS control-plane calls, over a real socket with httpx.

Subscriptions are made by driving ``ksimkit.simulators.kss.container.process`` with model values inside the server's own
store (as the SOAP front end does); clocks move through the control plane. The bill and report figures are
computed by hand below. Prices (packaged profile, per licence per billing period): KESB-SELECT 3.00,
KSMS 1.50, KESC 2.50, KSOS 2.20.

The worked example (a reseller, calendar months, UTC; also in docs/kss-rest.md):
- 2 March 09:00: acme-1 (customer acme, 10 KESB-SELECT), globex-1 (globex, 20 KSMS), initech-1 (initech, 5 KESC).
- 20 March: initech-1 soft-cancelled to end on 1 April 00:00.
- 10 April: acme-1 up to 15. 20 April: globex-1 down to 12.
- Today 2 May 08:00.
March is free for all three (KSS-FREE-1: created in March). April: acme-1 at the new count, 15 x 3.00 = 45.00
(KSS-QTY-2); globex-1 still at its April maximum, 20 x 1.50 = 30.00 (KSS-QTY-3); initech-1 ended at the first
instant of April, so it has no April day. Total 75.00. May so far: 15 x 3.00 + 12 x 1.50 = 63.00, provisional.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import httpx
import pytest

from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.partners import load_partner
from ksimkit.simulators.kss import container, events
from ksimkit.simulators.kss.model import (
    Activate,
    ChangeLicenseCount,
    HardCancel,
    Item,
    ItemError,
    ItemResult,
    RequestContainer,
    SoftCancel,
)

pytestmark = pytest.mark.wire

UTC = dt.UTC
ACTOR = "broker-billing-job"
_txn = itertools.count(1)
_unit = itertools.count(1)


def T(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).replace(tzinfo=UTC)


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["type"] == "https://ksim.dev/problems/" + code.lower().replace("_", "-")
    assert {"title", "detail"} <= body.keys()
    return body


def send(server: Any, partner_id: str, *items: Item, actor: str = ACTOR) -> list[ItemResult | ItemError]:
    """One KSS request container through the rules, in the server's store, at the partner's clock."""
    runtime = server.app.extensions["ksim"]
    with runtime.store.begin() as conn:
        partner = load_partner(conn, partner_id)
        ctx = CallContext(partner=partner, profile=runtime.profile, actor=actor)
        answer = container.process(conn, ctx, RequestContainer(ctx.clock.now, f"rest-test-{next(_txn)}", tuple(items)))
    assert answer.transaction_error is None, answer.transaction_error
    return [*answer.results, *answer.errors]


def ok(server: Any, partner_id: str, item: Item, **kw: Any) -> ItemResult:
    (result,) = send(server, partner_id, item, **kw)
    assert isinstance(result, ItemResult), result
    return result


def code_of(server: Any, partner_id: str, item: Item) -> int:
    (result,) = send(server, partner_id, item)
    assert isinstance(result, ItemError), result
    return result.code


def activate(sid: str, customer: str, product: str, count: int, start: str = "2026-03-02T09:00") -> Activate:
    return Activate(next(_unit), sid, T(start), None, product, count, customer_id=customer)


def advance_to(admin: httpx.Client, partner_id: str, moment: str) -> None:
    response = admin.put(f"/partners/{partner_id}/clock", json={"now": moment})
    assert response.status_code == 200, response.text


def client(server: Any, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url + "/kss/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.fixture
def reseller(server: Any, admin: httpx.Client, new_partner: Any) -> dict[str, Any]:
    """The worked example, driven to 2 May 2026 08:00; answers the partner and its activation codes."""
    partner = new_partner(programme="reseller", now="2026-03-02T09:00:00Z")
    pid = partner["id"]
    codes = {
        sid: ok(server, pid, activate(sid, customer, product, count)).activation_code
        for sid, customer, product, count in (
            ("acme-1", "acme", "KESB-SELECT", 10),
            ("globex-1", "globex", "KSMS", 20),
            ("initech-1", "initech", "KESC", 5),
        )
    }
    advance_to(admin, pid, "2026-03-20T09:00:00Z")
    ok(server, pid, SoftCancel(next(_unit), "initech-1", T("2026-04-01T00:00")))
    advance_to(admin, pid, "2026-04-10T09:00:00Z")
    ok(server, pid, ChangeLicenseCount(next(_unit), "acme-1", 15))
    advance_to(admin, pid, "2026-04-20T09:00:00Z")
    ok(server, pid, ChangeLicenseCount(next(_unit), "globex-1", 12), actor="support-desk")
    advance_to(admin, pid, "2026-05-02T08:00:00Z")
    return {**partner, "codes": codes}


@pytest.fixture
def portal(server: Any, reseller: dict[str, Any]) -> Any:
    with client(server, reseller["token"]) as c:
        yield c


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/bills/2026-04", "/reports/2026-04", "/audit", "/subscriptions/acme-1"])
def test_SIM_AUTH_1_every_call_needs_a_partner_token(server: Any, path: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer test-admin"},
        {"Authorization": "Basic eDp5"},
    ):
        response = httpx.get(server.url + "/kss/v1" + path, headers=headers)
        problem(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_contract_is_served_without_a_token(server: Any) -> None:
    response = httpx.get(server.url + "/kss/v1/openapi.yaml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert response.text.startswith("openapi: 3.1.0")


# --- KSS-BILL-1 -----------------------------------------------------------------------------


def _line(
    customer: str, sid: str, product: str, start: str, end: str, days: int, count: int, price: str, amount: str
) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "subscriber_id": sid,
        "product_id": product,
        "period_start": start,
        "period_end": end,
        "paid_days": days,
        "charged_count": count,
        "unit_price": price,
        "gross": amount,
        "discount_percent": "0.00",
        "discount": "0.00",
        "amount": amount,
    }


def test_KSS_BILL_1_one_collective_bill_over_all_customers(portal: httpx.Client, reseller: dict[str, Any]) -> None:
    response = portal.get("/bills/2026-04")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    bill = response.json()
    assert dt.datetime.fromisoformat(bill.pop("generated_at").replace("Z", "+00:00")).tzinfo is not None
    assert bill == {
        "partner_id": reseller["id"],
        "period": "2026-04",
        "billing_period": "calendar_month",
        "programme": "reseller",
        "currency": "EUR",
        "provisional": False,
        "lines": [
            _line("acme", "acme-1", "KESB-SELECT", "2026-04-01", "2026-05-01", 30, 15, "3.00", "45.00"),
            _line("globex", "globex-1", "KSMS", "2026-04-01", "2026-05-01", 30, 20, "1.50", "30.00"),
        ],
        "customers": [
            {"customer_id": "acme", "lines": 1, "gross": "45.00", "discount": "0.00", "amount": "45.00"},
            {"customer_id": "globex", "lines": 1, "gross": "30.00", "discount": "0.00", "amount": "30.00"},
        ],
        "volume": [],
        "totals": {"gross": "75.00", "discount": "0.00", "amount": "75.00"},
    }


def test_KSS_BILL_1_the_first_month_is_free_and_the_current_one_provisional(portal: httpx.Client) -> None:
    march = portal.get("/bills/2026-03").json()
    assert (march["lines"], march["customers"], march["provisional"]) == ([], [], False)  # KSS-FREE-1
    assert march["totals"] == {"gross": "0.00", "discount": "0.00", "amount": "0.00"}
    may = portal.get("/bills/2026-05").json()
    assert may["provisional"] is True
    assert [(x["subscriber_id"], x["charged_count"], x["amount"]) for x in may["lines"]] == [
        ("acme-1", 15, "45.00"),
        ("globex-1", 12, "18.00"),
    ]
    assert may["totals"]["amount"] == "63.00"


# --- KSS-REPORT-1 ---------------------------------------------------------------------------


def test_KSS_REPORT_1_active_subscriptions_per_customer(portal: httpx.Client, reseller: dict[str, Any]) -> None:
    codes = reseller["codes"]
    report = portal.get("/reports/2026-04").json()
    report.pop("generated_at")
    assert report == {
        "partner_id": reseller["id"],
        "period": "2026-04",
        "provisional": False,
        "customers": [
            {
                "customer_id": "acme",
                "licences": 15,
                "subscriptions": [
                    {
                        "subscriber_id": "acme-1",
                        "product_id": "KESB-SELECT",
                        "license_count": 15,
                        "status": "Started",
                        "activation_code": codes["acme-1"],
                    },
                ],
            },
            {
                "customer_id": "globex",
                "licences": 12,
                "subscriptions": [
                    {
                        "subscriber_id": "globex-1",
                        "product_id": "KSMS",
                        "license_count": 12,
                        "status": "Started",
                        "activation_code": codes["globex-1"],
                    },
                ],
            },
        ],
        "totals": {"customers": 2, "subscriptions": 2, "licences": 27},
    }


def test_KSS_REPORT_1_lists_uncharged_and_cancelled_subscriptions_of_the_month(portal: httpx.Client) -> None:
    report = portal.get("/reports/2026-03").json()
    assert [
        (
            c["customer_id"],
            c["licences"],
            [(s["subscriber_id"], s["license_count"], s["status"]) for s in c["subscriptions"]],
        )
        for c in report["customers"]
    ] == [
        ("acme", 10, [("acme-1", 10, "Started")]),
        ("globex", 20, [("globex-1", 20, "Started")]),
        ("initech", 5, [("initech-1", 5, "SoftCancelled")]),
    ]
    assert report["totals"] == {"customers": 3, "subscriptions": 3, "licences": 35}


@pytest.mark.parametrize(
    "period",
    ["2026-13", "2026-00", "2026-4", "26-04", "April", "2026-04-01", "9999-12", "1969-12", " 2026-4", "+2026-4"],
)
@pytest.mark.parametrize("kind", ["bills", "reports"])
def test_SIM_ERR_1_a_bad_period_is_problem_json(portal: httpx.Client, kind: str, period: str) -> None:
    body = problem(portal.get(f"/{kind}/{period}"), 422, "INVALID_PERIOD")
    assert repr(period) in body["detail"]


def test_SIM_ERR_1_unknown_routes_and_methods_are_problem_json(portal: httpx.Client) -> None:
    problem(portal.get("/bills/2026/04"), 404, "NOT_FOUND")
    problem(portal.get("/bills/"), 404, "NOT_FOUND")
    response = portal.post("/bills/2026-04", json={})
    problem(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["allow"]


# --- KSS-AUDIT-1 ----------------------------------------------------------------------------


def test_KSS_AUDIT_1_modifications_with_name_and_timestamp(portal: httpx.Client, reseller: dict[str, Any]) -> None:
    page = portal.get("/audit", params={"limit": 1000}).json()
    made = [(e["at"], e["actor"], e["action"], e["object_id"]) for e in page["items"] if e["actor"] != events.VENDOR]
    assert made == [
        ("2026-03-02T09:00:00Z", ACTOR, "activate", "acme-1"),
        ("2026-03-02T09:00:00Z", ACTOR, "activate", "globex-1"),
        ("2026-03-02T09:00:00Z", ACTOR, "activate", "initech-1"),
        ("2026-03-20T09:00:00Z", ACTOR, "soft_cancel", "initech-1"),
        ("2026-04-10T09:00:00Z", ACTOR, "change_license_count", "acme-1"),
        ("2026-04-20T09:00:00Z", "support-desk", "change_license_count", "globex-1"),
    ]
    assert {(e["service"], e["object_type"]) for e in page["items"]} == {("kss", "subscription"), ("kss", "bill")}
    # The vendor closes each month's bill once it is final, with its totals (March had no line: the free month).
    bills = [
        (e["at"], e["actor"], e["action"], e["object_id"], e["details"]["amount"])
        for e in page["items"]
        if e["object_type"] == "bill"
    ]
    assert bills == [("2026-05-01T00:00:00Z", events.VENDOR, "bill_closed", "2026-04", "75.00")]
    assert page["total"] == len(page["items"])
    ids = [e["id"] for e in page["items"]]
    assert ids == sorted(ids)  # oldest first
    first = page["items"][0]
    assert (
        first["details"]["license_count"] == 10 and first["details"]["activation_code"] == reseller["codes"]["acme-1"]
    )
    assert first["recorded_at"].endswith("Z")


def test_KSS_AUDIT_1_one_subscription_and_paging(portal: httpx.Client) -> None:
    acme = portal.get("/audit", params={"object_id": "acme-1"}).json()
    # The vendor's clock renews acme-1 at each new period (1 April, 1 May 00:00).
    assert [(e["at"], e["actor"], e["action"]) for e in acme["items"]] == [
        ("2026-03-02T09:00:00Z", ACTOR, "activate"),
        ("2026-04-01T00:00:00Z", events.VENDOR, "renew"),
        ("2026-04-10T09:00:00Z", ACTOR, "change_license_count"),
        ("2026-05-01T00:00:00Z", events.VENDOR, "renew"),
    ]
    assert acme["total"] == 4
    page = portal.get("/audit", params={"object_id": "acme-1", "offset": 2, "limit": 1}).json()
    assert page["total"] == 4
    assert [(e["action"], e["details"]) for e in page["items"]] == [
        ("change_license_count", {"effective": "2026-04-10T09:00:00Z", "license_count": 15}),
    ]
    assert portal.get("/audit", params={"object_id": "nobody"}).json() == {"items": [], "total": 0}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"limit": "1.5"},
        {"offset": "-1"},
        {"object_id": ""},
        {"object_id": "x" * 201},
    ],
)
def test_SIM_ERR_1_bad_audit_queries_are_refused(portal: httpx.Client, params: dict[str, str]) -> None:
    body = problem(portal.get("/audit", params=params), 422, "VALIDATION_ERROR")
    (name,) = params
    assert body["errors"][0]["path"] == f"query/{name}"


def test_KSS_AUDIT_1_control_plane_seeds_are_not_kss_modifications(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    partner = new_partner(programme="reseller")
    admin.put(f"/partners/{partner['id']}/kss/code-pool", json={"remaining": 5})
    with client(server, partner["token"]) as kss:
        assert kss.get("/audit").json() == {"items": [], "total": 0}
    admin_log = admin.get(f"/partners/{partner['id']}/audit", params={"service": "admin"}).json()
    assert [(e["action"], e["details"]) for e in admin_log["items"]] == [("set_code_pool", {"remaining": 5})]


# --- one subscription -----------------------------------------------------------------------


def test_KSS_CODE_1_a_subscription_with_its_history(portal: httpx.Client, reseller: dict[str, Any]) -> None:
    sub = portal.get("/subscriptions/acme-1").json()
    history = sub.pop("history")
    sub.pop("status_change_time")
    assert sub == {
        "subscriber_id": "acme-1",
        "customer_id": "acme",
        "product_id": "KESB-SELECT",
        "license_count": 15,
        "activation_code": reseller["codes"]["acme-1"],
        "status": "Started",
        "start_time": "2026-03-02T09:00:00Z",
        "end_time": None,
        "trial_end": None,
        "trial_used": False,
        "paused_at": None,
        "pause_until": None,
        "first_activation_time": None,
        "max_license_count_this_period": 15,
        "created_at": "2026-03-02T09:00:00Z",
    }
    assert [(h["effective"], h["source"], h["event"], h["license_count"]) for h in history] == [
        ("2026-03-02T09:00:00Z", "partner", "activate", 10),
        ("2026-04-01T00:00:00Z", "vendor", "renew", 10),
        ("2026-04-10T09:00:00Z", "partner", "change_license_count", 15),
        ("2026-05-01T00:00:00Z", "vendor", "renew", 15),
    ]


def test_KSS_QTY_3_a_reduced_subscription_shows_the_periods_maximum(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    partner = new_partner(programme="xsp", now="2026-03-02T09:00:00Z")
    ok(server, partner["id"], activate("home-1", "home", "KIS", 5))
    advance_to(admin, partner["id"], "2026-03-10T09:00:00Z")
    ok(server, partner["id"], ChangeLicenseCount(next(_unit), "home-1", 3))
    with client(server, partner["token"]) as kss:
        sub = kss.get("/subscriptions/home-1").json()
    assert (sub["license_count"], sub["max_license_count_this_period"]) == (3, 5)


def test_SIM_ERR_1_unknown_and_overlong_subscriber_ids(portal: httpx.Client) -> None:
    problem(portal.get("/subscriptions/acme-9"), 404, "SUBSCRIBER_NOT_FOUND")
    body = problem(portal.get("/subscriptions/" + "x" * 201), 422, "VALIDATION_ERROR")
    assert body["errors"] == [{"path": "path/subscriber_id", "message": "is longer than 200 characters"}]


# --- SIM-AUTH-1: partners are isolated ------------------------------------------------------


def test_SIM_AUTH_1_another_partner_never_sees_a_bill_line_report_entry_or_audit_entry(
    server: Any, admin: httpx.Client, new_partner: Any, reseller: dict[str, Any]
) -> None:
    eve = new_partner(programme="reseller", now="2026-03-02T09:00:00Z")
    # Eve uses the same SubscriberId for her own customer: it is another subscription.
    eve_code = ok(server, eve["id"], activate("acme-1", "eve-co", "KSOS", 7), actor="eve").activation_code
    advance_to(admin, eve["id"], "2026-05-02T08:00:00Z")
    with client(server, eve["token"]) as kss:
        april = kss.get("/bills/2026-04").json()
        assert april["partner_id"] == eve["id"]
        assert [(x["customer_id"], x["subscriber_id"], x["amount"]) for x in april["lines"]] == [
            ("eve-co", "acme-1", "15.40")
        ]
        assert april["totals"]["amount"] == "15.40"  # 7 x 2.20
        report = kss.get("/reports/2026-04").json()
        assert [
            (c["customer_id"], [s["activation_code"] for s in c["subscriptions"]]) for c in report["customers"]
        ] == [("eve-co", [eve_code])]
        log = kss.get("/audit").json()
        assert {e["actor"] for e in log["items"]} == {"eve", events.VENDOR}
        assert {e["object_id"] for e in log["items"]} == {"acme-1", "2026-04"}  # her subscription, her April bill
        assert kss.get("/audit", params={"object_id": "globex-1"}).json() == {"items": [], "total": 0}
        problem(kss.get("/subscriptions/globex-1"), 404, "SUBSCRIBER_NOT_FOUND")
        mine = kss.get("/subscriptions/acme-1").json()
        assert (mine["customer_id"], mine["product_id"], mine["activation_code"]) == ("eve-co", "KSOS", eve_code)
    # And the first partner's views are unchanged by Eve.
    with client(server, reseller["token"]) as kss:
        assert kss.get("/bills/2026-04").json()["totals"]["amount"] == "75.00"
        assert "eve" not in {e["actor"] for e in kss.get("/audit", params={"limit": 1000}).json()["items"]}
        assert kss.get("/subscriptions/acme-1").json()["activation_code"] == reseller["codes"]["acme-1"]


# --- control plane: prepaid licences, code pool, partner settings ---------------------------


def test_KSS_PREPAID_1_seeded_prepaid_licences_block_an_order_until_phased_out(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    partner = new_partner(programme="reseller", now="2026-04-15T09:00:00Z")
    pid = partner["id"]
    seed = {"customer_id": "acme", "product_id": "KESB-SELECT", "licence_count": 25, "expires_on": "2026-05-01"}
    created = admin.post(f"/partners/{pid}/kss/prepaid", json=seed)
    assert created.status_code == 201, created.text
    body = created.json()
    assert isinstance(body.pop("id"), int)
    assert body == {**seed, "active": True, "created_at": "2026-04-15T09:00:00Z"}
    assert code_of(server, pid, activate("acme-1", "acme", "KESB-SELECT", 10, start="2026-04-15T09:00")) == 703
    # Another product, or another customer, is not blocked.
    ok(server, pid, activate("acme-2", "acme", "KESC", 10, start="2026-04-15T09:00"))
    ok(server, pid, activate("other-1", "other", "KESB-SELECT", 10, start="2026-04-15T09:00"))
    advance_to(admin, pid, "2026-05-01T00:00:00Z")  # phased out: active while today < expires_on
    listed = admin.get(f"/partners/{pid}/kss/prepaid").json()["items"]
    assert [(x["customer_id"], x["licence_count"], x["active"]) for x in listed] == [("acme", 25, False)]
    ok(server, pid, activate("acme-1", "acme", "KESB-SELECT", 10, start="2026-05-01T00:00"))


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"customer_id": "acme", "product_id": "KXYZ", "licence_count": 1, "expires_on": "2026-05-01"},
            422,
            "UNKNOWN_PRODUCT",
        ),
        (
            {"customer_id": "acme", "product_id": "KIS", "licence_count": 0, "expires_on": "2026-05-01"},
            422,
            "VALIDATION_ERROR",
        ),
        ({"customer_id": "acme", "product_id": "KIS", "licence_count": 1}, 422, "VALIDATION_ERROR"),
        (
            {"customer_id": "acme", "product_id": "KIS", "licence_count": 1, "expires_on": "May"},
            422,
            "VALIDATION_ERROR",
        ),
    ],
)
def test_KSS_PREPAID_1_bad_seeds_are_refused_and_change_nothing(
    admin: httpx.Client, partner: dict[str, Any], body: dict[str, Any], status: int, code: str
) -> None:
    problem(admin.post(f"/partners/{partner['id']}/kss/prepaid", json=body), status, code)
    assert admin.get(f"/partners/{partner['id']}/kss/prepaid").json() == {"items": []}
    problem(admin.get("/partners/ptn_000000000000/kss/prepaid"), 404, "PARTNER_NOT_FOUND")


def test_KSS_CODE_1_an_empty_code_pool_refuses_new_subscriptions_not_reactivations(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    partner = new_partner(programme="xsp", now="2026-03-02T09:00:00Z")
    pid = partner["id"]
    assert admin.put(f"/partners/{pid}/kss/code-pool", json={"remaining": 1}).json() == {"remaining": 1}
    code = ok(server, pid, activate("home-1", "home", "KIS", 3)).activation_code
    assert code_of(server, pid, activate("home-2", "home", "KIS", 3)) == 8  # the pool is empty now
    ok(server, pid, HardCancel(next(_unit), "home-1", T("2026-03-02T09:00")))
    assert ok(server, pid, activate("home-1", "home", "KIS", 3)).activation_code == code  # no new code needed
    assert admin.put(f"/partners/{pid}/kss/code-pool", json={"remaining": None}).json() == {"remaining": None}
    ok(server, pid, activate("home-2", "home", "KIS", 3))
    for bad in ({"remaining": -1}, {"remaining": "5"}, {}, {"remaining": 1, "extra": True}):
        problem(admin.put(f"/partners/{pid}/kss/code-pool", json=bad), 422, "VALIDATION_ERROR")


def test_KSS_MSP_2_registration_can_change_at_any_time(server: Any, admin: httpx.Client, new_partner: Any) -> None:
    partner = new_partner(programme="msp", msp_registered=False, now="2026-03-02T09:00:00Z")
    pid = partner["id"]
    assert code_of(server, pid, activate("m-1", "m", "KSOS", 5)) == 704
    response = admin.patch(f"/partners/{pid}", json={"msp_registered": True})
    assert response.status_code == 200 and response.json()["msp_registered"] is True
    ok(server, pid, activate("m-1", "m", "KSOS", 5))
    assert admin.patch(f"/partners/{pid}", json={"msp_registered": False}).json()["msp_registered"] is False


def test_KSS_PERIOD_1_programme_period_and_zone_change_only_while_the_partner_has_no_data(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    partner = new_partner(programme="reseller", now="2026-03-02T09:00:00Z")
    pid = partner["id"]
    changed = admin.patch(
        f"/partners/{pid}", json={"programme": "msp", "billing_period": "30_days", "timezone": "Europe/Berlin"}
    )
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in ("programme", "msp_registered", "billing_period", "timezone", "today")} == {
        "programme": "msp",
        "msp_registered": True,
        "billing_period": "30_days",
        "timezone": "Europe/Berlin",
        "today": "2026-03-02",
    }
    ok(server, pid, activate("m-1", "m", "KSOS", 5))
    problem(admin.patch(f"/partners/{pid}", json={"billing_period": "calendar_month"}), 409, "PARTNER_IN_USE")
    problem(admin.patch(f"/partners/{pid}", json={"timezone": "UTC", "msp_registered": False}), 409, "PARTNER_IN_USE")
    after = admin.get(f"/partners/{pid}").json()
    assert (after["billing_period"], after["timezone"], after["msp_registered"]) == ("30_days", "Europe/Berlin", True)
    # Sending the current value is not a change.
    assert admin.patch(f"/partners/{pid}", json={"billing_period": "30_days"}).status_code == 200
    admin.post(f"/partners/{pid}/reset")
    assert (
        admin.patch(f"/partners/{pid}", json={"billing_period": "calendar_month"}).json()["billing_period"]
        == "calendar_month"
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "VALIDATION_ERROR"),
        ({"timezone": "Mars/Olympus"}, "VALIDATION_ERROR"),
        ({"timezone": "America"}, "VALIDATION_ERROR"),
        ({"programme": "vip"}, "VALIDATION_ERROR"),
        ({"name": "Renamed"}, "VALIDATION_ERROR"),
    ],
)
def test_SIM_ERR_1_bad_partner_updates_are_refused(
    admin: httpx.Client, partner: dict[str, Any], body: dict[str, Any], code: str
) -> None:
    problem(admin.patch(f"/partners/{partner['id']}", json=body), 422, code)
    assert admin.get(f"/partners/{partner['id']}").json() == {
        k: v for k, v in partner.items() if k not in ("token", "kss")
    }
