#!/usr/bin/env python3
"""The peers ksim is measured against, installed from the npm registry into ``bench/.peers`` (git-ignored).

- WireMock (npm ``wiremock``: the standalone jar, run on the machine's Java), default settings, with two stubs:
  ``GET /korm/v1/subscriptions/{id}`` answering the very JSON ksim answered, and ``POST /kss/soap/upi`` answering
  the very SOAP ``Activate`` envelope ksim answered.
- Prism (npm ``@stoplight/prism-cli``) mocking ``contracts/korm-ss.openapi.yaml`` (static examples).
- Mountebank (npm ``mountebank``) with one HTTP imposter answering the static SOAP ``Activate`` envelope.

``python bench/peers.py --install`` installs them; ``python bench/peers.py --list`` says which are installed.
``bench/run.py`` starts them next to ksim (``--peers``) and computes the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_DIR = HERE / ".peers"
BIN = PEERS_DIR / "node_modules" / ".bin"
NPM_PACKAGES = {"wiremock": "wiremock", "prism": "@stoplight/prism-cli", "mountebank": "mountebank"}
KORM_CONTRACT = ROOT / "contracts" / "korm-ss.openapi.yaml"


def wiremock_jar() -> Path | None:
    build = PEERS_DIR / "node_modules" / "wiremock" / "build"
    jars = sorted(build.glob("wiremock-standalone-*.jar")) if build.is_dir() else []
    return jars[-1] if jars else None


def installed(name: str) -> bool:
    if name == "wiremock":
        return wiremock_jar() is not None and shutil.which("java") is not None
    if name == "prism":
        return (BIN / "prism").exists() and shutil.which("node") is not None
    if name == "mountebank":
        return (BIN / "mb").exists() and shutil.which("node") is not None
    raise ValueError(f"unknown peer {name!r} (peers: {', '.join(NPM_PACKAGES)})")


def install(names: list[str] | None = None) -> None:
    """``npm install`` the peers into bench/.peers (its own package.json, so npm does not walk up the tree)."""
    names = names or list(NPM_PACKAGES)
    if shutil.which("npm") is None:
        raise SystemExit("bench/peers.py: npm is not installed (the peers come from the npm registry)")
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    if not (PEERS_DIR / "package.json").exists():
        (PEERS_DIR / "package.json").write_text(json.dumps({"name": "ksim-bench-peers", "private": True}) + "\n")
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PEERS_DIR), *(NPM_PACKAGES[n] for n in names)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=PEERS_DIR)


def tree_pids(pid: int) -> list[int]:
    """pid and all its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and (when readable) Pss of one process, in KiB."""
    out = {"rss_kib": 0, "pss_kib": 0}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    out["rss_kib"] = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    out["pss_kib"] = int(line.split()[1])
    except OSError:
        pass
    return out


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM the process group we started (start_new_session), then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


class Peer:
    """One peer process on a loopback port; ``targets`` maps a workload name to the path it serves it on."""

    name = "peer"
    targets: dict[str, str] = {}
    jvm = False

    def __init__(self, port: int, pin: list[str], fixtures: dict[str, Any]) -> None:
        self.port = port
        self.pin = pin
        self.fixtures = fixtures
        self.proc: subprocess.Popen[Any] | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"ksim-bench-{self.name}-"))
        self.start_seconds: float | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write whatever the peer reads at start (stub files)."""

    def configure(self) -> None:
        """Configure a started peer over its admin API."""

    def ready_probe(self) -> tuple[str, str, dict[str, str], bytes | None]:
        raise NotImplementedError

    def start(self, http: Callable[..., tuple[int, bytes]], timeout: float = 60) -> None:
        self.http = http
        self.prepare()
        log = open(self.workdir / "peer.log", "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [*self.pin, *self.command()], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True
        )
        method, path, headers, body = self.ready_probe()
        port = self.admin_port if hasattr(self, "admin_port") else self.port
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start: see {self.workdir / 'peer.log'}")
            try:
                status, _ = http(port, method, path, headers, body, timeout=1)
                if status < 500:
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{self.name} did not start within {timeout} s: see {self.workdir / 'peer.log'}")
            time.sleep(0.02)
        self.configure()
        self.start_seconds = time.monotonic() - t0

    def memory(self) -> dict[str, int]:
        assert self.proc is not None
        total = {"rss_kib": 0, "pss_kib": 0}
        for pid in tree_pids(self.proc.pid):
            for k, v in memory_kib(pid).items():
                total[k] += v
        return total

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)


