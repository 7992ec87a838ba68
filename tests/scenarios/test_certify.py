"""``ksim certify``: the whole pipeline against a broker over HTTP (the tiny test broker, and the reference broker
when the source tree has it), the three outputs, and the exit codes."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ksimkit.simulators.cli import main
from ksimkit.simulators.server import InProcessServer
from tests.scenarios import http_broker_app
from tests.scenarios.conftest import ADMIN_TOKEN

ROOT = Path(__file__).resolve().parents[2]

KORM = """
id: korm-one
title: PAYG reduction, stop and refused reactivation
rules: [KORM-PAYG-2, KORM-STOP-1]
service: korm
setup:
  start: 2026-04-15T09:00:00Z
steps:
  - order: {ref: s1, customer: acme, sku: KESB-SELECT-PAYG-20-49, quantity: 25}
  - advance: 2026-05-10
  - change_quantity: {ref: s1, quantity: 20}
  - stop: {ref: s1}
  - reactivate: {ref: s1}
    expect: {outcome: refused, code: SUBSCRIPTION_DELETED}
expect:
  vendor:
    - {ref: s1, status: deleted}
  charges:
    - {period: 2026-04, ref: s1, units: 400, amount: "37.60"}
    - {period: 2026-05, ref: s1, units: 225, amount: "20.47"}
  reconcile: [2026-04, 2026-05]
"""

KSS = """
id: kss-one
title: A count change keeps the code
rules: [KSS-CODE-1, KSS-QTY-2]
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
    - {ref: home, count: 5, activation_code: unchanged}
  charges:
    - {period: 2026-03, ref: home, units: 5, amount: "14.95"}
  reconcile: [2026-03]
