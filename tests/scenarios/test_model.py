"""The scenario file format: what validates, and errors that name file:line and what is wrong."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from ksimkit.scenarios import rules
from ksimkit.scenarios.errors import ScenarioFileError
from ksimkit.scenarios.loader import SUITES_DIR, load_scenario, load_suite, parse_scenario
from ksimkit.scenarios.model import CodeCheck

UTC = dt.UTC

FULL = """
id: full-example
title: Every key of the format
description: a scenario that uses every key
rules: [KORM-PAYG-1, KORM-PAYG-2, KORM-STOP-1, KORM-STOP-2, KORM-APPR-1, KORM-MIG-1, SIM-IDEM-1]
service: korm
setup:
  start: 2026-04-15T09:00:00Z
  programme: reseller
  msp_registered: false
  billing_period: calendar_month
  timezone: Europe/Berlin
  prices: {KESB-SELECT-PAYG-20-49: "2.82", KESC-PAYG-10-14: 2.5}
  approval_codes: [{code: APR-15, percent: "15", expires_on: 2026-12-31}]
  legacy: [{ref: L1, customer: acme, sku: KESB-SELECT-PAYG-20-49, quantity: 25, activation_date: 2026-03-10}]
steps:
  - order: {ref: s1, customer: acme, sku: KESB-SELECT-PAYG-20-49, quantity: 25, approval_code: APR-15}
    note: with the approval code
  - advance: 2026-05-10
  - change_quantity: {ref: s1, quantity: 20}
  - switch_plan: {ref: s1, sku: KESB-SELECT-PAYG-50-99, quantity: 60}
  - advance: {days: 22}
  - migrate:
  - stop: {ref: s1}
  - reactivate: {ref: s1}
    expect: {outcome: refused, code: SUBSCRIPTION_DELETED}
  - fault: {operation: createSubscription, kind: status, status: 503, when: after, count: 1}
  - order: {ref: s2, customer: acme, sku: KESB-SELECT-PAYG-20-49, quantity: 25}
    expect: {activation_code: {different_from: s1}}
  - advance: {to: 2026-06-10T12:00:00Z}
  - change_quantity: {ref: L1, quantity: 30}
    expect: {code: OUT_OF_RANGE}
expect:
  vendor:
    - {ref: s1, status: deleted}
    - {ref: s2, activation_code: {different_from: s1}, quantity: 25, sku: KESB-SELECT-PAYG-20-49}
    - {ref: L1, activation_code: unchanged, exists: true}
    - {customer: acme, subscriptions: 3, active_subscriptions: 2}
  charges:
    - {period: 2026-04, ref: s1, units: 400, amount: "37.60", vendor_cost: "31.96", customer: acme}
    - {period: 2026-05, ref: s1, amount: "60.49"}
  reconcile: [2026-04, 2026-05]
