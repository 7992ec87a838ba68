"""The adapter file meets brokers where they are: commands as well as HTTP, ids captured from answers, the broker's
own answers and codes mapped, invoices mapped (units and vendor cost optional), no tenant API (pooled partners with
an optional reset), a clock that is a command or nothing, a billing run after a move, the partner's terms as
placeholders, capabilities and billing policy declared."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksimkit.scenarios.brokers.adapter_file import BillingPolicy
from ksimkit.scenarios.brokers.base import Charge, StepResult, TenantSetup
from ksimkit.scenarios.brokers.http import HttpAdapter
from ksimkit.scenarios.brokers.templates import dig
from ksimkit.scenarios.capabilities import CAPABILITIES, required_capabilities, unsupported
from ksimkit.scenarios.errors import AdapterError, BrokerCallError
from ksimkit.scenarios.loader import parse_scenario
from tests.scenarios.test_http_adapter import Recorder

UTC = dt.UTC
POOLED = TenantSetup(
    scenario_id="kss-x",
    korm_url="http://sim/korm/v1",
    korm_token="tok",
    kss_wsdl_url="http://sim/kss/soap/upi?wsdl",
    kss_username="u",
    kss_password="p",
    now=dt.datetime(2026, 4, 15, 9, tzinfo=UTC),
    timezone="Europe/Berlin",
    prices={"KSOS": Decimal("2.50")},
    programme="msp",
    billing_period="30_days",
    msp_registered=True,
    terms={"currency": "EUR", "kss": {"prices": None, "msp_tiers": [{"from_licences": 50, "percent": "5"}]}},
    partner_id="ptn_00000000e001",
    pooled=True,
    broker_tenant="north",
)

OWN_API: dict[str, Any] = {
    "base_url": "http://broker.test/api",
    "capabilities": {"legacy": False, "kss_pause": True, "yearly": True},
    "billing": {"policy": "own", "units": "licence_months"},
    "result": {
        "outcome": "/status",
        "outcomes": {"ACCEPTED": "done", "REJECTED": "refused"},
        "code": "/error/code",
        "codes": {"E-GONE": "SUBSCRIPTION_DELETED"},
        "activation_code": "/order/key",
    },
    "methods": {
        "reset": {
            "url": "/companies/{tenant}/reset",
            "body": {
                "now": "{now}",
                "programme": "{programme}",
                "period": "{billing_period}",
                "tz": "{timezone}",
                "tiers": "{msp_tiers}",
                "partner": "{partner}",
            },
        },
        "run_billing": {"url": "/companies/{tenant}/billing-run", "body": {"at": "{to}"}},
        "order": {
            "url": "/companies/{tenant}/orders",
            "body": {"client": "{customer}", "seats": "{quantity}"},
            "id": "/order/number",
        },
        "stop": {"url": "/companies/{tenant}/orders/{id}/cancel"},
        "charges": {
            "url": "/companies/{tenant}/invoices",
            "params": {"month": "{period}"},
            "items": "/invoice/rows",
            "fields": {"id": "/order", "amount": "/total", "units": None, "vendor_cost": None, "period": "/date"},
        },
        "activation_code": {"url": "/companies/{tenant}/orders/{id}", "value": "/order/key"},
    },
}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def own_broker(recorder: Recorder, data: dict[str, Any] | None = None) -> Any:
    adapter = HttpAdapter.from_dict(data or OWN_API, source="own.yaml")
    return adapter.broker(transport=httpx.WSGITransport(app=recorder.app()))


def test_dig_reads_json_pointers_and_dotted_paths() -> None:
    doc = {"a": {"b/c": [{"~x": 1}], "d": 2}}
    assert dig(doc, "/a/b~1c/0/~0x") == 1 and dig(doc, "a.d") == 2 and dig(doc, "/a/zz") is dig(doc, "a.zz")


def test_no_tenant_api_resets_the_brokers_books_with_the_partners_terms(recorder: Recorder) -> None:
    broker = own_broker(recorder)
    broker.start(POOLED)
    call = recorder.calls[0]
    assert call["path"] == "/companies/north/reset"  # {tenant}: the pool entry's name for the partner
    assert call["json"] == {
        "now": "2026-04-15T09:00:00Z",
        "programme": "msp",
        "period": "30_days",
        "tz": "Europe/Berlin",
        "tiers": [{"from_licences": 50, "percent": "5"}],
        "partner": "ptn_00000000e001",
    }
    assert broker.resets_state and broker.capabilities == frozenset({"kss_pause", "yearly"})
    assert broker.billing == BillingPolicy(policy="own", units="licence_months")


def test_ids_are_captured_per_ref_and_used_by_later_steps(recorder: Recorder) -> None:
    broker = own_broker(recorder)
    broker.start(POOLED)
    recorder.answers[("POST", "/companies/north/orders")] = (
        {"status": "ACCEPTED", "order": {"number": "SO-17", "key": "K-1"}},
        200,
    )
    assert broker.order("s1", "acme", "KESB", 25) == StepResult("done", activation_code="K-1")
    assert broker.ids == {"s1": "SO-17"}
    recorder.answers[("POST", "/companies/north/orders/SO-17/cancel")] = (
        {"status": "REJECTED", "error": {"code": "E-GONE"}},
        200,
    )
    assert broker.stop("s1") == StepResult("refused", code="SUBSCRIPTION_DELETED")  # the code table
    recorder.answers[("GET", "/companies/north/orders/SO-17")] = ({"order": {"key": "K-1"}}, 200)
    assert broker.activation_code("s1") == "K-1"
    calls = len(recorder.calls)
    assert broker.activation_code("never-ordered") is None and len(recorder.calls) == calls  # no id: nothing held


def test_a_refused_order_captures_no_id_and_an_accepted_one_without_id_is_an_error(recorder: Recorder) -> None:
    broker = own_broker(recorder)
    broker.start(POOLED)
    recorder.answers[("POST", "/companies/north/orders")] = ({"status": "REJECTED", "error": {"code": "E-X"}}, 200)
    assert broker.order("s1", "acme", "KESB", 25) == StepResult("refused", code="E-X") and broker.ids == {}
    recorder.answers[("POST", "/companies/north/orders")] = ({"status": "ACCEPTED", "order": {}}, 200)
    with pytest.raises(BrokerCallError, match=r"order: the answer has no id at '/order/number' \(methods.order.id\)"):
        broker.order("s2", "acme", "KESB", 25)


def test_invoices_are_mapped_by_the_brokers_id_without_units_or_vendor_cost(recorder: Recorder) -> None:
    broker = own_broker(recorder)
    broker.start(POOLED)
    recorder.answers[("POST", "/companies/north/orders")] = ({"status": "ACCEPTED", "order": {"number": "SO-9"}}, 200)
    broker.order("s1", "acme", "KESB", 25)
    recorder.answers[("GET", "/companies/north/invoices")] = (
        {
            "invoice": {
                "rows": [
                    {"order": "SO-9", "total": "75.00"},
                    {"order": "SO-OTHER", "total": "1.00", "date": "2026-05-15T00:00:00Z"},
                ]
            }
        },
        200,
    )
    assert broker.charges("2026-04") == [
        Charge("2026-04", "", "s1", None, Decimal("75.00"), None),
        Charge("2026-05", "", "SO-OTHER", None, Decimal("1.00"), None),
    ]


def test_a_clock_move_runs_the_billing_step_and_an_absent_clock_is_no_call(recorder: Recorder) -> None:
    broker = own_broker(recorder)  # no advance_clock: the broker reads its time from ksim's time endpoint
    broker.start(POOLED)
    broker.advance_clock(dt.datetime(2026, 5, 1, tzinfo=UTC))
    assert [c["path"] for c in recorder.calls[1:]] == ["/companies/north/billing-run"]
    assert recorder.calls[-1]["json"] == {"at": "2026-05-01T00:00:00Z"}


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "mybroker.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return str(path)


def test_commands_take_argv_templates_and_answer_json_on_stdout(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    script = _script(
        tmp_path,
        f"""
        import json, os, sys
        args = sys.argv[1:]
        stdin = sys.stdin.read()
        with open({str(log)!r}, "a") as fh:
            fh.write(json.dumps({{"args": args, "stdin": stdin, "env": os.environ.get("BROKER_COMPANY")}}) + "\\n")
        if args[0] == "order":
            print(json.dumps({{"status": "ACCEPTED", "order": {{"number": "CLI-" + args[2]}}}}))
        elif args[0] == "cancel":
            print(json.dumps({{"status": "REJECTED", "error": {{"code": "E-GONE"}}}}))
            sys.exit(3)
        elif args[0] == "clock":
            print("{{}}")
        elif args[0] == "crash":
            print("Traceback: boom", file=sys.stderr)
            sys.exit(1)
    """,
    )
    data = {
        "result": OWN_API["result"],
        "methods": {
            "order": {
                "command": ["{python}", script, "order", "{customer}", "{quantity}"],
                "id": "/order/number",
                "env": {"BROKER_COMPANY": "{tenant}"},
            },
            "stop": {
                "command": ["{python}", script, "cancel", "{id}"],
                "refused_exit": [3],
                "stdin": {"order": "{id}"},
            },
            "advance_clock": {"command": ["{python}", script, "clock", "--to", "{to}", "{prices}"]},
            "hard_cancel": {"command": ["{python}", script, "crash"]},
        },
    }
    adapter = HttpAdapter.from_dict(data, source="cli.yaml")  # commands only: no base_url needed
    broker = adapter.broker()
    broker.start(POOLED)
    assert broker.order("s1", "acme", "KESB", 25) == StepResult("done")
    assert broker.ids == {"s1": "CLI-25"}
    assert broker.stop("s1") == StepResult("refused", code="SUBSCRIPTION_DELETED")
    broker.advance_clock(dt.datetime(2026, 5, 1, tzinfo=UTC))
    with pytest.raises(
        BrokerCallError,
        match=r"hard_cancel: the command exited with status 1 \[RUN .*crash\]: "
        r"Traceback: boom",
    ):
        broker.hard_cancel("s1")
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls[0] == {"args": ["order", "acme", "25"], "stdin": "", "env": "north"}
    assert calls[1]["args"] == ["cancel", "CLI-25"] and json.loads(calls[1]["stdin"]) == {"order": "CLI-25"}
    assert calls[2]["args"] == ["clock", "--to", "2026-05-01T00:00:00Z", '{"KSOS": "2.50"}']  # objects as JSON
    broker.close()


def test_a_command_that_cannot_start_is_an_error_of_the_broker() -> None:
    adapter = HttpAdapter.from_dict(
        {"methods": {"stop": {"command": ["/nonexistent/ksim-broker-cli", "{ref}"]}}}, source="cli.yaml"
    )
    with pytest.raises(BrokerCallError, match=r"stop: the command did not run: FileNotFoundError"):
        adapter.broker().stop("s1")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"methods": {"stop": {"command": ["x"], "body": {"a": 1}}}}, "methods.stop.body: is for HTTP calls"),
        (
            {"base_url": "http://b", "methods": {"stop": {"url": "/s", "refused_exit": [3]}}},
            "methods.stop.refused_exit: is for commands",
        ),
        ({"methods": {"stop": {"command": ["x", "{colour}"]}}}, "methods.stop.command: unknown placeholder {colour}"),
        (
            {"methods": {"stop": {"command": ["x"], "refused_exit": "three"}}},
            "methods.stop.refused_exit: must be an exit status or a list of them",
        ),
        (
            {"base_url": "http://b", "capabilities": "all", "methods": {"stop": {"url": "/s"}}},
            "capabilities: must map capability names to true/false",
        ),
        (
            {
                "base_url": "http://b",
                "methods": {"stop": {"url": "/s"}, "charges": {"url": "/c", "fields": {"ref": None}}},
            },
            "methods.charges.fields: needs ref (the scenario's ref) or id",
        ),
    ],
)
def test_a_bad_new_style_adapter_says_what_is_wrong(data: dict[str, Any], message: str) -> None:
    with pytest.raises(AdapterError) as caught:
        HttpAdapter.from_dict(data, source="a.yaml")
    assert message in str(caught.value)


KSS_PAUSE = """
id: cap-x
title: t
rules: [KSS-PAUSE-1]
service: kss
setup: {start: 2026-04-15T09:00:00Z, programme: xsp}
steps:
  - activate: {ref: s1, customer: acme, product: KIS, count: 5, trial_days: 10}
  - pause: {ref: s1}
"""


def test_capabilities_a_scenario_needs_come_from_its_setup_and_steps() -> None:
    scenario = parse_scenario(KSS_PAUSE, file="cap.yaml")
    assert required_capabilities(scenario) == {"kss_xsp", "kss_trial", "kss_pause"}
    assert set(required_capabilities(scenario)) <= set(CAPABILITIES)
    assert unsupported(scenario, None) == []  # nothing declared: everything assumed
    assert unsupported(scenario, frozenset({"kss_xsp", "kss_pause"})) == ["kss_trial"]


def test_the_reference_adapter_declares_nothing_and_keeps_its_meaning() -> None:
    from ksimkit.scenarios.brokers.reference import adapter_path

    adapter = HttpAdapter.load(adapter_path())
    assert adapter.capabilities is None and adapter.billing == BillingPolicy()
    assert {"start", "advance_clock", "charges"} <= set(adapter.methods)
    assert adapter.methods["charges"].fields["vendor_cost"] == "vendor_cost"
    assert dataclasses.replace(adapter.methods["order"]).id_path is None