"""


@pytest.fixture
def suite(write_scenario: Callable[..., Path], tmp_path: Path) -> Path:
    folder = tmp_path / "suite"
    write_scenario("korm-one", KORM, folder / "korm")
    write_scenario("kss-one", KSS, folder / "kss")
    return folder


@pytest.fixture
def defective_adapter_file(tmp_path: Path) -> Iterator[Path]:
    with InProcessServer(http_broker_app.create_app(frozenset({"reactivate_done"}))) as server:
        path = tmp_path / "defective.yaml"
        path.write_text(http_broker_app.ADAPTER_YAML.replace("http://tiny.invalid", server.url))
        yield path


def test_certify_a_broker_that_passes(
    tiny_adapter_file: Path, suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        ["certify", "--broker", str(tiny_adapter_file), "--suite", str(suite), "--out", str(out), "--jobs", "2"]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "CERTIFIED" in printed and "2 scenarios: 2 passed" in printed and "KORM-PAYG-2" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "passed" and summary["broker"] == "tiny-broker"
    assert summary["simulator"].startswith("in-process")
    assert not (out / "ksim-state.db").exists()  # the in-process simulator's state stays out of the report folder
    assert '<table class="matrix">' in (out / "report.html").read_text()
    assert ET.parse(out / "junit.xml").getroot().get("tests") == "2"


def test_certify_a_broker_that_fails(
    defective_adapter_file: Path,
    suite: Path,
    tmp_path: Path,
    server: InProcessServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "certify",
            "--broker",
            str(defective_adapter_file),
            "--suite",
            str(suite / "korm"),
            "--out",
            str(out),
            "--ksim-url",
            server.url,
            "--admin-token",
            ADMIN_TOKEN,
        ]
    )
    printed = capsys.readouterr().out
    assert code == 1, printed
    assert "NOT CERTIFIED" in printed and "korm-one" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "failed" and summary["simulator"] == server.url
    [scenario] = summary["scenarios"]
    assert any(
        "expected refused (SUBSCRIPTION_DELETED), the broker told its customer done" in f for f in scenario["failures"]
    )
    failure = ET.parse(out / "junit.xml").getroot().find(".//testcase/failure")
    assert failure is not None


def test_certify_selects_scenarios_and_kss_needs_soap(
    tiny_adapter_file: Path, suite: Path, tmp_path: Path, server: InProcessServer
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "certify",
            "--broker",
            str(tiny_adapter_file),
            "--suite",
            str(suite),
            "--out",
            str(out),
            "--ksim-url",
            server.url,
            "--admin-token",
            ADMIN_TOKEN,
            "-k",
            "KSS-CODE",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [s["scenario_id"] for s in summary["scenarios"]] == ["kss-one"]


def test_bad_input_exits_2(
    tiny_adapter_file: Path,
    suite: Path,
    tmp_path: Path,
    write_scenario: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad_adapter = tmp_path / "bad-adapter.yaml"
    bad_adapter.write_text("base_url: http://x\nmethods: {start: {url: /t}}\n")
    assert main(["certify", "--broker", str(bad_adapter), "--suite", str(suite)]) == 2
    assert "bad adapter file" in capsys.readouterr().err

    broken = write_scenario(
        "broken",
        KORM.replace("id: korm-one", "id: broken").replace("quantity: 20", "quantity: x"),
        tmp_path / "broken-suite",
    )
    assert main(["certify", "--broker", str(tiny_adapter_file), "--suite", str(broken.parent)]) == 2
    err = capsys.readouterr().err
    assert "do not validate" in err and f"{broken}:10: step 3 (change_quantity): quantity must be a whole number" in err

    assert main(["certify", "--broker", str(tiny_adapter_file), "--suite", str(tmp_path / "nowhere")]) == 2
    assert "no such suite or path" in capsys.readouterr().err

    with pytest.raises(SystemExit) as caught:  # argparse: --broker or --reference-broker is required
        main(["certify", "--suite", "korm"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit):
        main(["certify", "--broker", str(tiny_adapter_file), "--defects", "x"])


def test_SIM_ERR_1_an_unreachable_simulator_is_one_error_before_any_scenario(
    tiny_adapter_file: Path, suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    down = f"http://127.0.0.1:{_closed_port()}"
    assert (
        main(
            [
                "certify",
                "--broker",
                str(tiny_adapter_file),
                "--suite",
                str(suite),
                "--out",
                str(out),
                "--ksim-url",
                down,
            ]
        )
        == 2
    )
    captured = capsys.readouterr()
    assert f"the simulator at {down} cannot be reached" in captured.err and "no scenario was run" in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err + captured.out
    assert not (out / "summary.json").exists()  # no verdicts


def test_SIM_ERR_1_a_wrong_admin_token_is_one_error_before_any_scenario(
    tiny_adapter_file: Path, suite: Path, tmp_path: Path, server: InProcessServer, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        main(
            [
                "certify",
                "--broker",
                str(tiny_adapter_file),
                "--suite",
                str(suite),
                "--out",
                str(out),
                "--ksim-url",
                server.url,
                "--admin-token",
                "not-the-token",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "refuses the admin token" in err and not (out / "summary.json").exists()


def test_SIM_ERR_1_a_broker_that_is_down_is_one_error_not_red_rules(
    tiny_adapter_file: Path, suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    down = f"http://127.0.0.1:{_closed_port()}"
    assert (
        main(
            [
                "certify",
                "--broker",
                str(tiny_adapter_file),
                "--broker-url",
                down,
                "--suite",
                str(suite),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    captured = capsys.readouterr()
    assert f"the broker at {down} cannot be reached" in captured.err and "no scenario was run" in captured.err
    assert "failed" not in captured.out and not (out / "summary.json").exists()


def test_certify_keep_state_keeps_the_database_in_out(tiny_adapter_file: Path, suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "ksim-state.db").write_bytes(b"a previous run's")
    assert (
        main(
            ["certify", "--broker", str(tiny_adapter_file), "--suite", str(suite), "--out", str(out), "-k", "korm-one"]
        )
        == 0
    )
    assert not (out / "ksim-state.db").exists()  # not reused, not left behind
    assert (
        main(
            [
                "certify",
                "--broker",
                str(tiny_adapter_file),
                "--suite",
                str(suite),
                "--out",
                str(out),
                "-k",
                "korm-one",
                "--keep-state",
            ]
        )
        == 0
    )
    with sqlite3.connect(out / "ksim-state.db") as kept:  # the run's state, to look into
        assert kept.execute("SELECT count(*) FROM partners").fetchone()[0] >= 1


def test_certify_off_a_terminal_never_cuts_scenario_ids(
    defective_adapter_file: Path,
    write_scenario: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    long_id = "korm-a-scenario-id-long-enough-to-be-cut-at-eighty-columns-in-a-ci-log-" + "x" * 30
    write_scenario(long_id, KORM.replace("id: korm-one", f"id: {long_id}"), tmp_path / "long")
    assert (
        main(
            [
                "certify",
                "--broker",
                str(defective_adapter_file),
                "--suite",
                str(tmp_path / "long"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 1
    )  # capsys: stdout is not a terminal, as in CI
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if long_id in line]
    assert len(lines) >= 2, printed  # the progress line and the failures table, each with the whole id


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:  # bound, never listening, closed: nothing answers there
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _reference_suite() -> Path:
    path = ROOT / "scenarios" / "suites" / "korm" / "korm-payg-reduction-mid-month.yaml"
    if not (ROOT / "examples" / "reference_broker" / "adapter.yaml").is_file() or not path.is_file():
        pytest.skip("the reference broker or its scenario is not in this tree")
    return path


def test_certify_the_reference_broker(tmp_path: Path, server: InProcessServer) -> None:
    scenario = _reference_suite()
    common = [
        "certify",
        "--reference-broker",
        "--suite",
        str(scenario),
        "--ksim-url",
        server.url,
        "--admin-token",
        ADMIN_TOKEN,
    ]
    assert main(common + ["--out", str(tmp_path / "clean")]) == 0
    assert main(common + ["--out", str(tmp_path / "defect"), "--defects", "payg_reduction_whole_month"]) == 1
    assert main(common + ["--defects", "no_such_defect"]) == 2
    summary = json.loads((tmp_path / "defect" / "summary.json").read_text())
    assert summary["notes"] == ["reference broker with seeded defects: payg_reduction_whole_month"]
    assert summary["rules"]["KORM-PAYG-2"]["verdict"] == "failed"
