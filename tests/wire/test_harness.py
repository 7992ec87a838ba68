"""The test harness on a real socket (docs/harness.md): every fault kind as real clients see it (httpx for REST,
raw XML over httpx and zeep for SOAP), the lost answer, the request journal with its contract verdicts, its bound,
verify, strict contract mode on each service, and isolation between partners."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import zeep
from lxml import etree

from ksimkit.simulators.app import create_app
from ksimkit.simulators.client import KsimAdmin, KsimError, KsimVerificationError, PartnerHandle
from ksimkit.simulators.core.settings import Settings
from ksimkit.simulators.server import InProcessServer
from tests.wire.conftest import KSS, SAFE, KssPartner, q, read_answer, read_fault, zeep_call, zeep_units

pytestmark = pytest.mark.wire

ADMIN_TOKEN = "test-admin"  # tests/conftest.py's server
ORDER = {"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}
NOW = "2026-04-15T09:00:00Z"


def activate(unit: int, sid: str, product: str = "KIS") -> str:
    return (
        f'<Activate UnitId="{unit}" SubscriberId="{sid}" StartTime="2026-04-15T09:00:00Z" EndTime="indefinite" '
        f'LicenseCount="1" ProductId="{product}"/>'
    )


def get_info(unit: int, sid: str) -> str:
    return f'<GetInfo UnitId="{unit}" SubscriberId="{sid}" InfoSection="Subscription"/>'


@pytest.fixture
def ksim(server: InProcessServer) -> Iterator[KsimAdmin]:
    with KsimAdmin(server.url, ADMIN_TOKEN) as admin:
        yield admin


@pytest.fixture
def handle(ksim: KsimAdmin) -> PartnerHandle:
    return ksim.create_partner(now=NOW)


@pytest.fixture
def korm_of() -> Iterator[Any]:
    made: list[httpx.Client] = []

    def make(partner: PartnerHandle, **kwargs: Any) -> httpx.Client:
        client = partner.korm(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def add_fault(admin: httpx.Client, partner_id: str, **rule: Any) -> dict[str, Any]:
    response = admin.post(f"/partners/{partner_id}/faults", json=rule)
    assert response.status_code == 201, response.text
    return response.json()


def subscriptions(korm: httpx.Client) -> list[dict[str, Any]]:
    response = korm.get("/subscriptions", params={"include_deleted": "true"})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def last_entry(partner: PartnerHandle, **filters: Any) -> dict[str, Any]:
    page = partner.journal(**filters, limit=1000)
    assert page["items"], f"no journal entry matches {filters}"
    return page["items"][-1]


# ============================================================================== fault kinds, REST (httpx)


def test_SIM_ERR_1_status_fault_answers_problem_json_and_changes_nothing(handle: PartnerHandle, korm_of: Any) -> None:
    korm = korm_of(handle)
    rule = handle.inject_fault(
        "status", status=503, retry_after=7, service="korm", operation="createSubscription", times=1
    )
    assert (rule["status"], rule["code"], rule["active"], rule["remaining"]) == (503, "SERVICE_UNAVAILABLE", True, 1)
    assert korm.get("/products").status_code == 200  # another operation: the rule does not match
    answer = korm.post("/subscriptions", json=ORDER)
    assert answer.status_code == 503 and answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["retry-after"] == "7" and answer.headers["x-ksim-fault"] == rule["id"]
    problem = answer.json()
    assert (problem["code"], problem["status"], problem["fault"]) == ("SERVICE_UNAVAILABLE", 503, rule["id"])
    assert problem["type"] == "https://ksim.dev/problems/service-unavailable" and problem["title"] and problem["detail"]
    assert subscriptions(korm) == [] and handle.audit()["total"] == 0  # before: rolled back
    assert korm.post("/subscriptions", json=ORDER).status_code == 201  # the rule is spent
    (spent,) = handle.faults()
    assert (spent["fired"], spent["matched"], spent["remaining"], spent["active"]) == (1, 1, 0, False)
    entry = last_entry(handle, faulted=True)
    assert entry["status"] == 503 and entry["fault"]["id"] == rule["id"] and entry["fault"]["answer_status"] == 201


def test_delay_fault_answers_late_and_applies_the_request(handle: PartnerHandle, korm_of: Any) -> None:
    korm = korm_of(handle)
    handle.inject_fault("delay", delay_ms=300, operation="createSubscription", times=1)
    handle.inject_fault("delay", delay_ms=100, delay_max_ms=200, operation="listSubscriptions", times=1)
    started = time.monotonic()
    assert korm.post("/subscriptions", json=ORDER).status_code == 201
    fixed = time.monotonic() - started
    started = time.monotonic()
    assert len(subscriptions(korm)) == 1  # the delayed order was applied
    varied = time.monotonic() - started
    assert fixed >= 0.25 and varied >= 0.08  # loosely: the answers came late
    fired = [e["fault"] for e in handle.journal(faulted=True)["items"]]
    assert [f["kind"] for f in fired] == ["delay", "delay"]
    assert fired[0]["delay_ms"] == 300 and 100 <= fired[1]["delay_ms"] <= 200
    assert handle.journal(faulted=True)["items"][0]["duration_ms"] >= 300


def test_malformed_body_breaks_the_clients_json_parser(handle: PartnerHandle, korm_of: Any) -> None:
    korm = korm_of(handle)
    handle.inject_fault("malformed", service="korm", operation="createSubscription", times=1)
    answer = korm.post("/subscriptions", json=ORDER)
    assert answer.status_code == 201  # the status the service would have given
    with pytest.raises(json.JSONDecodeError):
        answer.json()
    assert subscriptions(korm) == []  # before: nothing was ordered


def test_truncated_body_is_a_transport_error(handle: PartnerHandle, korm_of: Any) -> None:
    korm = korm_of(handle)
    korm.post("/subscriptions", json=ORDER)
    handle.inject_fault("truncated", operation="listSubscriptions", times=1)
    with pytest.raises(httpx.TransportError):
        korm.get("/subscriptions")
    assert len(subscriptions(korm)) == 1  # the next call is whole
    entry = last_entry(handle, faulted=True)
    assert entry["fault"]["kind"] == "truncated" and entry["response"]["body_bytes"] > 0


def test_dropped_connection_is_a_transport_error_and_changes_nothing(handle: PartnerHandle, korm_of: Any) -> None:
    korm = korm_of(handle)
    handle.inject_fault("drop", operation="createSubscription", times=1)
    with pytest.raises(httpx.TransportError):
        korm.post("/subscriptions", json=ORDER, headers={"Idempotency-Key": "drop-1"})
    assert subscriptions(korm) == [] and handle.audit()["total"] == 0
    retry = korm.post("/subscriptions", json=ORDER, headers={"Idempotency-Key": "drop-1"})
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers  # nothing was stored
    entry = last_entry(handle, faulted=True)
    assert entry["status"] is None and entry["response"] is None and entry["fault"]["kind"] == "drop"


@pytest.mark.parametrize(("kind", "raises"), [("drop", True), ("truncated", True), ("status", False)])
def test_SIM_IDEM_1_lost_answer_the_order_exists_and_a_retry_gets_the_stored_answer(
    handle: PartnerHandle, korm_of: Any, kind: str, raises: bool
) -> None:
    korm = korm_of(handle)
    handle.inject_fault(kind, service="korm", operation="createSubscription", when="after", times=1)
    headers = {"Idempotency-Key": f"lost-{kind}"}
    if raises:
        with pytest.raises(httpx.TransportError):
            korm.post("/subscriptions", json=ORDER, headers=headers)
    else:
        assert korm.post("/subscriptions", json=ORDER, headers=headers).status_code == 503
    (created,) = subscriptions(korm)  # the broker saw an error, yet the vendor placed the order
    retry = korm.post("/subscriptions", json=ORDER, headers=headers)
    assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == created["id"]
    assert len(subscriptions(korm)) == 1  # once, not twice
    assert handle.verify(2, operation="createSubscription") == 2
    assert handle.verify(1, operation="createSubscription", faulted=True) == 1


def test_fault_scope_count_and_removal(handle: PartnerHandle, korm_of: Any) -> None:
    korm = korm_of(handle)
    two = handle.inject_fault("status", status=500, service="korm", operation="listProducts", times=2)
    forever = handle.inject_fault("status", status=429, code="SLOW_DOWN", service="kss-rest")
    statuses = [korm.get("/products").status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    with handle.kss_rest() as kss_rest:
        assert [kss_rest.get("/audit").status_code for _ in range(2)] == [429, 429]
        assert kss_rest.get("/audit").json()["code"] == "SLOW_DOWN"
        assert handle.fault(two["id"])["fired"] == 2 and handle.fault(forever["id"])["remaining"] is None
        handle.remove_fault(forever["id"])
        assert kss_rest.get("/audit").status_code == 200
    with pytest.raises(KsimError) as caught:
        handle.fault(forever["id"])
    assert (caught.value.status, caught.value.code) == (404, "FAULT_NOT_FOUND")
    handle.inject_fault("drop")
    handle.clear_faults()
    assert handle.faults() == [] and korm.get("/products").status_code == 200


def test_probability_is_seeded_so_runs_repeat(ksim: KsimAdmin, korm_of: Any) -> None:
    runs = []
    for _ in range(2):
        partner = ksim.create_partner(now=NOW)
        korm = korm_of(partner)
        partner.inject_fault("status", status=503, operation="listProducts", probability=0.5, seed=42)
        runs.append([korm.get("/products").status_code for _ in range(16)])
    assert runs[0] == runs[1] and 0 < runs[0].count(503) < 16


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ({"kind": "transaction_error"}, "/service"),
        ({"kind": "unit_error", "service": "korm"}, "/service"),
        ({"kind": "status", "operation": "createSubscripton"}, "/operation"),
        ({"kind": "status", "service": "korm", "operation": "Activate"}, "/operation"),
        ({"kind": "drop", "status": 500}, "/status"),
        ({"kind": "delay"}, "/delay_ms"),
        ({"kind": "delay", "delay_ms": 5, "when": "before"}, "/when"),
        ({"kind": "drop", "delay_ms": 50, "delay_max_ms": 10}, "/delay_max_ms"),
        ({"kind": "explode"}, "/kind"),
        ({"kind": "drop", "probability": 0}, "/probability"),
    ],
)
def test_SIM_ERR_1_a_rule_that_cannot_work_is_refused(
    admin: httpx.Client, partner: dict[str, Any], rule: dict[str, Any], where: str
) -> None:
    answer = admin.post(f"/partners/{partner['id']}/faults", json=rule)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["code"] == "VALIDATION_ERROR" and problem["errors"][0]["path"].startswith(where)
    assert admin.get(f"/partners/{partner['id']}/faults").json()["items"] == []


# ============================================================================== fault kinds, KSS SOAP


def test_SIM_ERR_1_soap_fault_answers_a_fault_and_changes_nothing(admin: httpx.Client, kss_partner: Any) -> None:
    kp: KssPartner = kss_partner()
    rule = add_fault(
        admin, kp.id, kind="soap_fault", service="kss", operation="Activate", times=1, message="vendor backend down"
    )
    txn = kp.txn()
    fault = read_fault(kp.post(kp.envelope(activate(1, "sub-1"), txn)))
    assert (fault.status, fault.code, fault.message) == (500, "Server", "vendor backend down")
    assert kp.info("sub-1") == 5 and kp.audit_total() == 0  # nothing activated
    assert kp.send(activate(1, "sub-1"), txn)[1].ok  # the TransactionId was not used up
    assert admin.get(f"/partners/{kp.id}/faults/{rule['id']}").json()["fired"] == 1


def test_SIM_IDEM_1_transaction_error_before_and_after(admin: httpx.Client, kss_partner: Any) -> None:
    kp: KssPartner = kss_partner()
    add_fault(admin, kp.id, kind="transaction_error", service="kss", operation="Activate", error_code=99, times=1)
    txn = kp.txn()
    code, message = kp.send(activate(1, "sub-1"), txn).transaction_error
    assert code == 99 and "fault rule" in message
    assert kp.info("sub-1") == 5  # before: nothing changed
    assert kp.send(activate(1, "sub-1"), txn)[1].ok  # ... and the TransactionId is free

    # after: the lost answer of KSS. The container is applied; the retry is a duplicated order (error 6).
    add_fault(
        admin,
        kp.id,
        kind="transaction_error",
        service="kss",
        operation="Activate",
        error_code=99,
        when="after",
        times=1,
        message="timeout",
    )
    txn = kp.txn()
    assert kp.send(activate(1, "sub-2"), txn).transaction_error == (99, "timeout")
    assert kp.info("sub-2")["Status"] == "Started"
    assert kp.send(activate(1, "sub-2"), txn).transaction_error[0] == 6


def test_unit_error_before_leaves_out_only_the_units_it_names(admin: httpx.Client, kss_partner: Any) -> None:
    kp: KssPartner = kss_partner()
    assert kp.send(activate(1, "sub-1"))[1].ok
    add_fault(
        admin,
        kp.id,
        kind="unit_error",
        service="kss",
        operation="Activate",
        error_code=777,
        times=1,
        message="activation server busy",
    )
    answer = kp.send(activate(1, "sub-2") + get_info(2, "sub-1") + activate(3, "sub-3"))
    assert answer.transaction_error is None
    assert (answer[1].kind, answer[1].code, answer[1]["ErrorMessage"]) == (
        "ActivateError",
        777,
        "activation server busy",
    )
    assert (answer[2].kind, answer[2].ok) == ("GetInfo", True)  # the unit the rule does not name is answered
    assert (answer[3].kind, answer[3].code) == ("ActivateError", 777)
    assert kp.info("sub-2") == 5 and kp.info("sub-3") == 5


def test_unit_error_after_reports_a_failure_that_happened_anyway(admin: httpx.Client, kss_partner: Any) -> None:
    kp: KssPartner = kss_partner()
    add_fault(admin, kp.id, kind="unit_error", service="kss", operation="Activate", when="after", times=1)
    answer = kp.send(activate(1, "sub-1") + get_info(2, "nobody"))
    assert (answer[1].kind, answer[1].code) == ("ActivateError", 99)
    assert answer.order == [("error", 1), ("error", 2)]  # request order
    assert kp.info("sub-1")["Status"] == "Started"  # it was activated all the same


def test_wire_faults_through_zeep(admin: httpx.Client, kss_partner: Any, zeep_from_contract: Any) -> None:
    client, service = zeep_from_contract
    kp: KssPartner = kss_partner()
    t = lambda name: client.get_type(q(KSS, name))
    act = lambda unit, sid: {
        "Activate": t("SubscriptionRequestActivateItem")(
            UnitId=unit, SubscriberId=sid, StartTime=dt.datetime(2026, 4, 15, 9), EndTime="indefinite", ProductId="KIS"
        )
    }
    add_fault(admin, kp.id, kind="malformed", service="kss", times=1)
    with pytest.raises((zeep.exceptions.Error, etree.XMLSyntaxError)):  # zeep: "invalid XML"
        zeep_call(client, service, kp, [act(1, "sub-1")])
    add_fault(admin, kp.id, kind="drop", service="kss", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        zeep_call(client, service, kp, [act(1, "sub-1")])
    add_fault(admin, kp.id, kind="transaction_error", service="kss", error_code=8, times=1)
    assert zeep_call(client, service, kp, [act(1, "sub-1")]).TransactionError.ErrorCode == 8
    add_fault(admin, kp.id, kind="unit_error", service="kss", error_code=9, times=1)
    units = zeep_units(zeep_call(client, service, kp, [act(1, "sub-1")]))
    assert (units[1][0], units[1][1], units[1][2].ErrorCode) == ("ActivateError", False, 9)
    assert kp.info("sub-1") == 5  # none of it activated anything
    assert zeep_units(zeep_call(client, service, kp, [act(1, "sub-1")]))[1][1] is True


def test_status_and_raw_wire_faults_on_soap(admin: httpx.Client, kss_partner: Any) -> None:
    kp: KssPartner = kss_partner()
    add_fault(admin, kp.id, kind="status", service="kss", status=502, times=1)
    answer = kp.post(kp.envelope(activate(1, "sub-1")))
    assert answer.status_code == 502 and answer.json()["code"] == "BAD_GATEWAY"
    add_fault(admin, kp.id, kind="malformed", service="kss", times=1)
    answer = kp.post(kp.envelope(activate(1, "sub-1")))
    assert answer.status_code == 200 and answer.headers["content-type"] == "text/xml; charset=utf-8"
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(answer.content, SAFE)
    add_fault(admin, kp.id, kind="truncated", service="kss", times=1)
    with pytest.raises(httpx.TransportError):
        kp.post(kp.envelope(activate(1, "sub-1")))
    assert kp.info("sub-1") == 5


# ============================================================================== the journal and its verdicts


def test_journal_verdict_korm_conforming_and_not(handle: PartnerHandle, korm_of: Any, server: Any) -> None:
    korm = korm_of(handle, actor="billing-job")
    assert korm.post("/subscriptions", json=ORDER, headers={"Idempotency-Key": "k-1"}).status_code == 201
    ok = last_entry(handle)
    assert ok["verdict"] == {"conforms": True, "violations": []}
    assert (ok["service"], ok["method"], ok["path"], ok["operation"], ok["status"]) == (
        "korm",
        "POST",
        "/korm/v1/subscriptions",
        "createSubscription",
        201,
    )
    assert ok["request"]["headers"]["authorization"] == "Bearer ***" and handle.token not in json.dumps(ok)
    assert json.loads(ok["request"]["body"]) == ORDER and ok["request"]["body_truncated"] is False
    assert json.loads(ok["response"]["body"])["quantity"] == 25 and ok["partner_now"] == NOW
    assert ok["duration_ms"] > 0 and ok["fault"] is None and ok["items"] == []

    # Tolerated by the service, but not by the contract: each is listed.
    body = json.dumps({**ORDER, "customer_id": "globex"}).encode()
    tolerated = korm.post(
        "/subscriptions?dry_run=1", content=body, headers={"Idempotency-Key": "x" * 300, "Content-Type": ""}
    )
    assert tolerated.status_code in (201, 422)
    bad = last_entry(handle)
    assert bad["verdict"]["conforms"] is False
    where = {(v["in"], v["path"]) for v in bad["verdict"]["violations"]}
    assert {
        ("query", "/query/dry_run"),
        ("header", "/headers/Idempotency-Key"),
        ("header", "/headers/Content-Type"),
    } <= where
    korm.get("/subscriptions", params={"status": "active", "status ": "x", "include_deleted": "yes"})
    bad = last_entry(handle)
    assert {v["path"] for v in bad["verdict"]["violations"]} == {"/query/status ", "/query/include_deleted"}
    korm.get(f"/subscriptions/{'s' * 70}")
    assert last_entry(handle)["verdict"]["violations"][0]["path"] == "/path/subscription_id"
    korm.get("/no-such-route")
    route = last_entry(handle)
    assert route["status"] == 404 and route["operation"] is None and route["verdict"]["violations"][0]["in"] == "route"
    korm.request("DELETE", "/subscriptions")
    assert "the contract has GET, POST" in last_entry(handle)["verdict"]["violations"][0]["message"]
    korm.post("/subscriptions", json={"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": "25"})
    assert last_entry(handle)["verdict"]["violations"] == [
        {"in": "body", "path": "/quantity", "message": '"25" is not of type integer'}
    ]
    assert handle.verify(at_least=5, conforms=False) >= 5
    # A request with another partner's or no token is not this partner's: not journaled.
    total = handle.journal()["total"]
    httpx.get(server.url + "/korm/v1/subscriptions", headers={"Authorization": "Bearer nope"})
    assert handle.journal()["total"] == total


def test_journal_verdict_kss_soap_conforming_and_not(admin: httpx.Client, kss_partner: Any) -> None:
    kp: KssPartner = kss_partner()
    assert kp.send(activate(1, "sub-1") + get_info(2, "sub-1"))[1].ok
    entries = admin.get(f"/partners/{kp.id}/journal", params={"service": "kss"}).json()["items"]
    (ok,) = entries
    assert ok["verdict"] == {"conforms": True, "violations": []}
    assert (ok["operation"], ok["items"], ok["status"]) == ("SubscriptionRequest", ["Activate", "GetInfo"], 200)
    assert kp.password not in ok["request"]["body"] and "<Password>***</Password>" in ok["request"]["body"]
    assert "ActivationCode" in ok["response"]["body"]

    # Tolerated: no SOAPAction, a SOAP 1.2 media type, a header entry the contract does not declare.
    extra = f'<Trace xmlns="urn:x">1</Trace><AccessInfo xmlns="{KSS}"><UserName>{kp.username}</UserName>'
    body = kp.envelope(get_info(1, "sub-1")).replace(
        f'<AccessInfo xmlns="{KSS}"><UserName>{kp.username}</UserName>', extra
    )
    answer = kp.post(body, soap_action=None, content_type="application/soap+xml; charset=utf-8")
    assert answer.status_code == 200
    bad = admin.get(f"/partners/{kp.id}/journal", params={"conforms": "false"}).json()["items"][-1]
    assert {(v["in"], v["path"]) for v in bad["verdict"]["violations"]} == {
        ("header", "/headers/SOAPAction"),
        ("header", "/headers/Content-Type"),
        ("soap-header", "/Envelope/Header/Trace"),
    }

    # Refused by the XSD (709): the journal lists the schema's complaints, with where they are.
    answer = kp.send(
        '<Activate SubscriberId="s" StartTime="2026-04-15T09:00:00Z" EndTime="indefinite" ProductId="KIS"/>'
    )
    assert answer.transaction_error[0] == 709
    bad = admin.get(f"/partners/{kp.id}/journal", params={"operation": "Activate", "conforms": "false"}).json()["items"]
    (schema,) = bad
    assert (
        schema["verdict"]["violations"][0]["in"] == "body" and "UnitId" in schema["verdict"]["violations"][0]["message"]
    )
    assert schema["verdict"]["violations"][0]["path"] == "/SubscriptionRequestContainer/SubscriptionRequest/Activate"


def test_journal_verdict_kss_rest_conforming_and_not(handle: PartnerHandle) -> None:
    with handle.kss_rest() as kss_rest:
        assert kss_rest.get("/bills/2026-04").status_code == 200
        assert kss_rest.get("/audit", params={"limit": "5000", "sort": "desc"}).status_code == 422
        kss_rest.get("/bills/April")
    ok, limit, period = handle.journal(service="kss-rest")["items"]
    assert ok["verdict"]["conforms"] and ok["operation"] == "getBill"
    assert {v["path"] for v in limit["verdict"]["violations"]} == {"/query/limit", "/query/sort"}
    assert period["verdict"]["violations"][0]["path"] == "/path/period"
    assert handle.verify(2, service="kss-rest", conforms=False) == 2


def test_journal_filters_and_clear(handle: PartnerHandle, korm_of: Any, admin: httpx.Client) -> None:
    korm = korm_of(handle)
    korm.post("/subscriptions", json=ORDER)
    korm.get("/products")
    korm.get("/products", params={"billing_model": "weekly"})
    assert handle.journal(method="get")["total"] == 2
    assert handle.journal(status=422)["items"][0]["query"] == "billing_model=weekly"
    assert handle.journal(path="/korm/v1/subscriptions")["total"] == 1
    assert [e["id"] for e in handle.journal(limit=2, offset=1)["items"]] == [
        e["id"] for e in handle.journal()["items"][1:3]
    ]
    for bad in ({"status": "teapot"}, {"conforms": "maybe"}, {"service": "ftp"}, {"limit": "0"}):
        answer = admin.get(f"/partners/{handle.id}/journal", params=bad)
        assert answer.status_code == 422 and answer.json()["code"] == "VALIDATION_ERROR"
    handle.clear_journal()
    assert handle.journal()["total"] == 0


def test_verify_matches_or_lists_what_was_seen(handle: PartnerHandle, korm_of: Any, admin: httpx.Client) -> None:
    korm = korm_of(handle)
    korm.post("/subscriptions", json=ORDER)
    korm.get("/subscriptions")
    assert handle.verify(operation="createSubscription") == 1  # default: at least once
    assert handle.verify(1, method="POST", status=201) == 1
    assert handle.verify(at_least=1, at_most=2, service="korm") == 2
    assert handle.verify(0, conforms=False) == 0
    with pytest.raises(KsimVerificationError) as caught:
        handle.verify(2, operation="createSubscription")
    error = caught.value
    assert isinstance(error, AssertionError) and (error.status, error.code, error.matched) == (
        409,
        "VERIFICATION_FAILED",
        1,
    )
    assert error.expected == {"count": 2} and [s["operation"] for s in error.seen] == [
        "createSubscription",
        "listSubscriptions",
    ]
    assert "POST /korm/v1/subscriptions -> 201" in error.detail
    answer = admin.post(f"/partners/{handle.id}/journal/verify", json={"count": 1, "at_least": 1})
    assert answer.status_code == 422
    assert admin.post(f"/partners/{handle.id}/journal/verify").json()["matched"] == 2  # no body: at least one of any


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """A server that keeps 3 entries per partner with bodies clipped at 40 bytes, and is strict by default."""
    db = tmp_path_factory.mktemp("ksim-small") / "state.db"
    settings = Settings(
        database_url=f"sqlite:///{db}",
        admin_token=ADMIN_TOKEN,
        journal_limit=3,
        journal_body_bytes=40,
        strict_contract=True,
    )
    with InProcessServer(create_app(settings)) as srv:
        yield srv


def test_journal_is_bounded_per_partner_and_clips_bodies(small_server: InProcessServer, korm_of: Any) -> None:
    with KsimAdmin(small_server.url, ADMIN_TOKEN) as ksim:
        one, two = ksim.create_partner(now=NOW), ksim.create_partner(now=NOW)
        korm_one, korm_two = korm_of(one), korm_of(two)
        korm_two.get("/products")
        for i in range(5):
            korm_one.post("/subscriptions", json={**ORDER, "customer_id": f"c{i}"})
        page = one.journal()
        assert page["total"] == 3  # the oldest two were dropped
        bodies = [e["request"] for e in page["items"]]
        assert all(b["body_truncated"] and len(b["body"]) == 40 and b["body_bytes"] > 40 for b in bodies)
        customers = [next(c for c in ("c0", "c1", "c2", "c3", "c4") if f'"{c}"' in b["body"]) for b in bodies]
        assert customers == ["c2", "c3", "c4"]
        assert two.journal()["total"] == 1  # another partner's bound is its own


def test_journal_off_with_limit_zero(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 's.db'}", admin_token=ADMIN_TOKEN, journal_limit=0)
    app = create_app(settings)
    with KsimAdmin("http://ksim", ADMIN_TOKEN, transport=httpx.WSGITransport(app=app)) as ksim:
        partner = ksim.create_partner(now=NOW)
        with partner.korm() as korm:
            assert korm.get("/products").status_code == 200
        assert partner.journal()["total"] == 0


# ============================================================================== strict contract mode


def test_SIM_ERR_1_strict_korm_refuses_what_it_would_tolerate(handle: PartnerHandle, korm_of: Any) -> None:
    korm = korm_of(handle)
    assert korm.get("/products", params={"colour": "red"}).status_code == 200  # tolerated, but recorded
    assert handle.verify(1, conforms=False) == 1
    strict = handle.set_strict(True)
    assert strict.strict_contract is True and strict.info["strict_contract"] is True
    refused = korm.post("/subscriptions?dry_run=1", json=ORDER)
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert (problem["code"], problem["rule"]) == ("VALIDATION_ERROR", "SIM-ERR-1")
    assert problem["errors"] == [
        {
            "in": "query",
            "path": "/query/dry_run",
            "message": "unknown query parameter 'dry_run' (the operation takes: none)",
        }
    ]
    no_type = korm.post("/subscriptions", content=json.dumps(ORDER).encode(), headers={"Content-Type": ""})
    assert no_type.status_code == 422 and no_type.json()["errors"][0]["path"] == "/headers/Content-Type"
    assert subscriptions(korm) == [] and handle.audit()["total"] == 0  # nothing changed
    assert korm.post("/subscriptions", json=ORDER).status_code == 201  # a conforming request goes through
    assert handle.set_strict(False).strict_contract is False
    assert korm.post("/subscriptions?dry_run=1", json={**ORDER, "customer_id": "b"}).status_code == 201


def test_SIM_ERR_1_strict_kss_answers_709_and_uses_nothing_up(admin: httpx.Client, kss_partner: Any) -> None:
    kp: KssPartner = kss_partner(strict_contract=True)
    txn = kp.txn()
    refused = read_answer(kp.post(kp.envelope(activate(1, "sub-1"), txn), soap_action=None), kp.schema)
    code, message = refused.transaction_error
    assert code == 709 and "strict contract mode" in message and "SOAPAction" in message
    assert kp.info("sub-1") == 5
    assert kp.send(activate(1, "sub-1"), txn)[1].ok  # corrected, with the same TransactionId
    assert admin.patch(f"/partners/{kp.id}", json={"strict_contract": None}).json()["strict_contract"] is None
    answer = read_answer(kp.post(kp.envelope(get_info(1, "sub-1")), soap_action=None), kp.schema)
    assert answer.transaction_error is None  # the setting (false) applies again


def test_strict_setting_is_the_default_and_a_partner_may_opt_out(small_server: InProcessServer, korm_of: Any) -> None:
    with KsimAdmin(small_server.url, ADMIN_TOKEN) as ksim:
        partner = ksim.create_partner(now=NOW)
        assert partner.strict_contract is None
        korm = korm_of(partner)
        assert korm.get("/products", params={"x": "1"}).status_code == 422
        relaxed = ksim.create_partner(now=NOW, strict_contract=False)
        assert korm_of(relaxed).get("/products", params={"x": "1"}).status_code == 200


# ============================================================================== isolation and reset


def test_SIM_AUTH_1_a_partner_never_sees_anothers_journal_or_faults(
    ksim: KsimAdmin, korm_of: Any, admin: httpx.Client
) -> None:
    alice, bob = ksim.create_partner(now=NOW), ksim.create_partner(now=NOW)
    rule = alice.inject_fault("status", status=500, service="korm")
    assert korm_of(bob).post("/subscriptions", json=ORDER).status_code == 201  # alice's rule is not bob's
    assert korm_of(alice).get("/products").status_code == 500
    assert [e["operation"] for e in bob.journal()["items"]] == ["createSubscription"]
    assert [e["operation"] for e in alice.journal()["items"]] == ["listProducts"]
    assert bob.faults() == []
    for method in ("GET", "DELETE"):
        answer = admin.request(method, f"/partners/{bob.id}/faults/{rule['id']}")
        assert answer.status_code == 404 and answer.json()["code"] == "FAULT_NOT_FOUND"
    assert alice.fault(rule["id"])["active"] is True
    bob.clear_journal()
    assert alice.journal()["total"] == 1
    for path in ("/faults", "/journal"):
        assert admin.get(f"/partners/ptn_000000000000{path}").json()["code"] == "PARTNER_NOT_FOUND"
    assert (
        httpx.get(
            f"{ksim.base_url}/_sim/partners/{alice.id}/journal", headers={"Authorization": f"Bearer {alice.token}"}
        ).status_code
        == 401
    )


def test_reset_empties_journal_and_faults_but_keeps_strict(handle: PartnerHandle, korm_of: Any) -> None:
    korm = korm_of(handle)
    handle.set_strict(True)
    handle.inject_fault("drop", operation="getStatement")
    korm.get("/products")
    handle.reset()
    assert handle.faults() == [] and handle.journal()["total"] == 0
    assert korm.get("/products", params={"x": "1"}).status_code == 422


# ============================================================================== under gunicorn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_drop_and_journal_under_gunicorn_workers(tmp_path: Path) -> None:
    port = _free_port()
    (tmp_path / "none.toml").write_text("[ksim]\n")  # no settings of the outer run's ksim.toml
    env = {**os.environ, "KSIM_ADMIN_TOKEN": "serve-admin", "KSIM_CONFIG": str(tmp_path / "none.toml")}
    cmd = [
        sys.executable,
        "-m",
        "ksimkit.simulators.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
        "--database-url",
        f"sqlite:///{tmp_path / 'state.db'}",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        with KsimAdmin(base, "serve-admin") as ksim:
            ksim.wait_until_ready(timeout=20)
            partner = ksim.create_partner(now=NOW)
            partner.inject_fault("drop", operation="createSubscription", when="after", times=1)
            with partner.korm() as korm:
                with pytest.raises(httpx.TransportError):
                    korm.post("/subscriptions", json=ORDER, headers={"Idempotency-Key": "g-1"})
                for _ in range(4):  # fresh connections: both workers see the order and the journal
                    with partner.korm() as fresh:
                        assert len(fresh.get("/subscriptions").json()["items"]) == 1
                assert korm.post("/subscriptions", json=ORDER, headers={"Idempotency-Key": "g-1"}).status_code == 201
            assert partner.verify(1, faulted=True, operation="createSubscription") == 1
            assert partner.journal()["total"] == 6
    finally:
        proc.terminate()
        proc.wait(timeout=10)
