"""A seconds-long smoke of the bench scripts (bench/run.py, bench/peers.py) with tiny settings.

It checks that the scripts run and that every request they send is answered correctly (no wrong status, no SOAP
error item); it never asserts on timings. The load parts need wrk, the peer part an installed peer: skipped
when absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"
PEERS = ROOT / "bench" / "peers.py"
TINY = [
    "--reps",
    "1",
    "--duration",
    "1",
    "--warmup",
    "0",
    "--jvm-warmup",
    "0",
    "--startup-reps",
    "1",
    "--workers",
    "1",
    "--connections",
    "2",
    "--threads",
    "1",
    "--soak",
    "2",
]


def run_bench(tmp_path: Path, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(RUN), *TINY, "--out", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = list(tmp_path.glob("*.json"))
    assert len(results) == 1 and list(tmp_path.glob("*.md"))
    assert "| server |" in proc.stdout
    return json.loads(results[0].read_text())


def test_run_measures_ksim(tmp_path: Path) -> None:
    report = run_bench(tmp_path, "--peers", "none")
    (ksim,) = report["ksim"]
    assert ksim["start_seconds"]["median"] > 0
    assert ksim["idle_memory"]["workers"] and all(w["rss_kib"] > 0 for w in ksim["idle_memory"]["workers"])
    if shutil.which("wrk") is None:
        assert ksim["workloads"] == {}
        return
    assert set(ksim["workloads"]) == {"korm_get", "korm_post", "korm_quantity", "kss_activate", "kss_getinfo"}
    for name, m in ksim["workloads"].items():
        assert m["requests"] > 0, name
        assert m["errors"] == 0, (name, m["runs"])
    trace = ksim["soak"]  # the memory trace under sustained load
    assert trace["requests"] > 0 and trace["errors"] == 0 and trace["samples"]
    assert all(rss > 0 for s in trace["samples"] for rss in s["rss_kib"])


def test_run_side_by_side_with_a_peer(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import peers
    finally:
        sys.path.remove(str(ROOT / "bench"))
    if shutil.which("wrk") is None or not peers.installed("mountebank"):
        pytest.skip("needs wrk and mountebank in bench/.peers (python bench/peers.py --install)")
    report = run_bench(tmp_path, "--peers", "mountebank", "--workloads", "kss_activate")
    assert report["peers"]["mountebank"]["workloads"]["kss_activate"]["errors"] == 0
    (ratio,) = report["ratios"]
    assert ratio["peer"] == "mountebank" and ratio["ratio"] > 0


def test_peers_list() -> None:
    proc = subprocess.run([sys.executable, str(PEERS), "--list"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert {"wiremock", "prism", "mountebank"} <= {line.split(":")[0] for line in proc.stdout.splitlines()}


def test_cpu_per_call_script() -> None:
    """bench/cpu.py (CPU per call through the test client) runs every workload without a wrong answer."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cpu.py"), "-n", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ["get", "post", "quantity", "activate", "getinfo"]


def test_run_scaling_table_against_workers(tmp_path: Path) -> None:
    """``--scaling``: ksim alone for each worker count, the server on its own cores; busy cores are counted."""
    report = run_bench(
        tmp_path,
        "--scaling",
        "--workers",
        "1,2",
        "--server-cores",
        "per-worker",
        "--load-cores",
        "1",
        "--workloads",
        "korm_get",
    )
    assert [entry["workers"] for entry in report["ksim"]] == [1, 2]
    assert [entry["server_cores"] for entry in report["ksim"]] == ["0-0", "0-1"]
    assert report["peers"] == {} and report["settings"]["scaling"] is True
    if shutil.which("wrk") is None:
        return
    for entry in report["ksim"]:
        m = entry["workloads"]["korm_get"]
        assert m["requests"] > 0 and m["errors"] == 0
        assert m["server_cores_busy"]["median"] > 0


def test_plugin_cost_script() -> None:
    """bench/plugin_cost.py (a test's partner made, one call, the partner gone) runs in-process without an error."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "plugin_cost.py"), "-n", "5", "--where", "in-process"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.startswith("in-process  5 tests: median ")
