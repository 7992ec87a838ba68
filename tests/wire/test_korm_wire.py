"""KORM SS over a real socket with httpx: auth, isolation, idempotency, problem+json, and nothing changed on refusal."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.wire

ORDER = {"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def subscription_count(korm: httpx.Client) -> int:
    return len(korm.get("/subscriptions", params={"include_deleted": "true"}).json()["items"])


def test_SIM_AUTH_1_every_call_needs_a_partner_token(server: Any, korm: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
        response = httpx.get(server.url + "/korm/v1/subscriptions", headers=headers)
        problem(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(server.url + "/korm/v1/openapi.yaml").status_code == 200


def test_SIM_AUTH_1_another_partners_ids_are_not_found(server: Any, korm: httpx.Client, new_partner: Any) -> None:
    sub = korm.post("/subscriptions", json=ORDER).json()
    other = new_partner()
    with httpx.Client(base_url=server.url + "/korm/v1", headers={"Authorization": f"Bearer {other['token']}"}) as eve:
        problem(eve.get(f"/subscriptions/{sub['id']}"), 404, "SUBSCRIPTION_NOT_FOUND")
        problem(eve.post(f"/subscriptions/{sub['id']}/quantity", json={"quantity": 30}), 404, "SUBSCRIPTION_NOT_FOUND")
        problem(eve.post(f"/subscriptions/{sub['id']}/stop"), 404, "SUBSCRIPTION_NOT_FOUND")
        assert eve.get("/subscriptions").json()["items"] == []
        assert eve.get("/billing/2026-04").json()["lines"] == []
    assert korm.get(f"/subscriptions/{sub['id']}").json()["quantity"] == 25


def test_SIM_IDEM_1_retry_with_the_same_key_orders_once(korm: httpx.Client) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = korm.post("/subscriptions", json=ORDER, headers=headers)
    again = korm.post("/subscriptions", json=ORDER, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert subscription_count(korm) == 1
    problem(korm.post("/subscriptions", json={**ORDER, "quantity": 30}, headers=headers), 409, "IDEMPOTENCY_KEY_REUSED")
    assert subscription_count(korm) == 1


def test_SIM_IDEM_1_changes_are_idempotent_too(korm: httpx.Client) -> None:
    sub = korm.post("/subscriptions", json=ORDER).json()
    for _ in range(3):
        response = korm.post(
            f"/subscriptions/{sub['id']}/quantity", json={"quantity": 30}, headers={"Idempotency-Key": "q-1"}
        )
        assert response.status_code == 200
    history = korm.get(f"/subscriptions/{sub['id']}").json()["history"]
    assert [h["change"] for h in history] == ["order", "quantity"]


def test_SIM_IDEM_1_a_refusal_is_not_stored_and_is_judged_afresh(
    korm: httpx.Client, admin: httpx.Client, partner: dict[str, Any]
) -> None:
    headers = {"Idempotency-Key": "with-code"}
    body = {**ORDER, "approval_code": "APR-LATER"}
    problem(korm.post("/subscriptions", json=body, headers=headers), 422, "INVALID_APPROVAL_CODE")
    admin.post(
        f"/partners/{partner['id']}/approval-codes",
        json={"percent": "5", "expires_on": "2026-12-31", "code": "APR-LATER"},
    )
    assert korm.post("/subscriptions", json=body, headers=headers).status_code == 201


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "MALFORMED_JSON"),
        (
            b'{"customer_id": "a", "sku": "KESB-SELECT-PAYG-20-49", "quantity": "25"}',
            "application/json",
            422,
            "VALIDATION_ERROR",
        ),
        (b'{"customer_id": "a", "quantity": 25}', "application/json", 422, "VALIDATION_ERROR"),
        (
            b'{"customer_id": "a", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25, "colour": "red"}',
            "application/json",
            422,
            "VALIDATION_ERROR",
        ),
        (b"[1, 2]", "application/json", 422, "VALIDATION_ERROR"),
        (b"", "application/json", 422, "VALIDATION_ERROR"),
        (b"quantity=25", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
def test_SIM_ERR_1_bad_input_gets_problem_json_and_changes_nothing(
    korm: httpx.Client, content: bytes, content_type: str, status: int, code: str
) -> None:
    response = korm.post("/subscriptions", content=content, headers={"Content-Type": content_type})
    problem(response, status, code)
    assert subscription_count(korm) == 0


def test_SIM_ERR_1_validation_errors_name_each_field(korm: httpx.Client) -> None:
    body = problem(korm.post("/subscriptions", json={"sku": 7, "quantity": 0}), 422, "VALIDATION_ERROR")
    messages = " ".join(e["message"] for e in body["errors"])
    assert "customer_id" in messages and {e["path"] for e in body["errors"]} >= {"/sku", "/quantity"}


def test_SIM_ERR_1_unknown_routes_and_methods_are_problem_json(korm: httpx.Client) -> None:
    problem(korm.get("/nowhere"), 404, "NOT_FOUND")
    response = korm.delete("/subscriptions")
    problem(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["allow"]
    problem(korm.get("/billing/2026-13"), 422, "INVALID_PERIOD")
    problem(korm.get("/products/NOPE"), 404, "SKU_NOT_FOUND")


def test_KORM_STOP_1_over_the_wire(korm: httpx.Client, admin: httpx.Client, partner: dict[str, Any]) -> None:
    sub = korm.post("/subscriptions", json=ORDER).json()
    admin.post(f"/partners/{partner['id']}/clock/advance", json={"days": 5})
    stopped = korm.post(f"/subscriptions/{sub['id']}/stop").json()
    assert stopped["status"] == "deleted" and stopped["stopped_on"] == "2026-04-20"
    for call in (
        lambda: korm.get(f"/subscriptions/{sub['id']}"),
        lambda: korm.post(f"/subscriptions/{sub['id']}/reactivate"),
        lambda: korm.post(f"/subscriptions/{sub['id']}/quantity", json={"quantity": 30}),
    ):
        assert problem(call(), 410, "SUBSCRIPTION_DELETED")["rule"] == "KORM-STOP-1"
    again = korm.post("/subscriptions", json=ORDER).json()
    assert again["activation_code"] != sub["activation_code"]  # KORM-STOP-2


def test_KORM_PAYG_2_statement_over_the_wire(korm: httpx.Client, admin: httpx.Client, partner: dict[str, Any]) -> None:
    sub = korm.post("/subscriptions", json=ORDER).json()
    admin.post(f"/partners/{partner['id']}/clock/advance", json={"to": "2026-05-10"})
    assert korm.post(f"/subscriptions/{sub['id']}/quantity", json={"quantity": 20}).status_code == 200
    may = korm.get("/billing/2026-05").json()
    assert [(line["units"], line["amount"]) for line in may["lines"]] == [(665, "60.49")]
    assert may["totals"]["amount"] == "60.49" and may["provisional"] is True


def test_SIM_CLOCK_1_clocks_are_per_partner_over_the_wire(admin: httpx.Client, new_partner: Any) -> None:
    a, b = new_partner(), new_partner()
    assert admin.post(f"/partners/{a['id']}/clock/advance", json={"days": 30}).json()["today"] == "2026-05-15"
    assert admin.get(f"/partners/{b['id']}/clock").json()["today"] == "2026-04-15"
    problem(admin.put(f"/partners/{a['id']}/clock", json={"now": "2026-01-01T00:00:00Z"}), 409, "CLOCK_BACKWARDS")


def test_admin_refuses_partner_tokens(server: Any, partner: dict[str, Any]) -> None:
    response = httpx.get(server.url + "/_sim/partners", headers={"Authorization": f"Bearer {partner['token']}"})
    problem(response, 401, "UNAUTHORIZED")


def test_every_korm_change_is_audited_with_its_actor(
    korm: httpx.Client, admin: httpx.Client, partner: dict[str, Any]
) -> None:
    sub = korm.post("/subscriptions", json=ORDER, headers={"X-Ksim-Actor": "alice@broker"}).json()
    korm.post(f"/subscriptions/{sub['id']}/quantity", json={"quantity": 30})
    korm.post(f"/subscriptions/{sub['id']}/quantity", json={"quantity": 99})  # refused: not audited
    entries = admin.get(f"/partners/{partner['id']}/audit", params={"service": "korm"}).json()
    assert [(e["actor"], e["action"]) for e in entries["items"]] == [
        ("alice@broker", "order"),
        (partner["name"], "change_quantity"),
    ]


def test_reset_clears_a_partner_and_rewinds_its_clock(
    korm: httpx.Client, admin: httpx.Client, partner: dict[str, Any]
) -> None:
    sub = korm.post("/subscriptions", json=ORDER).json()
    admin.post(f"/partners/{partner['id']}/clock/advance", json={"days": 40})
    clock = admin.post(f"/partners/{partner['id']}/reset").json()
    assert clock["today"] == "2026-04-15"
    assert subscription_count(korm) == 0
    assert korm.get(f"/subscriptions/{sub['id']}").status_code == 404
    assert korm.post("/subscriptions", json=ORDER).json()["activation_code"] != sub["activation_code"]
