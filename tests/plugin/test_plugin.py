"""The control-plane client (against the project's real server) and the pytest plugin (run by pytester,
in-process and under xdist against one ``ksim serve``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from ksimkit.simulators.client import Clock, KsimAdmin, KsimError, PartnerHandle
from ksimkit.simulators.server import InProcessServer

pytest_plugins = ["pytester"]

ADMIN_TOKEN = "test-admin"  # the token of tests/conftest.py's `server`
KSS = "{http://schemas.kaspersky.com/services/subscription/2.0/}"
ORDER = {"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}
APRIL_15 = "2026-04-15T09:00:00Z"
UTC = dt.UTC


# ---------------------------------------------------------------------------------------- the client


@pytest.fixture
def ksim_admin(server: InProcessServer) -> Iterator[KsimAdmin]:
    with KsimAdmin(server.url, ADMIN_TOKEN) as admin:
        yield admin


@pytest.fixture
def handle(ksim_admin: KsimAdmin) -> PartnerHandle:
    return ksim_admin.create_partner(now=APRIL_15)


def test_create_partner_gives_a_handle_with_credentials(ksim_admin: KsimAdmin, server: InProcessServer) -> None:
    partner = ksim_admin.create_partner(
        name="Contoso Cloud GmbH",
        programme="msp",
        timezone="Europe/Berlin",
        billing_period="30_days",
        now=dt.datetime(2026, 4, 15, 9, 0, tzinfo=UTC),
    )
    assert partner.id.startswith("ptn_") and partner.token and partner.kss_username and partner.kss_password
    assert (partner.name, partner.programme, partner.timezone, partner.billing_period) == (
        "Contoso Cloud GmbH",
        "msp",
        "Europe/Berlin",
        "30_days",
    )
    assert partner.msp_registered is True  # the server's default for msp
    assert partner.base_url == server.url and partner.korm_url == server.url + "/korm/v1"
    assert partner.kss_soap_url == server.url + "/kss/soap/upi"
    assert partner.info["today"] == "2026-04-15"
    assert partner.token not in repr(partner) and partner.kss_password not in repr(partner)
    listed = {p["id"]: p for p in ksim_admin.partners()}
    assert listed[partner.id]["name"] == "Contoso Cloud GmbH" and "token" not in listed[partner.id]
    assert ksim_admin.partner(partner.id) == listed[partner.id]
    assert ksim_admin.health()["status"] == "ok"


def test_SIM_CLOCK_1_set_advance_and_reset(handle: PartnerHandle) -> None:
    start = dt.datetime(2026, 4, 15, 9, 0, tzinfo=UTC)
    assert handle.clock() == Clock(start, dt.date(2026, 4, 15), "UTC")
    assert handle.set_clock(dt.datetime(2026, 4, 16, 9, 0, tzinfo=UTC)).today == dt.date(2026, 4, 16)
    assert handle.advance(days=2).now == dt.datetime(2026, 4, 18, 9, 0, tzinfo=UTC)
    assert handle.advance(hours=15).now == dt.datetime(2026, 4, 19, 0, 0, tzinfo=UTC)
    assert handle.advance(to=dt.date(2026, 5, 1)).now == dt.datetime(2026, 5, 1, tzinfo=UTC)
    assert handle.advance(to="2026-06-01T12:00:00Z").today == dt.date(2026, 6, 1)
    assert handle.advance(to=dt.datetime(2026, 6, 2, tzinfo=UTC)).today == dt.date(2026, 6, 2)
    assert handle.clock().now == dt.datetime(2026, 6, 2, tzinfo=UTC)
    assert handle.reset().now == start


def test_advance_takes_exactly_one_argument_and_aware_times(handle: PartnerHandle) -> None:
    for kwargs in ({}, {"days": 1, "hours": 2}, {"days": 1, "to": "2026-05-01"}):
        with pytest.raises(ValueError, match="exactly one"):
            handle.advance(**kwargs)
    with pytest.raises(ValueError, match="time zone"):
        handle.set_clock(dt.datetime(2026, 5, 1))
    assert handle.clock().now == dt.datetime(2026, 4, 15, 9, 0, tzinfo=UTC)  # nothing was sent


def test_KsimError_404_partner_not_found(ksim_admin: KsimAdmin) -> None:
    with pytest.raises(KsimError) as caught:
        ksim_admin.partner("ptn_000000000000")
    error = caught.value
    assert (error.status, error.code, error.rule) == (404, "PARTNER_NOT_FOUND", None)
    assert error.type == "https://ksim.dev/problems/partner-not-found" and error.title and error.detail
    assert error.problem["status"] == 404 and error.method == "GET" and error.url.endswith("/ptn_000000000000")
    assert str(error).startswith("404 PARTNER_NOT_FOUND: ")


def test_KsimError_409_clock_backwards_and_approval_code_exists(handle: PartnerHandle) -> None:
    with pytest.raises(KsimError) as caught:
        handle.set_clock("2026-04-01T00:00:00Z")
    assert (caught.value.status, caught.value.code, caught.value.rule) == (409, "CLOCK_BACKWARDS", "SIM-CLOCK-1")
    assert "(SIM-CLOCK-1)" in str(caught.value)
    handle.create_approval_code("15", "2026-12-31", code="APR-TWICE")
    with pytest.raises(KsimError) as caught:
        handle.create_approval_code("10", dt.date(2026, 12, 31), code="APR-TWICE")
    assert (caught.value.status, caught.value.code) == (409, "APPROVAL_CODE_EXISTS")
    assert [c["percent"] for c in handle.approval_codes()] == ["15.00"]


def test_KsimError_422_carries_the_validation_errors(handle: PartnerHandle) -> None:
    with pytest.raises(KsimError) as caught:
        handle.advance(days=40_000)
    assert (caught.value.status, caught.value.code) == (422, "VALIDATION_ERROR")
    assert caught.value.errors and {"path", "message"} <= caught.value.errors[0].keys()


def test_KsimError_401_on_a_wrong_admin_token(server: InProcessServer, handle: PartnerHandle) -> None:
    for token in ("wrong", handle.token):  # partner tokens are refused too
        with KsimAdmin(server.url, token) as intruder, pytest.raises(KsimError) as caught:
            intruder.partners()
        assert (caught.value.status, caught.value.code) == (401, "UNAUTHORIZED")


def test_KsimError_from_an_answer_that_is_not_problem_json() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>Bad gateway</html>"))
    with KsimAdmin("http://ksim.invalid", transport=transport) as admin, pytest.raises(KsimError) as caught:
        admin.partners()
    assert (caught.value.status, caught.value.code, caught.value.rule) == (502, "HTTP_502", None)
    assert "Bad gateway" in caught.value.detail


def test_transport_runs_the_app_without_a_socket(server: InProcessServer) -> None:
    with KsimAdmin("http://ksim.test", ADMIN_TOKEN, transport=httpx.WSGITransport(app=server.app)) as admin:
        partner = admin.create_partner(now=APRIL_15)
        with partner.korm() as korm:
            assert korm.post("/subscriptions", json=ORDER).status_code == 201
        assert partner.audit(service="korm")["total"] == 1


def test_KSS_AUDIT_1_audit_filters(handle: PartnerHandle) -> None:
    with handle.korm(actor="billing-job") as korm:
        first = korm.post("/subscriptions", json=ORDER).json()
        second = korm.post("/subscriptions", json={**ORDER, "customer_id": "globex"}).json()
    page = handle.audit(service="korm")
    assert page["total"] == 2 and sorted(e["object_id"] for e in page["items"]) == sorted([first["id"], second["id"]])
    assert {e["actor"] for e in page["items"]} == {"billing-job"}
    assert [e["object_id"] for e in handle.audit(object_id=first["id"])["items"]] == [first["id"]]
    pages = [handle.audit(service="korm", limit=1, offset=n) for n in (0, 1)]
    assert [p["total"] for p in pages] == [2, 2] and [len(p["items"]) for p in pages] == [1, 1]
    assert {p["items"][0]["object_id"] for p in pages} == {first["id"], second["id"]}
    assert handle.audit(service="kss") == {"items": [], "total": 0}


def test_KORM_APPR_1_approval_code_for_an_order(handle: PartnerHandle) -> None:
    code = handle.create_approval_code(15, "2026-12-31")
    assert code["code"].startswith("APR-") and code["percent"] == "15.00" and code["used_by"] is None
    with handle.korm() as korm:
        sub = korm.post("/subscriptions", json={**ORDER, "approval_code": code["code"]}).json()
    assert sub["discount_percent"] == "15.00"
    assert handle.approval_codes()[0]["used_by"] == sub["id"]


def test_KORM_LEG_1_seed_a_legacy_subscription(handle: PartnerHandle) -> None:
    seeded = handle.seed_legacy_subscription("cust-0001", "KESB-SELECT-PAYG-20-49", 25, dt.date(2021, 4, 15))
    assert (seeded["billing_model"], seeded["activation_date"], seeded["quantity"]) == ("legacy", "2021-04-15", 25)
    with handle.korm() as korm:
        assert [s["id"] for s in korm.get("/subscriptions").json()["items"]] == [seeded["id"]]
    with pytest.raises(KsimError) as caught:
        handle.seed_legacy_subscription("cust-0001", "NO-SUCH-SKU", 25, "2021-04-15")
    assert caught.value.code == "UNKNOWN_SKU"


def test_SIM_AUTH_1_each_handle_sees_its_own_korm_data(ksim_admin: KsimAdmin, handle: PartnerHandle) -> None:
    other = ksim_admin.create_partner(now=APRIL_15)
    with handle.korm() as mine, other.korm() as theirs:
        sub = mine.post("/subscriptions", json=ORDER).json()
        assert theirs.get(f"/subscriptions/{sub['id']}").status_code == 404
        assert theirs.get("/subscriptions").json()["items"] == []
        assert [s["id"] for s in mine.get("/subscriptions").json()["items"]] == [sub["id"]]


def test_kss_zeep_client_is_bound_and_sends_access_info(handle: PartnerHandle) -> None:
    client = handle.kss_zeep_client()
    assert client.service._binding_options["address"] == handle.kss_soap_url
    items = client.get_type(KSS + "SubscriptionRequestItemCollection")(
        _value_1=[{"GetInfo": client.get_type(KSS + "SubscriptionRequestGetInfoItem")(UnitId=1, SubscriberId="s-1")}]
    )
    envelope = client.create_message(
        client.service,
        "SubscriptionRequest",
        Timestamp=dt.datetime(2026, 4, 15, tzinfo=UTC),
        TransactionId="t-1",
        SubscriptionRequest=items,
        _soapheaders=client._default_soapheaders,
    )
    header = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Header/" + KSS + "AccessInfo")
    assert header is not None
    assert (header.findtext(KSS + "UserName"), header.findtext(KSS + "Password")) == (
        handle.kss_username,
        handle.kss_password,
    )
    bare = handle.kss_zeep_client(access_info=False)
    assert not bare._default_soapheaders
    element = handle.kss_access_info()
    assert element.tag == KSS + "AccessInfo" and element.findtext(KSS + "UserName") == handle.kss_username
    assert etree.tostring(element).count(b"<") == 6  # AccessInfo, UserName, Password, each opened and closed


def _kss_units(client: Any, *items: dict[str, Any], txn: str, **kwargs: Any) -> dict[int, tuple[str, int | None]]:
    """Send items through zeep; {UnitId: (answer kind, ErrorCode or None)}."""
    answer = client.service.SubscriptionRequest(
        Timestamp=dt.datetime(2026, 4, 15, 9, 0, tzinfo=UTC),
        TransactionId=txn,
        SubscriptionRequest=client.get_type(KSS + "SubscriptionRequestItemCollection")(_value_1=list(items)),
        **kwargs,
    )
    if answer.TransactionError is not None:
        return {0: ("TransactionError", int(answer.TransactionError.ErrorCode))}
    units: dict[int, tuple[str, int | None]] = {}
    for part in (answer.SubscriptionResponse, answer.SubscriptionError):
        for entry in part._value_1 if part is not None else []:
            [(kind, value)] = entry.items()
            for unit in value if isinstance(value, list) else [value]:
                code = getattr(unit, "ErrorCode", None)
                units[int(unit.UnitId)] = (kind, None if code is None else int(code))
    return units


def _activate(client: Any, unit: int, sid: str, product: str, customer: str | None = None) -> dict[str, Any]:
    return {
        "Activate": client.get_type(KSS + "SubscriptionRequestActivateItem")(
            UnitId=unit,
            SubscriberId=sid,
            StartTime=dt.datetime(2026, 4, 15, 9, 0, tzinfo=UTC),
            EndTime="indefinite",
            ProductId=product,
            CustomerId=customer,
        )
    }


def test_SIM_AUTH_1_kss_zeep_client_talks_to_the_server(handle: PartnerHandle) -> None:
    client = handle.kss_zeep_client()
    get_info = {"GetInfo": client.get_type(KSS + "SubscriptionRequestGetInfoItem")(UnitId=1, SubscriberId="nobody")}
    assert _kss_units(client, get_info, txn="t-1") == {1: ("GetInfoError", 5)}  # authenticated, then judged
    wrong = dataclasses.replace(handle, kss_password="wrong")
    bare = handle.kss_zeep_client(access_info=False)
    assert _kss_units(bare, get_info, txn="t-2", _soapheaders=[wrong.kss_access_info()]) == {
        0: ("TransactionError", 710)
    }
    assert _kss_units(bare, get_info, txn="t-3", _soapheaders=[handle.kss_access_info()]) == {1: ("GetInfoError", 5)}


def test_KSS_PREPAID_1_seeded_prepaid_licences_refuse_an_activation(handle: PartnerHandle) -> None:
    seeded = handle.seed_kss_prepaid("cust-1", "KESB-SELECT", 10, dt.date(2026, 12, 31))
    assert (seeded["customer_id"], seeded["product_id"], seeded["licence_count"], seeded["active"]) == (
        "cust-1",
        "KESB-SELECT",
        10,
        True,
    )
    assert [p["id"] for p in handle.kss_prepaid()] == [seeded["id"]]
    client = handle.kss_zeep_client()
    units = _kss_units(
        client,
        _activate(client, 1, "cust-1/pool", "KESB-SELECT", "cust-1"),
        _activate(client, 2, "cust-2/pool", "KESB-SELECT", "cust-2"),
        txn="prepaid",
    )
    assert units == {1: ("ActivateError", 703), 2: ("Activate", None)}
    with pytest.raises(KsimError) as caught:
        handle.seed_kss_prepaid("cust-1", "NOPE", 10, "2026-12-31")
    assert (caught.value.status, caught.value.code) == (422, "UNKNOWN_PRODUCT")


def test_KSS_CODE_1_an_empty_code_pool_refuses_a_new_subscriber(handle: PartnerHandle) -> None:
    client = handle.kss_zeep_client()
    assert handle.set_kss_code_pool(1) == {"remaining": 1}
    assert _kss_units(client, _activate(client, 1, "s-1", "KSOS"), txn="pool-1") == {1: ("Activate", None)}
    assert _kss_units(client, _activate(client, 1, "s-2", "KSOS"), txn="pool-2") == {1: ("ActivateError", 8)}
    assert handle.set_kss_code_pool(None) == {"remaining": None}
    assert _kss_units(client, _activate(client, 1, "s-2", "KSOS"), txn="pool-3") == {1: ("Activate", None)}
    with handle.kss_rest() as portal:
        listed = portal.get("/subscriptions/s-2")
        assert listed.status_code == 200, listed.text


def test_update_gives_a_new_handle_and_refuses_once_in_use(handle: PartnerHandle) -> None:
    berlin = handle.update(timezone="Europe/Berlin", programme="msp")
    assert (berlin.timezone, berlin.programme, berlin.msp_registered) == ("Europe/Berlin", "msp", True)
    assert (berlin.id, berlin.token) == (handle.id, handle.token) and handle.timezone == "UTC"
    assert berlin.clock().today == dt.date(2026, 4, 15) and berlin.clock().timezone == "Europe/Berlin"
    with berlin.korm() as korm:
        assert korm.post("/subscriptions", json=ORDER).status_code == 201
    with pytest.raises(KsimError) as caught:
        berlin.update(billing_period="30_days")
    assert (caught.value.status, caught.value.code) == (409, "PARTNER_IN_USE")
    assert berlin.update(msp_registered=False).msp_registered is False
    with pytest.raises(ValueError, match="at least one"):
        berlin.update()


def test_wait_until_ready_gives_up_on_a_closed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with KsimAdmin(f"http://127.0.0.1:{port}") as admin, pytest.raises(TimeoutError, match="did not answer"):
        admin.wait_until_ready(timeout=0.2)


# ---------------------------------------------------------------------------------------- the plugin


# pytester runs get only the plugins they name: faster (this venv autoloads hypothesis, schemathesis, ...), and the
# plugin is loaded by module name whether or not its entry point is installed (loading it twice would fail).
PLUGIN_ARGS = ["-p", "ksimkit.simulators.pytest_plugin", "-p", "no:cacheprovider"]


def test_the_entry_point_names_the_plugin() -> None:
    found = [ep for ep in entry_points(group="pytest11") if ep.name == "ksim" or ep.value.startswith("ksimkit.")]
    assert [(ep.name, ep.value) for ep in found] == [("ksim", "ksimkit.simulators.pytest_plugin")]


USER_TESTS = """
import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import pytest