class WireMock(Peer):
    name = "wiremock"
    jvm = True
    targets = {"korm_get": "/korm/v1/subscriptions/{id}", "kss_activate": "/kss/soap/upi"}

    def prepare(self) -> None:
        mappings = self.workdir / "mappings"
        mappings.mkdir(parents=True, exist_ok=True)
        sub = self.fixtures["subscription"]
        (mappings / "korm_get.json").write_text(
            json.dumps(
                {
                    "request": {"method": "GET", "url": f"/korm/v1/subscriptions/{sub['id']}"},
                    "response": {
                        "status": 200,
                        "headers": {"Content-Type": "application/json"},
                        "body": json.dumps(sub),
                    },
                }
            )
        )
        (mappings / "kss_activate.json").write_text(
            json.dumps(
                {
                    "request": {"method": "POST", "url": "/kss/soap/upi"},
                    "response": {
                        "status": 200,
                        "headers": {"Content-Type": "text/xml; charset=utf-8"},
                        "body": self.fixtures["activate_response"],
                    },
                }
            )
        )

    def command(self) -> list[str]:
        return [
            "java",
            "-jar",
            str(wiremock_jar()),
            "--port",
            str(self.port),
            "--bind-address",
            "127.0.0.1",
            "--root-dir",
            str(self.workdir),
            "--disable-banner",
        ]

    def ready_probe(self) -> tuple[str, str, dict[str, str], bytes | None]:
        return "GET", "/__admin/mappings", {}, None


class Prism(Peer):
    name = "prism"
    targets = {"korm_get": "/subscriptions/{id}", "korm_post": "/subscriptions"}

    def command(self) -> list[str]:
        return [str(BIN / "prism"), "mock", "-h", "127.0.0.1", "-p", str(self.port), str(KORM_CONTRACT)]

    def ready_probe(self) -> tuple[str, str, dict[str, str], bytes | None]:
        return "GET", "/products", {"Authorization": "Bearer x"}, None


class Mountebank(Peer):
    name = "mountebank"
    targets = {"kss_activate": "/kss/soap/upi"}

    def __init__(self, port: int, pin: list[str], fixtures: dict[str, Any]) -> None:
        super().__init__(port, pin, fixtures)
        self.admin_port = fixtures["free_port"]()

    def command(self) -> list[str]:
        return [
            str(BIN / "mb"),
            "--port",
            str(self.admin_port),
            "--localOnly",
            "--loglevel",
            "warn",
            "--logfile",
            str(self.workdir / "mb.log"),
            "--pidfile",
            str(self.workdir / "mb.pid"),
        ]

    def ready_probe(self) -> tuple[str, str, dict[str, str], bytes | None]:
        return "GET", "/imposters", {}, None

    def configure(self) -> None:
        imposter = {
            "port": self.port,
            "protocol": "http",
            "stubs": [
                {
                    "predicates": [{"equals": {"method": "POST", "path": "/kss/soap/upi"}}],
                    "responses": [
                        {
                            "is": {
                                "statusCode": 200,
                                "headers": {"Content-Type": "text/xml; charset=utf-8"},
                                "body": self.fixtures["activate_response"],
                            }
                        }
                    ],
                }
            ],
        }
        status, body = self.http(
            self.admin_port,
            "POST",
            "/imposters",
            {"Content-Type": "application/json"},
            json.dumps(imposter).encode(),
            timeout=10,
        )
        if status != 201:
            raise RuntimeError(f"mountebank refused the imposter: {status} {body[:200]!r}")


PEERS: dict[str, type[Peer]] = {"wiremock": WireMock, "prism": Prism, "mountebank": Mountebank}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--install", action="store_true", help="npm install the peers into bench/.peers")
    parser.add_argument("--list", action="store_true", help="say which peers are installed")
    args = parser.parse_args(argv)
    if args.install:
        install()
    for name in PEERS:
        print(f"{name}: {'installed' if installed(name) else 'not installed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
