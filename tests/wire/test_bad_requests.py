"""SIM-ERR-1 outside the vendor rules: every bad request gets problem+json (REST) or a SOAP fault, never a 500,
never HTML, and changes nothing; on SQLite and PostgreSQL (the ``server`` fixture). Also the index at ``/`` and
``DELETE /_sim/partners/{id}``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ksimkit.simulators.core.jsontext import MAX_DEPTH
from ksimkit.simulators.core.store import activation_codes, metadata
from ksimkit.simulators.core.web import MAX_HEADER_BYTES, MAX_URL_BYTES
from tests.conftest import ADMIN
from tests.wire.conftest import read_fault

pytestmark = pytest.mark.wire

ORDER = {"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] and body["detail"]
    return body


def post_raw(client: httpx.Client, path: str, raw: bytes, **headers: str) -> httpx.Response:
    return client.post(path, content=raw, headers={"Content-Type": "application/json", **headers})


def order_with(field: str, escaped: str) -> bytes:
    """An order whose ``field`` holds ``escaped`` as JSON string text (e.g. ``\\ud800``), byte for byte."""
    body = {**ORDER, "external_ref": "r-1", field: "@@"}
    return json.dumps(body).replace('"@@"', f'"{escaped}"').encode()


@pytest.mark.parametrize("field", ["customer_id", "external_ref", "approval_code"])
@pytest.mark.parametrize(
    "text", ["\\ud800", "x\\udfffy", "\\u0000", "ab\\u0000"], ids=["surrogate", "low-surrogate", "nul", "nul-inside"]
)
def test_SIM_ERR_1_unstorable_text_in_an_order_is_a_422_and_changes_nothing(
    korm: httpx.Client, field: str, text: str
) -> None:
    body = problem(post_raw(korm, "/subscriptions", order_with(field, text)), 422)
    assert body["code"] == "VALIDATION_ERROR" and body["rule"] == "SIM-ERR-1"
    assert body["errors"][0]["path"] == f"/{field}"
    assert "NUL" in body["detail"] or "surrogate" in body["detail"]
    assert korm.get("/subscriptions").json()["items"] == []


def test_SIM_ERR_1_a_surrogate_sent_as_raw_utf8_bytes_is_a_422(korm: httpx.Client) -> None:
    raw = json.dumps({**ORDER, "customer_id": "@@"}).encode().replace(b"@@", b"\xed\xa0\x80")
    assert problem(post_raw(korm, "/subscriptions", raw), 422)["errors"][0]["path"] == "/customer_id"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 100_000])
def test_SIM_ERR_1_json_nested_too_deep_is_a_422_naming_the_limit(
    server: Any, korm: httpx.Client, partner: dict[str, Any], admin: httpx.Client, depth: int
) -> None:
    raw = json.dumps({**ORDER, "customer_id": "@@"}).encode().replace(b'"@@"', b"[" * depth + b"]" * depth)
    body = problem(post_raw(korm, "/subscriptions", raw), 422)
    assert f"deeper than {MAX_DEPTH} levels" in body["detail"]
    entry = admin.get(f"/partners/{partner['id']}/journal").json()["items"][0]
    assert entry["verdict"]["conforms"] is False
    assert any(f"deeper than {MAX_DEPTH}" in v["message"] for v in entry["verdict"]["violations"]), entry["verdict"]


def test_SIM_ERR_1_json_nested_to_the_limit_is_judged_by_the_contract(korm: httpx.Client) -> None:
    inner = MAX_DEPTH - 1  # the object itself is the first level
    raw = json.dumps({**ORDER, "customer_id": "@@"}).encode().replace(b'"@@"', b"[" * inner + b"]" * inner)
    assert problem(post_raw(korm, "/subscriptions", raw), 422)["errors"][0]["message"].endswith("is not of type string")


@pytest.mark.parametrize("path", ["/subscriptions/%00", "/subscriptions?customer_id=a%00b", "/products/%00"])
def test_SIM_ERR_1_nul_in_the_path_or_query_is_a_422(korm: httpx.Client, path: str) -> None:
    body = problem(korm.get(path), 422)
    assert body["rule"] == "SIM-ERR-1" and "NUL" in body["detail"] and "\x00" not in body["detail"]


def test_SIM_ERR_1_a_doubled_slash_is_redirected_without_an_html_page(korm: httpx.Client) -> None:
    response = korm.get("/subscriptions//sub_x")  # werkzeug merges the slashes with a redirect (found by the fuzzer)
    assert response.status_code == 308 and response.headers["content-type"] == "application/json"
    assert response.json() == {"location": str(korm.base_url).rstrip("/") + "/subscriptions/sub_x"}


def test_SIM_ERR_1_a_huge_header_is_a_431_problem(korm: httpx.Client) -> None:
    body = problem(korm.get("/subscriptions", headers={"Authorization": "Bearer " + "x" * 10_000}), 431)
    assert body["code"] == "REQUEST_HEADER_FIELDS_TOO_LARGE" and str(MAX_HEADER_BYTES) in body["detail"]
    assert problem(korm.get("/subscriptions", headers={f"X-H{i}": "v" for i in range(120)}), 431)


def test_SIM_ERR_1_a_huge_url_is_a_414_problem(korm: httpx.Client) -> None:
    body = problem(korm.get("/subscriptions", params={"customer_id": "c" * (MAX_URL_BYTES + 1)}), 414)
    assert str(MAX_URL_BYTES) in body["detail"]


def test_SIM_ERR_1_a_huge_header_on_soap_is_a_fault(server: Any) -> None:
    response = httpx.post(
        server.url + "/kss/soap/upi", content=b"<x/>", headers={"Content-Type": "text/xml", "X-Big": "y" * 10_000}
    )
    fault = read_fault(response)
    assert fault.code == "Client" and str(MAX_HEADER_BYTES) in fault.message


def test_SIM_ERR_1_an_over_limit_body_is_refused_with_connection_close(server: Any, korm: httpx.Client) -> None:
    limit = server.app.extensions["ksim"].settings.max_body_bytes
    response = post_raw(korm, "/subscriptions", b" " * (limit + 1))
    assert f"larger than {limit} bytes" in problem(response, 413)["detail"]
    assert response.headers["connection"] == "close"  # (werkzeug closes every connection; gunicorn: test_serve.py)
    soap = httpx.post(server.url + "/kss/soap/upi", content=b" " * (limit + 1), headers={"Content-Type": "text/xml"})
    assert read_fault(soap).code == "Client" and soap.headers["connection"] == "close"


@pytest.mark.parametrize("to", ["2026-13-01", "2026-02-30", "soon", "2026-04-15T25:00:00Z"])
def test_SIM_ERR_1_clock_advance_to_a_date_that_is_not_one_is_a_422(
    admin: httpx.Client, partner: dict[str, Any], to: str
) -> None:
    body = problem(admin.post(f"/partners/{partner['id']}/clock/advance", json={"to": to}), 422)
    assert (
        body["errors"] == [{"path": "/to", "message": f"{json.dumps(to)} is not a valid date"}]
        or body["errors"][0]["path"] == "/to"
    ), body


def test_SIM_ERR_1_validation_messages_speak_json_and_name_the_limit(
    admin: httpx.Client, partner: dict[str, Any], korm: httpx.Client
) -> None:
    body = problem(admin.post(f"/partners/{partner['id']}/clock/advance", json={"days": 40000}), 422)
    assert body["errors"] == [{"path": "/days", "message": "40000 is more than the maximum of 36600"}]
    body = problem(korm.post("/subscriptions", json={**ORDER, "approval_code": None}), 422)
    assert body["errors"] == [{"path": "/approval_code", "message": "null is not of type string"}]
    assert "None" not in body["detail"]


def test_the_index_at_root_links_every_contract(server: Any) -> None:
    index = httpx.get(server.url + "/")
    assert index.status_code == 200 and index.headers["content-type"] == "application/json"
    endpoints = index.json()["endpoints"]
    assert [e["path"] for e in endpoints] == ["/korm/v1", "/kss/soap/upi", "/kss/v1", "/_sim"]
    for endpoint in endpoints:
        contract = httpx.get(server.url + endpoint["contract"])
        assert contract.status_code == 200 and len(contract.content) > 1000, endpoint
        assert endpoint["doc"].startswith("docs/")
    page = httpx.get(server.url + "/", headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html") and 'href="/kss/soap/upi?wsdl"' in page.text


def _rows_of(server: Any, partner_id: str) -> dict[str, int]:
    store = server.app.extensions["ksim"].store
    counts = {}
    with store.begin() as conn:
        for table in metadata.sorted_tables:
            column = table.c.get("partner_id") if table.name != "partners" else table.c.id
            if column is not None:
                counts[table.name] = conn.execute(
                    sa.select(sa.func.count()).select_from(table).where(column == partner_id)
                ).scalar_one()
    return counts


def test_KORM_STOP_2_delete_partner_removes_its_data_and_keeps_its_codes_reserved(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    gone, kept = new_partner(), new_partner()
    for who in (gone, kept):
        with httpx.Client(base_url=server.url + "/korm/v1", headers={"Authorization": f"Bearer {who['token']}"}) as c:
            assert c.post("/subscriptions", json=ORDER).status_code == 201
        fault = admin.post(f"/partners/{who['id']}/faults", json={"kind": "delay", "delay_ms": 1, "times": 1})
        assert fault.status_code == 201, fault.text
    before_kept = _rows_of(server, kept["id"])
    assert _rows_of(server, gone["id"])["audit_log"] > 0 and _rows_of(server, gone["id"])["journal"] > 0

    response = admin.delete(f"/partners/{gone['id']}")
    assert response.status_code == 204 and response.content == b""
    left = _rows_of(server, gone["id"])
    assert left.pop("activation_codes") == 1  # its code stays reserved: never issued again (KORM-STOP-2)
    assert set(left.values()) == {0}, left
    assert _rows_of(server, kept["id"]) == before_kept
    problem(admin.get(f"/partners/{gone['id']}"), 404)
    problem(admin.delete(f"/partners/{gone['id']}"), 404)
    problem(httpx.get(server.url + "/korm/v1/subscriptions", headers={"Authorization": f"Bearer {gone['token']}"}), 401)
    assert gone["id"] not in {p["id"] for p in admin.get("/partners").json()["items"]}
    problem(httpx.delete(f"{server.url}/_sim/partners/{kept['id']}"), 401)  # admin only
    assert activation_codes.name == "activation_codes"


def test_delete_partner_through_the_client(server: Any) -> None:
    from ksimkit.simulators.client import KsimAdmin, KsimError

    with KsimAdmin(server.url, ADMIN["Authorization"].split()[1]) as ksim:
        handle = ksim.create_partner()
        handle.delete()
        with pytest.raises(KsimError) as caught:
            ksim.partner(handle.id)
        assert caught.value.status == 404
