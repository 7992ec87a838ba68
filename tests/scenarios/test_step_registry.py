"""The step table (scenarios/steps.py) and the fault-kind registry are the only places a new step or fault kind is
declared: the model, the runner, the HTTP adapter and UnsupportedBroker read them, and the typed Broker protocols
stay in step with them."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import textwrap
from typing import Any

import httpx
import pytest

from ksimkit.scenarios.brokers.base import (
    CommonBroker,
    KormBroker,
    KssBroker,
    StepResult,
    TenantSetup,
    UnsupportedBroker,
)
from ksimkit.scenarios.brokers.http import HttpAdapter
from ksimkit.scenarios.errors import AdapterError, ScenarioError, ScenarioFileError
from ksimkit.scenarios.loader import parse_scenario
from ksimkit.scenarios.results import PASSED
from ksimkit.scenarios.runner import run_scenario
from ksimkit.scenarios.simulator import Simulator, fault_rule
from ksimkit.scenarios.steps import STEPS, Field, StepKind
from ksimkit.simulators.core.fault_kinds import FaultKind
from ksimkit.simulators.services import default_fault_kinds

COMMON = {"start", "stop_tenant", "advance_clock", "charges", "activation_code"}

# A step no module knows: declared here only.
NOTIFY = StepKind(
    "notify",
    frozenset({"kss"}),
    {"customer": Field("customer"), "reason": Field("str", required=False)},
    "tell a customer something",
    ("KSS-PAUSE-1",),
)
EXTENDED = STEPS.extended(NOTIFY)

SCENARIO = """
id: notify-a-customer
title: A step declared only in a test's step table
rules: [KSS-PAUSE-1]
service: kss
setup: {start: 2026-04-15T09:00:00Z}
steps:
  - notify: {customer: acme}
"""


def _methods(protocol: type) -> set[str]:
    return {name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")}


def test_the_protocols_declare_the_step_table() -> None:
    assert _methods(CommonBroker) == COMMON
    assert _methods(KormBroker) == set(STEPS.of("korm"))
    assert _methods(KssBroker) == set(STEPS.of("kss"))
    for name, kind in STEPS.items():
        protocol = KormBroker if "korm" in kind.services else KssBroker
        params = list(inspect.signature(getattr(protocol, name)).parameters)[1:]
        assert params == list(kind.fields), name  # the typed method takes the step's fields, in order


def test_unsupported_broker_raises_for_every_step_of_the_table() -> None:
    broker = UnsupportedBroker()
    for name in STEPS:
        with pytest.raises(NotImplementedError, match=name):
            getattr(broker, name)()
    with pytest.raises(AttributeError):
        broker.no_such_method  # noqa: B018


def test_a_new_step_is_parsed_only_with_a_table_that_declares_it() -> None:
    with pytest.raises(ScenarioFileError, match="unknown step kind 'notify'"):
        parse_scenario(SCENARIO)
    scenario = parse_scenario(SCENARIO, steps=EXTENDED)
    (step,) = scenario.steps
    assert step.spec is NOTIFY and step.args == {"customer": "acme", "reason": None}
    with pytest.raises(ScenarioFileError, match="notify is a KSS step; this scenario's service is korm"):
        parse_scenario(SCENARIO.replace("service: kss", "service: korm"), steps=EXTENDED)


class NotifyingBroker(UnsupportedBroker):
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def start(self, tenant: TenantSetup) -> None:
        self.tenant = tenant

    def advance_clock(self, to: dt.datetime) -> None:
        pass

    def activation_code(self, ref: str) -> str | None:
        return None

    def notify(self, customer: str, reason: str | None = None) -> StepResult:
        self.calls.append({"customer": customer, "reason": reason})
        return StepResult("done")


def test_the_runner_calls_a_new_step_as_its_declaration_says(sim: Simulator) -> None:
    broker = NotifyingBroker()
    result = run_scenario(parse_scenario(SCENARIO, steps=EXTENDED), broker, sim)
    assert result.verdict == PASSED, (result.reason, result.failures)
    assert broker.calls == [{"customer": "acme", "reason": None}]  # an optional field left out: the default
    assert result.steps[0].rule == "KSS-PAUSE-1"  # the rule the declaration names


def test_the_http_adapter_maps_a_new_step_from_the_table() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"outcome": "done"})

    data = {
        "base_url": "http://broker.invalid",
        "methods": {"notify": {"method": "POST", "url": "/t/{tenant}/notify/{customer}", "body": {"why": "{reason}"}}},
    }
    with pytest.raises(AdapterError, match="unknown broker method"):
        HttpAdapter.from_dict(data)
    adapter = HttpAdapter.from_dict(data, steps=EXTENDED)
    broker = adapter.broker(transport=httpx.MockTransport(answer))
    broker.tenant = "t1"
    assert broker.notify("acme", reason="hello") == StepResult("done")
    assert seen[0].url.path == "/t/t1/notify/acme" and json.loads(seen[0].content) == {"why": "hello"}
    bad = {**data, "methods": {"notify": {"url": "/t/{tenant}/notify/{count}"}}}
    with pytest.raises(AdapterError, match=r"unknown placeholder \{count\}"):
        HttpAdapter.from_dict(bad, steps=EXTENDED)


FAULT_SCENARIO = textwrap.dedent(
    """
    id: a-new-fault-kind
    title: A fault kind declared only in a test's registry
    rules: [SIM-ERR-1]
    service: kss
    setup: {start: 2026-04-15T09:00:00Z}
    steps:
      - fault: {kind: throttle, limit: 3}
    """
)


def test_fault_steps_are_checked_against_the_fault_kind_registry() -> None:
    with pytest.raises(ScenarioFileError) as caught:
        parse_scenario(FAULT_SCENARIO)
    assert "unknown key 'limit'" in str(caught.value)
    throttle = FaultKind("throttle", "the answer says: slow down", {"limit": 5}, answered_by="kss")
    kinds = default_fault_kinds().extended(throttle)
    scenario = parse_scenario(FAULT_SCENARIO, fault_kinds=kinds)
    assert scenario.steps[0].args == {"kind": "throttle", "limit": 3}
    # a kind only the KSS front end answers is armed for service kss, as the registry says
    assert fault_rule(scenario.steps[0].args, kinds) == {"kind": "throttle", "limit": 3, "times": 1, "service": "kss"}
    assert fault_rule({"kind": "throttle"}) == {"kind": "throttle", "times": 1}  # unknown to ksim's own registry


def test_every_error_of_the_package_is_a_scenario_error() -> None:
    from ksimkit.scenarios import errors

    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, ScenarioError), name
    assert issubclass(errors.ScenarioFileError, ValueError) and issubclass(errors.BrokerCallError, RuntimeError)