"""


def issues_of(text: str, tmp_path: Path, name: str = "bad") -> list[str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    with pytest.raises(ScenarioFileError) as caught:
        load_scenario(path)
    for issue in caught.value.issues:
        assert issue.file == str(path)
    return [str(issue).replace(str(path), "F") for issue in caught.value.issues]


def minimal(**replace: str) -> str:
    parts = {
        "id": "id: bad",
        "title": "title: t",
        "rules": "rules: [KORM-PAYG-2]",
        "service": "service: korm",
        "setup": "setup:\n  start: 2026-04-15T09:00:00Z",
        "steps": "steps:\n  - order: {ref: s1, customer: acme, sku: KESB-SELECT-PAYG-20-49, quantity: 25}",
        "expect": "expect:\n  charges:\n    - {period: 2026-04, ref: s1, units: 400}",
    }
    parts.update(replace)
    return "\n".join(v for v in parts.values() if v) + "\n"


def test_the_full_example_parses_into_the_model(tmp_path: Path) -> None:
    path = tmp_path / "full-example.yaml"
    path.write_text(textwrap.dedent(FULL).lstrip())
    s = load_scenario(path)
    assert (s.id, s.service, s.path) == ("full-example", "korm", path)
    assert s.rules[:2] == ("KORM-PAYG-1", "KORM-PAYG-2") and s.description
    assert s.setup.start == dt.datetime(2026, 4, 15, 9, tzinfo=UTC)
    assert s.setup.timezone == "Europe/Berlin" and s.setup.msp_registered is False
    assert s.setup.prices == {"KESB-SELECT-PAYG-20-49": Decimal("2.82"), "KESC-PAYG-10-14": Decimal("2.5")}
    assert s.setup.approval_codes[0].percent == Decimal("15") and s.setup.approval_codes[0].code == "APR-15"
    assert s.setup.legacy[0].ref == "L1" and s.setup.legacy[0].activation_date == dt.date(2026, 3, 10)
    kinds = [step.kind for step in s.steps]
    assert kinds == [
        "order",
        "advance",
        "change_quantity",
        "switch_plan",
        "advance",
        "migrate",
        "stop",
        "reactivate",
        "fault",
        "order",
        "advance",
        "change_quantity",
    ]
    # a bare date advances to 00:00 in the partner's zone (Berlin is UTC+2 in May); {days: n} is relative
    assert s.steps[1].args["to"] == dt.datetime(2026, 5, 9, 22, tzinfo=UTC)
    assert s.steps[4].args["to"] == dt.datetime(2026, 5, 31, 22, tzinfo=UTC)
    assert s.steps[2].at == dt.datetime(2026, 5, 9, 22, tzinfo=UTC)  # the clock when the step runs
    assert s.steps[0].note == "with the approval code" and s.steps[0].args["approval_code"] == "APR-15"
    assert s.steps[7].expect.outcome == "refused" and s.steps[7].expect.code == "SUBSCRIPTION_DELETED"
    assert s.steps[9].expect.activation_code == CodeCheck("different_from", "s1")
    assert s.steps[11].expect.outcome == "refused"  # a code alone means a refusal
    assert s.steps[0].expect.outcome == "done"  # the default
    assert s.steps[8].args == {
        "operation": "createSubscription",
        "kind": "status",
        "status": 503,
        "when": "after",
        "count": 1,
    }
    assert s.refs == ["L1", "s1", "s2"]
    vendor = s.expect.vendor
    assert vendor[0].status == "deleted" and vendor[1].quantity == 25 and vendor[1].sku == "KESB-SELECT-PAYG-20-49"
    assert vendor[2].activation_code == CodeCheck("unchanged") and vendor[2].exists is True
    assert (vendor[3].customer, vendor[3].subscriptions, vendor[3].active_subscriptions) == ("acme", 3, 2)
    first = s.expect.charges[0]
    assert (first.units, first.amount, first.vendor_cost, first.customer) == (
        400,
        Decimal("37.60"),
        Decimal("31.96"),
        "acme",
    )
    assert s.expect.charges[1].units is None
    assert s.expect.billed_periods == ["2026-04", "2026-05"] and s.expect.reconcile == ("2026-04", "2026-05")
    assert s.steps[0].line == 16 and s.expect.charges[0].line == 39


def test_the_packaged_suites_validate() -> None:
    scenarios = load_suite([SUITES_DIR])
    assert scenarios, "no scenario files under scenarios/suites"
    assert {s.service for s in scenarios} <= {"korm", "kss"}
    for scenario in scenarios:
        assert scenario.path is not None and scenario.path.stem == scenario.id
        assert all(rules.is_known(rule) for rule in scenario.rules)


def test_the_rule_catalog_names_every_rule_once() -> None:
    catalog = rules.all_rules()
    assert len(catalog) == 40
    assert rules.title("KORM-PAYG-2").startswith("PAYG: billed by licence-days")
    assert {r.group for r in catalog.values()} == {"korm", "kss", "sim"}
    assert rules.title("NOPE-1") == "" and not rules.is_known("NOPE-1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            minimal(title="title: t\ncolour: blue"), ["F:3: the scenario: unknown key 'colour'"], id="unknown-top-key"
        ),
        pytest.param(
            minimal(id="id: other"), ["F:1: id 'other' must equal the file name's stem 'bad'"], id="id-not-stem"
        ),
        pytest.param(minimal(title=""), ["F:1: the scenario: missing required key 'title'"], id="missing-key"),
        pytest.param(
            minimal(rules="rules: [KORM-PAYG-2, KORM-NOPE-9]"),
            ["F:3: unknown rule ID 'KORM-NOPE-9' (not in the rules catalog"],
            id="unknown-rule",
        ),
        pytest.param(
            minimal(rules="rules: KORM-PAYG-2"),
            ["F:3: rules must be a list, not str 'KORM-PAYG-2'"],
            id="rules-not-a-list",
        ),
        pytest.param(
            minimal(service="service: soap"), ["F:4: service must be one of korm, kss, not 'soap'"], id="bad-service"
        ),
        pytest.param(
            minimal(setup="setup:\n  start: yesterday"),
            ["F:6: setup.start must be a date (2026-05-10) or a date-time (2026-05-10T09:00:00Z), not str 'yesterday'"],
            id="bad-start",
        ),
        pytest.param(
            minimal(setup="setup:\n  start: 2026-04-15T09:00:00Z\n  timezone: Mars/Olympus"),
            ["F:7: setup.timezone 'Mars/Olympus' is not an IANA time zone"],
            id="bad-timezone",
        ),
        pytest.param(
            minimal(setup="setup:\n  start: 2026-04-15T09:00:00Z\n  programme: vip"),
            ["F:7: setup.programme must be one of xsp, reseller, msp, not 'vip'"],
            id="bad-programme",
        ),
        pytest.param(
            minimal(setup="setup:\n  start: 2026-04-15T09:00:00Z\n  prices: {KESB: 2.825}"),
            [],
            id="price-with-3-decimals-is-fine",
        ),
        pytest.param(
            minimal(setup="setup:\n  start: 2026-04-15T09:00:00Z\n  prices: {KESB: two}"),
            ["F:7: setup.prices.KESB must be an amount such as \"37.60\", not str 'two'"],
            id="bad-price",
        ),
        pytest.param(
            minimal(
                setup="setup:\n  start: 2026-04-15T09:00:00Z\n  approval_codes: [{percent: '15', expires_on: soon}]"
            ),
            ["F:7: approval code: expires_on must be a date (YYYY-MM-DD), not str 'soon'"],
            id="bad-date",
        ),
        pytest.param(
            minimal(setup="setup:\n  start: 2026-04-15T09:00:00Z\n  prepaid: []"),
            ["F:7: setup.prepaid holds KSS prepaid licences; this scenario's service is korm"],
            id="kss-data-in-korm",
        ),
        pytest.param(
            minimal(steps="steps:\n  - order: {ref: s1, customer: acme, sku: X, quantity: lots}"),
            ["F:8: step 1 (order): quantity must be a whole number, not str 'lots'"],
            id="wrong-type",
        ),
        pytest.param(
            minimal(steps="steps:\n  - order: {ref: s1, customer: acme, sku: X, quantity: 0}"),
            ["F:8: step 1 (order): quantity must be at least 1, not 0"],
            id="quantity-zero",
        ),
        pytest.param(
            minimal(steps="steps:\n  - order: {ref: s1, customer: acme, sku: X, quantity: 1}\n  - cancel: {ref: s1}"),
            ["F:9: step 2: unknown step kind 'cancel' (known: order, "],
            id="unknown-step-kind",
        ),
        pytest.param(
            minimal(steps="steps:\n  - order: {ref: s1, customer: acme, sku: X, quantity: 1, colour: red}"),
            ["F:8: step 1 (order): unknown key 'colour' (known: approval_code, customer, quantity, ref, sku)"],
            id="unknown-step-field",
        ),
        pytest.param(
            minimal(steps="steps:\n  - order: {ref: s1, customer: acme, sku: X, quantity: 1}\n  - stop: {ref: s9}"),
            ["F:9: step 2 (stop): undefined ref 's9' (a ref is defined by an earlier order"],
            id="undefined-ref",
        ),
        pytest.param(
            minimal(
                steps="steps:\n  - order: {ref: s1, customer: acme, sku: X, quantity: 1}\n"
                "  - order: {ref: s1, customer: acme, sku: X, quantity: 1}"
            ),
            ["F:9: step 2 (order): ref 's1' is already defined at line 8"],
            id="ref-twice",
        ),
        pytest.param(
            minimal(
                steps="steps:\n  - order: {ref: s1, customer: acme, sku: X, quantity: 1}\n"
                "  - activate: {ref: k1, customer: acme, product: KIS, count: 1}"
            ),
            ["F:9: step 2 (activate): activate is a KSS step; this scenario's service is korm"],
            id="kss-step-in-korm",
        ),
        pytest.param(
            minimal(steps="steps:\n  - order: {ref: s1, customer: acme, sku: X, quantity: 1}\n  - advance: 2026-04-01"),
            ["F:9: step 2 (advance): the clock only moves forward"],
            id="advance-backwards",
        ),
        pytest.param(
            minimal(steps="steps:\n  - order: {ref: s1, customer: acme, sku: X, quantity: 1}\n  - advance: next week"),
            ["F:9: step 2 (advance) must be a date (2026-05-10) or a date-time"],
            id="bad-advance",
        ),
        pytest.param(
            minimal(
                steps="steps:\n  - order: {ref: s1, customer: acme, sku: X, quantity: 1}\n    expect: {outcome: maybe}"
            ),
            ["F:9: step 1 (order): expect.outcome must be one of done, refused, any, not 'maybe'"],
            id="bad-outcome",
        ),
        pytest.param(
            minimal(steps="steps:\n  - order: {ref: s1, customer: acme, sku: X, quantity: 1}\n    stop: {ref: s1}"),
            [
                "F:8: step 1: a step holds exactly one step kind (and optionally expect, note), found order, stop",
                "F:12: undefined ref 's1'",
            ],
            id="two-kinds",
        ),
        pytest.param(
            minimal(
                steps="steps:\n  - fault: {operation: createSubscription, kind: explode}\n"
                "  - order: {ref: s1, customer: acme, sku: X, quantity: 1}"
            ),
            ["F:8: step 1 (fault): kind must be one of delay, status, "],
            id="bad-fault-kind",
        ),
        pytest.param(
            minimal(
                steps="steps:\n  - fault: {kind: status, sometimes: true}\n"
                "  - order: {ref: s1, customer: acme, sku: X, quantity: 1}"
            ),
            ["F:8: step 1 (fault): unknown key 'sometimes'"],
            id="bad-fault-key",
        ),
        pytest.param(
            minimal(expect="expect:\n  charges:\n    - {period: 2026-4, ref: s1, units: 400}"),
            ["F:11: expect.charges period must be a month (YYYY-MM), not str '2026-4'"],
            id="bad-period",
        ),
        pytest.param(
            minimal(expect="expect:\n  charges:\n    - {period: 2026-04-01, ref: s1, units: 400}"),
            ["F:11: expect.charges period must be a month (a month, YYYY-MM: write 2026-04, not a date)"],
            id="date-as-period",
        ),
        pytest.param(
            minimal(expect='expect:\n  charges:\n    - {period: 2026-04, ref: s1, amount: "37.605"}'),
            ["F:11: expect.charges amount 37.605 has more than 2 decimals"],
            id="money-3-decimals",
        ),
        pytest.param(
            minimal(expect='expect:\n  charges:\n    - {period: 2026-04, ref: s1, amount: "37,60"}'),
            ["F:11: expect.charges amount must be an amount such as \"37.60\", not str '37,60'"],
            id="money-comma",
        ),
        pytest.param(
            minimal(expect="expect:\n  charges:\n    - {period: 2026-04, ref: s7, units: 1}"),
            ["F:11: undefined ref 's7' (no order, activate or setup.legacy defines it)"],
            id="charge-undefined-ref",
        ),
        pytest.param(
            minimal(expect="expect:\n  charges:\n    - {period: 2026-04, ref: s1}"),
            ["F:11: expect.charges item: give at least one of units, amount, vendor_cost"],
            id="charge-empty",
        ),
        pytest.param(
            minimal(expect="expect:\n  vendor:\n    - {ref: s1, subscriptions: 2}"),
            ["F:11: expect.vendor item: 'subscriptions' does not go with ref"],
            id="vendor-mixed",
        ),
        pytest.param(
            minimal(expect="expect:\n  vendor:\n    - {ref: s1, activation_code: {same_as: s9}}"),
            ["F:11: undefined ref 's9'"],
            id="vendor-code-undefined-ref",
        ),
        pytest.param(
            minimal(expect="expect:\n  reconcile: [April]"),
            ["F:10: expect.reconcile period must be a month (YYYY-MM), not str 'April'"],
            id="bad-reconcile",
        ),
        pytest.param(
            minimal(title="title: t\ntitle: u"), ["F:3: the scenario: key 'title' appears twice"], id="duplicate-key"
        ),
    ],
)
def test_validation_errors_name_the_line_and_the_problem(text: str, expected: list[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    if not expected:
        load_scenario(path)
        return
    with pytest.raises(ScenarioFileError) as caught:
        load_scenario(path)
    got = [str(issue).replace(str(path), "F") for issue in caught.value.issues]
    assert len(got) == len(expected), got
    for want, have in zip(expected, got, strict=True):
        assert have.startswith(want), (want, got)
    assert str(caught.value).startswith(str(path) + ":")


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    got = issues_of(
        """
        id: bad
        title: several problems
        rules: [KORM-NOPE-1]
        service: korm
        setup:
          start: 2026-04-15T09:00:00Z
        steps:
          - order: {ref: s1, customer: acme, sku: X, quantity: -1}
          - explode: {ref: s1}
        expect:
          reconcile: [2026-13]
    """,
        tmp_path,
    )
    assert [line.split(": ", 1)[0] for line in got] == ["F:3", "F:8", "F:9", "F:11"]


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    got = issues_of("id: bad\ntitle: t\nrules: [KORM-PAYG-2\nservice: korm\n", tmp_path)
    assert len(got) == 1 and got[0].startswith("F:4: not valid YAML"), got


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert issues_of("- just\n- a list\n", tmp_path) == ["F:1: the scenario must be a mapping, not a list"]
    assert issues_of("", tmp_path) == ["F: the file is empty"]


def test_parse_scenario_from_text_and_a_suite_with_duplicate_ids(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    s = parse_scenario(minimal(id="id: from-text"), file="inline.yaml")
    assert s.id == "from-text" and s.path is None
    write_scenario("dup", minimal(id="id: dup"), tmp_path / "a")
    write_scenario("dup", minimal(id="id: dup"), tmp_path / "b")
    write_scenario("broken", minimal(id="id: broken", service="service: nope"), tmp_path / "b")
    with pytest.raises(ScenarioFileError) as caught:
        load_suite([tmp_path])
    text = str(caught.value)
    assert "service must be one of korm, kss" in text and "scenario id 'dup' is also used by" in text


def test_a_kss_scenario(make_scenario: Callable[..., object]) -> None:
    s = make_scenario(
        "kss-one",
        """
        id: kss-one
        title: trial, pause, soft cancel
        rules: [KSS-TRIAL-2, KSS-PAUSE-1, KSS-STOP-1, KSS-PREPAID-1]
        service: kss
        setup:
          start: 2026-03-01T09:00:00Z
          programme: xsp
          billing_period: 30_days
          prepaid: [{customer: acme, product: KESB-SELECT, licence_count: 50, expires_on: 2026-12-31}]
        steps:
          - activate: {ref: s1, customer: home, product: KIS, count: 3, trial_days: 30}
          - pause: {ref: s1, until: 2026-07-01}
          - resume: {ref: s1}
          - change_count: {ref: s1, count: 5}
          - change_product: {ref: s1, product: KTS}
          - cancel_at_month_end: {ref: s1, month: 2026-08}
          - reactivate: {ref: s1}
          - hard_cancel: {ref: s1}
            expect: {outcome: any}
          - activate: {ref: s2, customer: acme, product: KESB-SELECT, count: 1}
            expect: {code: 703}
        expect:
          vendor:
            - {ref: s1, status: HardCancelled, count: 5, product: KTS, activation_code: unchanged}
    """,
    )
    steps = s.steps  # type: ignore[attr-defined]
    assert steps[1].args["until"] == dt.datetime(2026, 7, 1, tzinfo=UTC)
    assert steps[5].args["month"] == "2026-08" and steps[7].expect.outcome == "any"
    assert steps[8].expect.code == "703" and steps[8].expect.outcome == "refused"
    assert s.expect.vendor[0].quantity == 5  # type: ignore[attr-defined]
