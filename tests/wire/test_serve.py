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
    env = {**os.environ, "KSIM_ADMIN_TOKEN": "serve-admin", "KSIM_CONFIG": str(tmp_path / "none.toml")}
    cmd = [sys.executable, "-m", "ksimkit.simulators.cli", "serve", "--port", str(port), "--workers", "2",
           "--database-url", f"sqlite:///{tmp_path / 'state.db'}"]
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
                    ids.add(fresh.post("/subscriptions", json={"customer_id": f"c{i}", "sku": "KESB-SELECT-PAYG-10-14", "quantity": 10}).json()["id"])
                assert {s["id"] for s in client.get("/subscriptions").json()["items"]} == ids
    finally:
        proc.terminate()
        proc.wait(timeout=10)