RECORDS = Path({records!r})
ORDER = {{"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}}


def record(request, ksim, partner, korm_client, **extra):
    seen = [s["id"] for s in korm_client.get("/subscriptions").json()["items"]]
    RECORDS.mkdir(exist_ok=True)
    (RECORDS / (request.node.name + ".json")).write_text(json.dumps({{
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"), "url": ksim.base_url, "test": request.node.nodeid,
        "partner": partner.id, "name": partner.name, "token": partner.token, "seen": seen, **extra}}))


@pytest.mark.ksim_partner(programme="msp", now="2026-04-15T09:00:00Z")
def test_a_payg_month(request, ksim, ksim_partner, korm_client):
    assert ksim_partner.programme == "msp" and ksim_partner.msp_registered
    order = korm_client.post("/subscriptions", json=ORDER)
    assert order.status_code == 201, order.text
    assert ksim_partner.advance(to="2026-05-01").today == dt.date(2026, 5, 1)
    statement = korm_client.get("/billing/2026-04").json()
    assert statement["provisional"] is False
    assert statement["totals"]["amount"] == "37.60"  # 25 x 16 days x 2.82 / 30
    record(request, ksim, ksim_partner, korm_client, ordered=order.json()["id"])


@pytest.mark.ksim_partner(timezone="Europe/Berlin", now="2026-04-15T09:00:00Z")
class TestMarkers:
    @pytest.mark.ksim_partner(timezone="Asia/Tokyo")
    def test_b_function_marker_wins(self, request, ksim, ksim_partner, korm_client):
        assert ksim_partner.timezone == "Asia/Tokyo" and ksim_partner.programme == "reseller"
        assert ksim_partner.clock().now == dt.datetime(2026, 4, 15, 9, tzinfo=dt.timezone.utc)
        assert ksim_partner.name == request.node.nodeid
        order = korm_client.post("/subscriptions", json=dict(ORDER, quantity=30))
        assert order.status_code == 201, order.text
        record(request, ksim, ksim_partner, korm_client, ordered=order.json()["id"])

    def test_c_kss_client(self, ksim_partner, kss_client):
        assert ksim_partner.timezone == "Europe/Berlin"
        kss = "{{http://schemas.kaspersky.com/services/subscription/2.0/}}"
        items = kss_client.get_type(kss + "SubscriptionRequestItemCollection")(_value_1=[
            {{"GetInfo": kss_client.get_type(kss + "SubscriptionRequestGetInfoItem")(UnitId=1, SubscriberId="nobody")}}])
        answer = kss_client.service.SubscriptionRequest(
            Timestamp=dt.datetime(2026, 4, 15, 9, tzinfo=dt.timezone.utc), TransactionId="t-1", SubscriptionRequest=items)
        assert answer.TransactionError is None  # AccessInfo was sent and accepted
        [(kind, errors)] = answer.SubscriptionError._value_1[0].items()
        assert (kind, int(errors[0].ErrorCode)) == ("GetInfoError", 5)


@pytest.mark.ksim_partner("msp")
def test_d_marker_with_positional_arguments_is_an_error(ksim_partner):
    pass
"""


def _records(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


@pytest.fixture
def plugin_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KSIM_URL", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)  # the outer run's, when it runs under xdist itself
    (tmp_path / "no-ksim.toml").write_text("[ksim]\n")  # no settings of the outer run's ksim.toml
    monkeypatch.setenv("KSIM_CONFIG", str(tmp_path / "no-ksim.toml"))
    monkeypatch.setenv("KSIM_ADMIN_TOKEN", "plugin-admin")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def _check_outcome(result: pytest.RunResult) -> None:
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ksim_partner takes keyword arguments only*"])


def test_plugin_in_process(pytester: pytest.Pytester, plugin_env: None) -> None:
    records = pytester.path / "records"
    pytester.makepyfile(test_user=USER_TESTS.format(records=str(records)))
    result = pytester.runpytest_subprocess(*PLUGIN_ARGS, "--ksim-admin-token", "inproc")
    _check_outcome(result)
    found = _records(records)
    assert [r["worker"] for r in found] == ["main", "main"]
    assert len({r["partner"] for r in found}) == 2 and len({r["url"] for r in found}) == 1
    assert found[0]["url"].startswith("http://127.0.0.1:")
    assert [r["seen"] for r in found] == [[r["ordered"]] for r in found]  # each test saw only its own order


def test_plugin_under_xdist_against_one_running_server(
    pytester: pytest.Pytester, plugin_env: None, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "ksimkit.simulators.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        "1",
        "--database-url",
        f"sqlite:///{tmp_path / 'shared.db'}",
    ]
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with KsimAdmin(url, "plugin-admin") as admin:
            admin.wait_until_ready(timeout=20)
            records = pytester.path / "records"
            pytester.makepyfile(test_user=USER_TESTS.format(records=str(records)))
            # Two tests on two workers: xdist hands them out one each.
            result = pytester.runpytest_subprocess(
                *PLUGIN_ARGS, "-p", "xdist.plugin", "-n", "2", "--ksim-url", url, "-k", "test_a or test_b"
            )
            result.assert_outcomes(passed=2)
            found = _records(records)
            assert {r["worker"] for r in found} == {"gw0", "gw1"}, found  # both workers ran a test and passed
            assert {r["url"] for r in found} == {url}
            partners = [r["partner"] for r in found]
            assert len(set(partners)) == len(partners) == 2
            assert [r["seen"] for r in found] == [[r["ordered"]] for r in found]  # no cross-talk
            # A shared server does not gain a partner per test: each test's partner is deleted at its teardown.
            assert not {p["id"] for p in admin.partners()} & set(partners)
            for r in found:
                with httpx.Client(base_url=url + "/korm/v1", headers={"Authorization": f"Bearer {r['token']}"}) as korm:
                    assert korm.get("/subscriptions").status_code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_SIM_ERR_1_plugin_ksim_url_of_a_server_that_is_down_is_one_clear_line(
    pytester: pytest.Pytester, plugin_env: None
) -> None:
    with socket.socket() as s:  # bound, never listening, closed: nothing answers there
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    pytester.makepyfile(test_user=USER_TESTS.format(records=str(pytester.path / "records")))
    result = pytester.runpytest_subprocess(*PLUGIN_ARGS, "--ksim-url", url, "-k", "test_a or test_b")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [f"*ksim: --ksim-url: the simulator at {url} cannot be reached (ConnectError*start one (ksim serve)*"]
    )
    text = result.stdout.str()
    assert "Traceback" not in text and "httpcore" not in text and len(text.splitlines()) < 40, text


def test_setting_errors_reach_the_plugin_as_one_line(
    pytester: pytest.Pytester, plugin_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KSIM_JOURNAL_LIMIT", "lots")
    pytester.makepyfile(test_user=USER_TESTS.format(records=str(pytester.path / "records")))
    result = pytester.runpytest_subprocess(*PLUGIN_ARGS, "-k", "test_a")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*ksim: journal_limit (environment variable KSIM_JOURNAL_LIMIT): expected a whole number, got 'lots'*"]
    )
    assert "Traceback" not in result.stdout.str()


HARNESS_TESTS = """
import httpx
import pytest

ORDER = {"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}


def test_strict_by_option(ksim_partner, korm_client):
    assert ksim_partner.strict_contract is True
    refused = korm_client.get("/products", params={"colour": "red"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["path"] == "/query/colour"
    ksim_partner.verify(1, conforms=False, status=422)


@pytest.mark.ksim_partner(strict_contract=False)
def test_marker_overrides_the_option(ksim_partner, korm_client):
    assert ksim_partner.strict_contract is False
    assert korm_client.get("/products", params={"colour": "red"}).status_code == 200


def test_lost_answer_with_the_handle(ksim_partner, korm_client):
    rule = ksim_partner.inject_fault("drop", operation="createSubscription", when="after", times=1)
    with pytest.raises(httpx.TransportError):
        korm_client.post("/subscriptions", json=ORDER, headers={"Idempotency-Key": "k"})
    assert korm_client.post("/subscriptions", json=ORDER, headers={"Idempotency-Key": "k"}).headers["idempotent-replayed"] == "true"
    assert ksim_partner.fault(rule["id"])["fired"] == 1
    assert ksim_partner.verify(2, operation="createSubscription") == 2
    with pytest.raises(AssertionError):
        ksim_partner.verify(3, operation="createSubscription")
"""


def test_plugin_harness_strict_option_marker_and_handle(pytester: pytest.Pytester, plugin_env: None) -> None:
    pytester.makepyfile(test_harness_user=HARNESS_TESTS)
    result = pytester.runpytest_subprocess(*PLUGIN_ARGS, "--ksim-strict")
    result.assert_outcomes(passed=3)
