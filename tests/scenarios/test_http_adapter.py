"""The generic HTTP adapter against a tiny Flask broker: templates, result reading, charges, and clear errors
for a bad adapter file."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify, request

from ksimkit.scenarios.brokers.base import Charge, LegacySubscription, StepResult, TenantSetup
from ksimkit.scenarios.brokers.http import HttpAdapter
from ksimkit.scenarios.brokers.templates import render
from ksimkit.scenarios.errors import AdapterError, BrokerCallError

UTC = dt.UTC
ROOT = Path(__file__).resolve().parents[2]

TENANT = TenantSetup(
    scenario_id="korm-x",
    korm_url="http://sim/korm/v1",
    korm_token="tok",
    kss_wsdl_url="http://sim/kss/soap/upi?wsdl",
    kss_username="u",
    kss_password="p",
    now=dt.datetime(2026, 4, 15, 9, tzinfo=UTC),
    timezone="Europe/Berlin",
    prices={"KESB-SELECT-PAYG-20-49": Decimal("2.82")},
    legacy=(
        LegacySubscription(
            "L1", "acme", "KESB-SELECT-PAYG-20-49", 25, dt.date(2026, 3, 10), "AAAAA-BBBBB-CCCCC-DDDDD", "sub_1"
        ),
    ),
)

ADAPTER: dict[str, Any] = {
    "name": "flask-test",
    "base_url": "http://broker.test/api",
    "headers": {"X-Key": "secret"},
    "methods": {
        "start": {
            "url": "/tenants",
            "body": {
                "setup": {
                    "korm": "{korm_url}",
                    "now": "{now}",
                    "prices": "{prices}",
                    "legacy": "{legacy}",
                    "label": "run {scenario_id}",
                }
            },
            "tenant_id": "tenant.id",
        },
        "stop_tenant": {"method": "DELETE", "url": "/tenants/{tenant}"},
        "advance_clock": {"method": "PUT", "url": "/tenants/{tenant}/clock", "body": {"now": "{to}"}},
        "order": {
            "url": "/tenants/{tenant}/orders/{ref}",
            "body": {
                "customer": "{customer}",
                "sku": "{sku}",
                "quantity": "{quantity}",
                "approval_code": "{approval_code}",
                "note": "{{literal}} for {customer}",
            },
        },
        "stop": {"url": "/tenants/{tenant}/orders/{ref}/stop", "result": {"outcome": "http_status"}},
        "reactivate": {
            "url": "/tenants/{tenant}/orders/{ref}/reactivate",
            "result": {"outcome": "status", "done": ["ok"], "refused": ["no"], "code": "why"},
        },
        "pause": {"url": "/tenants/{tenant}/pause", "body": {"until": "{until}"}},
        "cancel_at_month_end": {"url": "/tenants/{tenant}/cancel", "body": {"month": "{month}", "end": "{end}"}},
        "charges": {
            "url": "/tenants/{tenant}/invoices",
            "params": {"month": "{period}"},
            "items": "data.lines",
            "fields": {"units": "qty", "amount": "money.customer", "vendor_cost": "money.vendor"},
        },
        "activation_code": {"url": "/tenants/{tenant}/orders/{ref}", "value": "sub.code"},
    },
}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.answers: dict[tuple[str, str], tuple[Any, int]] = {}

    def app(self) -> Flask:
        app = Flask("flask-test-broker")

        @app.route("/api/<path:path>", methods=["GET", "POST", "PUT", "DELETE"])
        def any_call(path: str) -> Any:
            self.calls.append(
                {
                    "method": request.method,
                    "path": "/" + path,
                    "query": dict(request.args),
                    "json": request.get_json(silent=True),
                    "headers": dict(request.headers),
                }
            )
            body, status = self.answers.get((request.method, "/" + path), ({"outcome": "done"}, 200))
            if body is None:
                return "", status
            return jsonify(body), status

        return app


@pytest.fixture
def recorder() -> Recorder:
    rec = Recorder()
    rec.answers[("POST", "/tenants")] = ({"tenant": {"id": "t 1/x"}}, 201)
    return rec


def broker_for(recorder: Recorder, adapter: dict[str, Any] | None = None) -> Any:
    loaded = HttpAdapter.from_dict(adapter or ADAPTER, source="adapter.yaml")
    return loaded.broker(transport=httpx.WSGITransport(app=recorder.app()))


def test_start_renders_the_tenant_setup_and_reads_the_tenant_id(recorder: Recorder) -> None:
    broker = broker_for(recorder)
    broker.start(TENANT)
    call = recorder.calls[0]
    assert call["method"] == "POST" and call["path"] == "/tenants" and call["headers"]["X-Key"] == "secret"
    setup = call["json"]["setup"]
    assert setup["korm"] == "http://sim/korm/v1" and setup["now"] == "2026-04-15T09:00:00Z"
    assert setup["prices"] == {"KESB-SELECT-PAYG-20-49": "2.82"}  # an object, money as strings
    assert setup["legacy"] == [
        {
            "ref": "L1",
            "customer": "acme",
            "sku": "KESB-SELECT-PAYG-20-49",
            "quantity": 25,
            "activation_date": "2026-03-10",
            "activation_code": "AAAAA-BBBBB-CCCCC-DDDDD",
            "vendor_id": "sub_1",
        }
    ]
    assert setup["label"] == "run korm-x"
    assert broker.tenant == "t 1/x"


def test_steps_render_typed_values_url_encode_and_leave_out_nulls(recorder: Recorder) -> None:
    broker = broker_for(recorder)
    broker.start(TENANT)
    result = broker.order("s 1", "acme", "KESB-SELECT-PAYG-20-49", 25)
    assert result == StepResult("done")
    call = recorder.calls[-1]
    assert call["path"] == "/tenants/t 1/x/orders/s 1"  # {tenant} and {ref} were URL-encoded, then decoded by Flask
    assert call["json"] == {
        "customer": "acme",
        "sku": "KESB-SELECT-PAYG-20-49",
        "quantity": 25,
        "note": "{literal} for acme",
    }  # no approval_code: null values are left out
    broker.advance_clock(dt.datetime(2026, 5, 1, tzinfo=UTC))
    assert recorder.calls[-1]["method"] == "PUT" and recorder.calls[-1]["json"] == {"now": "2026-05-01T00:00:00Z"}
    broker.pause("s1", dt.datetime(2026, 7, 1, tzinfo=UTC))
    assert recorder.calls[-1]["json"] == {"until": "2026-07-01T00:00:00Z"}
    broker.cancel_at_month_end("s1", "2026-08")  # `end`: the first instant after the month, in the tenant's zone
    assert recorder.calls[-1]["json"] == {"month": "2026-08", "end": "2026-08-31T22:00:00Z"}


def test_outcome_code_message_and_activation_code_are_read_from_the_answer(recorder: Recorder) -> None:
    broker = broker_for(recorder)
    broker.start(TENANT)
    recorder.answers[("POST", "/tenants/t 1/x/orders/s1")] = (
        {"outcome": "refused", "code": "OUT_OF_RANGE", "message": "band 20-49"},
        200,
    )
    assert broker.order("s1", "acme", "X", 5) == StepResult("refused", "OUT_OF_RANGE", "band 20-49")
    recorder.answers[("POST", "/tenants/t 1/x/orders/s2")] = ({"outcome": "done", "activation_code": "CODE-1"}, 201)
    assert broker.order("s2", "acme", "X", 25) == StepResult("done", activation_code="CODE-1")
    # no outcome field: the status decides (4xx refused), the code is still read
    recorder.answers[("POST", "/tenants/t 1/x/orders/s3")] = ({"code": "SKU_UNKNOWN"}, 422)
    assert broker.order("s3", "acme", "X", 25) == StepResult("refused", "SKU_UNKNOWN")
    # outcome: http_status ignores the body's outcome
    recorder.answers[("POST", "/tenants/t 1/x/orders/s1/stop")] = ({"outcome": "refused"}, 200)
    assert broker.stop("s1").outcome == "done"
    recorder.answers[("POST", "/tenants/t 1/x/orders/s1/stop")] = (None, 409)
    assert broker.stop("s1") == StepResult("refused")
    # a method's own result spec, with its own outcome values
    recorder.answers[("POST", "/tenants/t 1/x/orders/s1/reactivate")] = (
        {"status": "no", "why": "SUBSCRIPTION_DELETED"},
        200,
    )
    assert broker.reactivate("s1") == StepResult("refused", "SUBSCRIPTION_DELETED")


def test_a_broken_answer_is_an_error_not_a_refusal(recorder: Recorder) -> None:
    broker = broker_for(recorder)
    broker.start(TENANT)
    recorder.answers[("POST", "/tenants/t 1/x/orders/s1")] = ({"detail": "boom"}, 500)
    with pytest.raises(BrokerCallError, match=r"order: the broker answered 500 \[POST .*boom"):
        broker.order("s1", "acme", "X", 1)
    recorder.answers[("POST", "/tenants/t 1/x/orders/s1")] = ({"outcome": "maybe"}, 200)
    with pytest.raises(BrokerCallError, match="outcome is 'maybe', neither done"):
        broker.order("s1", "acme", "X", 1)
    unreachable = HttpAdapter.from_dict({**ADAPTER, "base_url": "http://127.0.0.1:9"}).broker()
    with pytest.raises(BrokerCallError, match="start: the broker did not answer"):
        unreachable.start(TENANT)


def test_charges_are_read_with_the_field_paths(recorder: Recorder) -> None:
    broker = broker_for(recorder)
    broker.start(TENANT)
    recorder.answers[("GET", "/tenants/t 1/x/invoices")] = (
        {
            "data": {
                "lines": [
                    {"ref": "s1", "customer": "acme", "qty": 400, "money": {"customer": "37.60", "vendor": "31.96"}},
                    {
                        "ref": "s2",
                        "customer": "acme",
                        "qty": 10,
                        "money": {"customer": 1.5, "vendor": "1.50"},
                        "period": "2026-03",
                    },
                ]
            }
        },
        200,
    )
    charges = broker.charges("2026-04")
    assert recorder.calls[-1]["query"] == {"month": "2026-04"}
    assert charges == [
        Charge("2026-04", "acme", "s1", 400, Decimal("37.60"), Decimal("31.96")),
        Charge("2026-03", "acme", "s2", 10, Decimal("1.5"), Decimal("1.50")),
    ]
    recorder.answers[("GET", "/tenants/t 1/x/invoices")] = ({"data": {"lines": [{"ref": "s1", "qty": 1}]}}, 200)
    with pytest.raises(
        BrokerCallError, match=r"line 0 has no amount at 'money.customer' \(set methods.charges.fields.amount\)"
    ):
        broker.charges("2026-04")
    recorder.answers[("GET", "/tenants/t 1/x/invoices")] = ({"lines": []}, 200)
    with pytest.raises(BrokerCallError, match="no list of lines at 'data.lines'"):
        broker.charges("2026-04")
    recorder.answers[("GET", "/tenants/t 1/x/invoices")] = ({"error": "no invoice"}, 404)
    assert broker.charges("2026-04") == []  # a month the broker has no invoice for


def test_activation_code_and_unsupported_methods(recorder: Recorder) -> None:
    broker = broker_for(recorder)
    broker.start(TENANT)
    recorder.answers[("GET", "/tenants/t 1/x/orders/s1")] = ({"sub": {"code": "AAAAA"}}, 200)
    recorder.answers[("GET", "/tenants/t 1/x/orders/s9")] = ({"error": "unknown"}, 404)
    assert broker.activation_code("s1") == "AAAAA" and broker.activation_code("s9") is None
    with pytest.raises(NotImplementedError, match="has no activate"):
        broker.activate("k1", "home", "KIS", 1)
    with pytest.raises(NotImplementedError):
        broker.migrate()
    broker.stop_tenant()
    assert recorder.calls[-1]["method"] == "DELETE" and recorder.calls[-1]["path"] == "/tenants/t 1/x"


def test_render_keeps_types_and_escapes() -> None:
    variables = {"n": 3, "d": Decimal("1.50"), "none": None, "s": "a/b c", "when": dt.date(2026, 1, 2)}
    assert render({"n": "{n}", "d": "{d}", "x": "{none}", "text": "n={n}", "list": ["{s}", "{when}"]}, variables) == {
        "n": 3,
        "d": "1.50",
        "text": "n=3",
        "list": ["a/b c", "2026-01-02"],
    }
    assert render({"x": "{none}"}, variables, omit_null=False) == {"x": None}
    assert render("/a/{s}/{n}", variables, url=True) == "/a/a%2Fb%20c/3"
    assert render("{{n}} is {n}", variables) == "{n} is 3"


def test_environment_variables_in_the_adapter_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(
        json.dumps(
            {
                **ADAPTER,
                "base_url": "${BROKER_URL:-http://default.test}",
                "headers": {"Authorization": "Bearer ${BROKER_TOKEN}"},
            }
        )
    )
    monkeypatch.setenv("BROKER_TOKEN", "t0k")
    adapter = HttpAdapter.load(path)
    assert adapter.base_url == "http://default.test" and adapter.headers["Authorization"] == "Bearer t0k"
    monkeypatch.setenv("BROKER_URL", "http://set.test/")
    assert HttpAdapter.load(path).base_url == "http://set.test"
    assert HttpAdapter.load(path, base_url="http://override.test").base_url == "http://override.test"
    monkeypatch.delenv("BROKER_TOKEN")
    with pytest.raises(AdapterError, match=r"headers.Authorization: environment variable BROKER_TOKEN is not set"):
        HttpAdapter.load(path)


def _with(**changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(ADAPTER))
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with(colour="blue"), "adapter.yaml: colour: unknown key"),
        (_with(base_url=KeyError), "adapter.yaml: base_url: must be an http(s) URL, not None"),
        (_with(base_url="ftp://x"), "base_url: must be an http(s) URL"),
        (_with(timeout="soon"), "timeout: must be a number of seconds"),
        (_with(methods__order_things={"url": "/x"}), "methods.order_things: unknown broker method (known: order,"),
        (_with(methods__order__url=KeyError), "methods.order.url: missing: the path"),
        (_with(methods__order__method="FETCH"), "methods.order.method: must be one of GET, POST"),
        (
            _with(methods__order__body={"n": "{quantiy}"}),
            "methods.order.body: unknown placeholder {quantiy} (this method knows:",
        ),
        (_with(methods__stop__url="/x/{tenant}/{sku}"), "methods.stop.url: unknown placeholder {sku}"),
        (_with(methods__order__colour=1), "methods.order.colour: unknown key"),
        (
            {"base_url": "http://b.test", "methods": {"charges": {"url": "/i/{period}"}}},
            "methods: no step method: an adapter drives at least one of order,",
        ),
        (_with(methods__order={"command": "broker order"}), "methods.order.command: must be a list of arguments"),
        (_with(methods__order__command=["b", "order"]), "methods.order: has both url and command"),
        (
            _with(methods__migrate={"url": "/m", "id": "/id"}),
            "methods.migrate.id: captures the broker's id of a step's ref",
        ),
        (_with(capabilities={"teleport": True}), "capabilities.teleport: unknown capability"),
        (_with(billing={"policy": "generous"}), "billing.policy: must be one of pass_through, own"),
        (_with(billing={"units": "furlongs"}), "billing.units: must be one of vendor,"),
        (_with(methods__charges__fields={"amount": None}), "methods.charges.fields.amount: is required"),
        (_with(result={"outcomes": {"OK": "fine"}}), "result.outcomes.OK: must be done or refused"),
        (_with(methods__charges__fields={"price": "x"}), "methods.charges.fields.price: not a Charge field"),
        (_with(methods__charges__items=3), "methods.charges.items: must be a dotted path"),
        (_with(methods__start__tenant_id=5), "methods.start.tenant_id: must be a dotted path"),
        (_with(result={"outcome": "ok", "verdict": "x"}), "result.verdict: unknown key"),
        (
            _with(methods__order__result={"outcome": None}),
            "methods.order.result.outcome: must be a dotted path, or http_status",
        ),
        (["a", "list"], "adapter.yaml: an adapter file is a mapping with base_url and methods"),
    ],
)
def test_a_bad_adapter_file_says_what_is_wrong(data: Any, message: str) -> None:
    with pytest.raises(AdapterError) as caught:
        HttpAdapter.from_dict(data, source="adapter.yaml")
    assert message in str(caught.value)


def test_adapter_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_url: http://x\nmethods:\n  start: {url: /t\n")
    with pytest.raises(AdapterError, match=rf"^{bad}:\d+: not valid YAML"):
        HttpAdapter.load(bad)
    with pytest.raises(AdapterError, match="cannot read the adapter file"):
        HttpAdapter.load(tmp_path / "missing.yaml")


def test_the_reference_brokers_adapter_file_loads() -> None:
    path = ROOT / "examples" / "reference_broker" / "adapter.yaml"
    if not path.is_file():
        pytest.skip("examples/reference_broker/adapter.yaml is not in this tree")
    adapter = HttpAdapter.load(path, base_url="http://127.0.0.1:1")
    for method in ("start", "advance_clock", "charges", "activation_code", "order", "activate", "reactivate"):
        assert adapter.supports(method)
