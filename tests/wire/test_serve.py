"""``ksim serve``: gunicorn workers on a real port sharing one database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.wire


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ksim_serve_runs_workers_that_share_state(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "none.toml").write_text("[ksim]\n")  # no settings of the outer run's ksim.toml
    env = {**os.environ, "KSIM_ADMIN_TOKEN": "serve-admin", "KSIM_CONFIG": str(tmp_path / "none.toml")}
    cmd = [
        sys.executable,
        "-m",
        "ksimkit.simulators.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
        "--database-url",
        f"sqlite:///{tmp_path / 'state.db'}",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = proc.stdout.readline() if proc.stdout else ""
        assert f"ksim listening on http://127.0.0.1:{port}" in banner, banner
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):  # the banner comes when the master is ready; workers follow within moments
            try:
                if httpx.get(base + "/_sim/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        admin = {"Authorization": "Bearer serve-admin"}
        partner = httpx.post(base + "/_sim/partners", json={"now": "2026-04-15T09:00:00Z"}, headers=admin).json()
        korm = {"Authorization": f"Bearer {partner['token']}"}
        ids = set()
        with httpx.Client(base_url=base + "/korm/v1", headers=korm) as client:
            for i in range(20):  # new connections spread over both workers; every one sees every order
                with httpx.Client(base_url=base + "/korm/v1", headers=korm) as fresh:
                    ids.add(
                        fresh.post(
                            "/subscriptions",
                            json={"customer_id": f"c{i}", "sku": "KESB-SELECT-PAYG-10-14", "quantity": 10},
                        ).json()["id"]
                    )
                assert {s["id"] for s in client.get("/subscriptions").json()["items"]} == ids
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _start_serve(
    tmp_path: Path, *flags: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str, list[str]]:
    """``ksim serve`` on a free port; the process, its base URL and the banner's lines (up to the index line)."""
    port = free_port()
    (tmp_path / "none.toml").write_text("[ksim]\nmax_body_bytes = 1000\n")
    environ = {
        **os.environ,
        "KSIM_ADMIN_TOKEN": "serve-admin",
        "KSIM_CONFIG": str(tmp_path / "none.toml"),
        **(env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "ksimkit.simulators.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        "1",
        "--database-url",
        f"sqlite:///{tmp_path / 'state.db'}",
        *flags,
    ]
    proc = subprocess.Popen(cmd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    banner = []
    while not banner or "index of the above" not in banner[-1]:
        line = proc.stdout.readline()
        assert line, f"ksim serve ended: {banner}"
        banner.append(line.rstrip("\n"))
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(base + "/_sim/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, base, banner


def test_SIM_ERR_1_under_gunicorn_huge_headers_and_over_limit_bodies_get_problems_and_clean_connections(
    tmp_path: Path,
) -> None:
    proc, base, banner = _start_serve(tmp_path, "--access-log")
    try:
        # the banner names every endpoint; the access log is on
        assert "access log on stdout" in banner[0]
        for path in ("/korm/v1", "/kss/soap/upi", "/kss/v1", "/_sim"):
            assert any(line.strip().startswith(base + path + " ") for line in banner), banner
        admin = {"Authorization": "Bearer serve-admin"}
        partner = httpx.post(base + "/_sim/partners", json={}, headers=admin).json()
        korm = {"Authorization": f"Bearer {partner['token']}"}
        # a 10 kB Authorization header: ksim's 431 problem+json, not gunicorn's HTML page
        big = httpx.get(base + "/korm/v1/subscriptions", headers={"Authorization": "Bearer " + "x" * 10_000})
        assert big.status_code == 431 and big.headers["content-type"] == "application/problem+json", big.text
        # an over-limit body is refused with Connection: close, and the client's next requests all work
        with httpx.Client(base_url=base + "/korm/v1", headers=korm) as client:
            for _ in range(10):
                refused = client.post(
                    "/subscriptions", content=b" " * 5000, headers={"Content-Type": "application/json"}
                )
                assert refused.status_code == 413 and refused.headers["connection"] == "close"
                assert client.get("/subscriptions").status_code == 200
            for _ in range(5):
                fault = client.post(
                    base + "/kss/soap/upi", content=b"<x/>" * 2000, headers={"Content-Type": "text/xml"}
                )
                assert fault.status_code == 500 and fault.headers["connection"] == "close", fault.text
                assert b"larger than 1000 bytes" in fault.content
                assert client.get("/subscriptions").status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert '"GET /korm/v1/subscriptions HTTP/1.1" 200' in out  # the access log


def test_serve_without_access_log_is_quiet_and_the_index_answers(tmp_path: Path) -> None:
    proc, base, banner = _start_serve(tmp_path)
    try:
        assert "no access log (--access-log turns it on)" in banner[0]
        assert httpx.get(base + "/").json()["endpoints"][0]["path"] == "/korm/v1"
        assert httpx.get(base + "/_sim/health").status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "GET /" not in out
