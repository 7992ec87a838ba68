"""The test harness's parts without a server: the REST and SOAP contract verdicts, fault rule checks and seeded
firing, the journal's bound, and the settings it reads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from ksimkit import contracts
from ksimkit.simulators.core import faults, journal
from ksimkit.simulators.core.errors import Problem
from ksimkit.simulators.core.openapi import Contract
from ksimkit.simulators.core.settings import load_settings
from ksimkit.simulators.kss import xml as kxml
from ksimkit.simulators.kss import xml_verdict
from ksimkit.simulators.services import default_fault_kinds

KORM = Contract(contracts.path("korm-ss.openapi.yaml"))
JSON = Headers({"Content-Type": "application/json"})
ORDER = b'{"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}'
AT = dt.datetime(2026, 4, 15, 9, tzinfo=dt.UTC)
OPERATIONS = {"korm": ["createSubscription", "listProducts"], "kss": ["SubscriptionRequest", "Activate"]}


KINDS = default_fault_kinds()


def where(violations: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(v["in"], v["path"]) for v in violations]


def test_match_finds_the_operation_and_the_route() -> None:
    op, route = KORM.match("POST", "/korm/v1/subscriptions/sub_1/stop")
    assert op is not None and op.operation_id == "stopSubscription" and [o.method for o in route] == ["POST"]
    assert KORM.match("HEAD", "/korm/v1/products")[0].operation_id == "listProducts"  # type: ignore[union-attr]
    assert KORM.match("GET", "/korm/v1/openapi.yaml")[0].operation_id == "getContract"  # type: ignore[union-attr]
    assert KORM.match("GET", "/other/v1/products") == (None, [])


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "body", "expected"),
    [
        ("POST", "/korm/v1/subscriptions", [], JSON, ORDER, []),
        ("GET", "/korm/v1/subscriptions", [("status", "active"), ("include_deleted", "true")], Headers(), b"", []),
        ("GET", "/korm/v1/subscriptions", [("status", "gone")], Headers(), b"", [("query", "/query/status")]),
        (
            "GET",
            "/korm/v1/subscriptions",
            [("status", "active"), ("status", "pending")],
            Headers(),
            b"",
            [("query", "/query/status")],
        ),
        ("GET", "/korm/v1/products", [("page", "2")], Headers(), b"", [("query", "/query/page")]),
        ("GET", "/korm/v1/products", [], JSON, b'{"x": 1}', [("body", "/")]),
        ("GET", "/korm/v1/billing/2026-13", [], Headers(), b"", [("path", "/path/period")]),
        ("POST", "/korm/v1/subscriptions", [], JSON, b"", [("body", "/")]),
        ("POST", "/korm/v1/subscriptions/sub_1/stop", [], Headers(), b"", []),  # the body is optional
        ("POST", "/korm/v1/subscriptions", [], Headers(), ORDER, [("header", "/headers/Content-Type")]),
        (
            "POST",
            "/korm/v1/subscriptions",
            [],
            Headers({"Content-Type": "text/plain"}),
            ORDER,
            [("header", "/headers/Content-Type")],
        ),
        ("POST", "/korm/v1/subscriptions", [], JSON, b"{nope", [("body", "/")]),
        (
            "POST",
            "/korm/v1/subscriptions",
            [],
            Headers({"Content-Type": "application/json", "idempotency-key": ""}),
            ORDER,
            [("header", "/headers/Idempotency-Key")],
        ),
        (
            "POST",
            "/korm/v1/subscriptions",
            [],
            JSON,
            b'{"quantity": 0}',
            [("body", "/"), ("body", "/"), ("body", "/quantity")],
        ),
        ("PUT", "/korm/v1/products", [], Headers(), b"", [("route", "/")]),
        ("GET", "/korm/v1/nothing/here", [], Headers(), b"", [("route", "/")]),
        ("POST", "/korm/v1/subscriptions", [], JSON, None, [("body", "/")]),
    ],
)
def test_SIM_ERR_1_rest_verdict(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Headers,
    body: bytes | None,
    expected: list[tuple[str, str]],
) -> None:
    assert where(KORM.request_violations(method, path, query, headers, body)) == expected


def _soap(header: str = "", payload: str | None = None) -> bytes:
    ns = kxml.KSS
    payload = payload or (
        f'<SubscriptionRequestContainer xmlns="{ns}"><Timestamp>2026-04-15T09:00:00Z</Timestamp>'
        f"<TransactionId>t</TransactionId><SubscriptionRequest>"
        f'<GetInfo UnitId="1" SubscriberId="s"/></SubscriptionRequest></SubscriptionRequestContainer>'
    )
    access = header or f'<AccessInfo xmlns="{ns}"><UserName>u</UserName><Password>p</Password></AccessInfo>'
    return (
        f'<e:Envelope xmlns:e="{kxml.SOAP_ENV}"><e:Header>{access}</e:Header><e:Body>{payload}</e:Body></e:Envelope>'
    ).encode()


def test_SIM_ERR_1_soap_verdict() -> None:
    action = f'"{kxml.SOAP_ACTION}"'
    assert xml_verdict.request_violations(_soap(), "text/xml; charset=utf-8", action) == []
    assert where(xml_verdict.request_violations(_soap(), None, None)) == [
        ("header", "/headers/Content-Type"),
        ("header", "/headers/SOAPAction"),
    ]
    assert where(xml_verdict.request_violations(_soap(), "application/soap+xml", '""')) == [
        ("header", "/headers/Content-Type"),
        ("header", "/headers/SOAPAction"),
    ]
    assert where(xml_verdict.request_violations(b"<not-xml", "text/xml", action)) == [("envelope", "/")]
    assert where(xml_verdict.request_violations(None, "text/xml", action)) == [("body", "/")]
    assert where(xml_verdict.request_violations(_soap(header="<x:Trace xmlns:x='urn:x'/>"), "text/xml", action)) == [
        ("soap-header", "/Envelope/Header/Trace"),
        ("soap-header", "/Envelope/Header"),
    ]
    bad = _soap(
        payload=f'<SubscriptionRequestContainer xmlns="{kxml.KSS}"><Timestamp>soon</Timestamp>'
        f'<TransactionId>t</TransactionId><SubscriptionRequest><GetInfo SubscriberId="a"/>'
        f'<GetInfo UnitId="x" SubscriberId="b"/></SubscriptionRequest></SubscriptionRequestContainer>'
    )
    found = xml_verdict.request_violations(bad, "text/xml", action)
    assert [v["path"] for v in found] == [
        "/SubscriptionRequestContainer/Timestamp",
        "/SubscriptionRequestContainer/SubscriptionRequest/GetInfo[1]",
        "/SubscriptionRequestContainer/SubscriptionRequest/GetInfo[2]",
    ]
    assert all(v["in"] == "body" and v["message"].startswith("line ") for v in found)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"kind": "soap_fault", "service": "korm"}, "/service"),
        ({"kind": "status", "operation": "Activate", "service": "korm"}, "/operation"),
        ({"kind": "status", "error_code": 5}, "/error_code"),
        ({"kind": "delay"}, "/delay_ms"),
        ({"kind": "malformed", "delay_max_ms": 5}, "/delay_max_ms"),
    ],
)
def test_SIM_ERR_1_fault_rules_that_cannot_work(body: dict[str, Any], path: str) -> None:
    with pytest.raises(Problem) as caught:
        faults.normalise(body, OPERATIONS, 0, KINDS)
    assert caught.value.status == 422 and caught.value.errors[0]["path"] == path  # type: ignore[index]


def test_fault_rule_defaults() -> None:
    spec = faults.normalise({"kind": "status", "status": 429}, OPERATIONS, 3, KINDS)
    assert (spec["code"], spec["when"], spec["seed"], spec["times"]) == ("TOO_MANY_REQUESTS", "before", 3, None)
    assert faults.normalise({"kind": "status", "status": 599}, OPERATIONS, 0, KINDS)["code"] == "HTTP_599"
    assert faults.normalise({"kind": "delay", "delay_ms": 5}, OPERATIONS, 0, KINDS)["when"] == "after"
    unit = faults.normalise({"kind": "unit_error", "service": "kss", "operation": "Activate"}, OPERATIONS, 0, KINDS)
    assert (unit["error_code"], unit["message"]) == (99, None)


def test_seeded_firing_and_the_journal_bound(store: Any, world: Any) -> None:
    """Two rules with the same seed fire on the same matches; the journal keeps the latest `limit` entries."""
    spec = faults.normalise({"kind": "drop", "probability": 0.3, "seed": 11}, OPERATIONS, 0, KINDS)
    with store.begin() as conn:
        first = faults.create(conn, world.partner_id, spec)
        fired = [faults.choose(conn, world.partner_id, "korm", "listProducts", (), KINDS)[0] for _ in range(20)]
        faults.delete(conn, world.partner_id, first["id"])
        faults.create(conn, world.partner_id, spec)
        again = [faults.choose(conn, world.partner_id, "korm", "listProducts", (), KINDS)[0] for _ in range(20)]
        assert [f is None for f in fired] == [f is None for f in again] and 0 < sum(f is not None for f in fired) < 20
        assert [f.firing for f in again if f is not None] == list(range(1, 1 + sum(f is not None for f in again)))
        for i in range(7):
            journal.record(
                conn,
                partner_id=world.partner_id,
                limit=4,
                at=AT,
                service="kss",
                method="POST",
                path="/kss/soap/upi",
                operation="SubscriptionRequest",
                items=("Activate", "GetInfo")[: i % 3],
                status=200,
                violations=[],
                fault=None,
                details={"query": str(i)},
            )
        items, total = journal.entries(conn, world.partner_id, journal.Filters())
        assert total == 4 and [e["query"] for e in items] == ["3", "4", "5", "6"]
        assert journal.entries(conn, world.partner_id, journal.Filters(operation="GetInfo"))[1] == 1  # i = 5
        assert journal.entries(conn, world.partner_id, journal.Filters(operation="Get%"))[1] == 0  # no LIKE wildcards


def test_harness_settings_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text("[ksim]\n")
    env = {"KSIM_CONFIG": str(tmp_path / "none.toml"), "KSIM_STRICT_CONTRACT": "true", "KSIM_JOURNAL_LIMIT": "50"}
    settings = load_settings(env=env)
    assert (settings.strict_contract, settings.journal_limit, settings.journal_body_bytes) == (True, 50, 4096)
    assert load_settings(env={**env, "KSIM_STRICT_CONTRACT": "0"}).strict_contract is False
    with pytest.raises(ValueError, match="strict_contract"):
        load_settings(env={**env, "KSIM_STRICT_CONTRACT": "maybe"})
    (tmp_path / "ksim.toml").write_text("[ksim]\nstrict_contract = true\nfault_seed = 9\n")
    from_file = load_settings(tmp_path / "ksim.toml", env={})
    assert (from_file.strict_contract, from_file.fault_seed) == (True, 9)
