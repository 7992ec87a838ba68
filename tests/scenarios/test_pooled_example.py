"""The second example broker (examples/pooled_broker) certified as it is, by ``ksim certify --pooled-example``: pooled
partners with fixed credentials, its own order numbers and error codes, a clock moved by its CLI, its own invoice
shape, no legacy takeover. A few packaged scenarios here; all of them: ``make certify-pooled``."""

from __future__ import annotations

import json
from pathlib import Path

from ksimkit.scenarios.loader import SUITES_DIR
from ksimkit.simulators.cli import main

PICKED = [
    "korm/korm-stop-reactivate-refused.yaml",  # a vendor refusal its own code hides: read from ksim's journal
    "korm/korm-payg-reduction-mid-month.yaml",  # ids captured per ref, invoices in its own shape
    "korm/korm-legacy-free-first-month.yaml",  # needs legacy takeover, which it does not declare: not applicable
    "kss/kss-count-unchanged-refused.yaml",  # KSS 707 behind its E-NO-CHANGE
    "kss/kss-msp-volume-tier-across-customers.yaml",  # a pooled partner switched to msp for the scenario
]


def test_the_pooled_example_broker_is_certified_on_its_pool(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "certify",
            "--pooled-example",
            "--jobs",
            "2",
            "--out",
            str(out),
            "--suite",
            *[str(SUITES_DIR / name) for name in PICKED],
        ]
    )
    summary = json.loads((out / "summary.json").read_text())
    verdicts = {s["scenario_id"]: s["verdict"] for s in summary["scenarios"]}
    assert code == 0, [(s["scenario_id"], s["failures"] or s["reason"]) for s in summary["scenarios"]]
    assert verdicts == {
        "korm-stop-reactivate-refused": "passed",
        "korm-payg-reduction-mid-month": "passed",
        "korm-legacy-free-first-month": "not_applicable",
        "kss-count-unchanged-refused": "passed",
        "kss-msp-volume-tier-across-customers": "passed",
    }
    by_id = {s["scenario_id"]: s for s in summary["scenarios"]}
    refused = by_id["korm-stop-reactivate-refused"]["steps"][-1]
    assert refused["code"] == "SUBSCRIPTION_DELETED (the vendor's, from ksim's journal)"
    assert by_id["korm-stop-reactivate-refused"]["levels"] == {"vendor_side": "passed", "full": "passed"}
    assert "legacy" in by_id["korm-legacy-free-first-month"]["reason"]
    assert {s["partner_id"] for s in summary["scenarios"] if s["partner_id"]} <= {
        "ptn_00000000e001",
        "ptn_00000000e002",
        "ptn_00000000e003",
        "ptn_00000000e004",
    }
    assert all(row["ok"] for s in summary["scenarios"] for row in s["charges"] + s["reconciliation"])


def test_a_bad_pool_file_is_exit_status_2_with_the_reason(tmp_path: Path, capsys: object) -> None:
    pool = tmp_path / "pool.yaml"
    pool.write_text("partners:\n  - {id: ptn_00000000a001, token: short, kss_username: u1, kss_password: secret123}\n")
    code = main(
        [
            "certify",
            "--pooled-example",
            "--pool",
            str(pool),
            "--out",
            str(tmp_path / "out"),
            "--suite",
            str(SUITES_DIR / PICKED[0]),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "--pool:" in err and "partners[0].token: must be 16 to 200 characters" in err


KSS_BY_ID = """
id: kss-matched-by-the-brokers-id
title: Without an activation-code call, the vendor's subscription is found by the broker's own id
rules: [KSS-QTY-2]
service: kss
setup:
  start: 2026-03-01T09:00:00Z
  programme: xsp
steps:
  - activate: {ref: home, customer: smith, product: KIS, count: 3}
  - advance: 2026-03-10
  - change_count: {ref: home, count: 5}
expect:
  vendor:
    - {ref: home, count: 5, status: Started}
  charges:
    - {period: 2026-03, ref: home, units: 5, amount: "14.95"}
  reconcile: [2026-03]
"""


def test_the_vendors_subscription_is_matched_by_the_brokers_own_id(tmp_path: Path, server: object) -> None:
    import dataclasses

    from ksimkit.scenarios.brokers.pooled_example import pooled_example_broker
    from ksimkit.scenarios.loader import parse_scenario
    from ksimkit.scenarios.results import PASSED
    from ksimkit.scenarios.runner import run_scenario
    from ksimkit.scenarios.simulator import Simulator
    from tests.scenarios.conftest import ADMIN_TOKEN

    scenario = parse_scenario(KSS_BY_ID, file="by-id.yaml")
    with pooled_example_broker() as (adapter, pool):
        methods = {k: v for k, v in adapter.methods.items() if k != "activation_code"}
        no_codes = dataclasses.replace(adapter, methods=methods)
        from ksimkit.simulators.client import KsimAdmin

        with KsimAdmin(server.url, ADMIN_TOKEN) as admin:  # type: ignore[attr-defined]
            pool.provision(admin)
        result = run_scenario(scenario, no_codes, Simulator(server.url, ADMIN_TOKEN, pool=pool))  # type: ignore[attr-defined]
    assert result.verdict == PASSED, result.failures or result.reason
    assert [c.ok for c in result.vendor_checks] == [True, True] and result.reconciliation[0].vendor_id.startswith("SO-")
