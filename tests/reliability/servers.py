"""`ksim serve` processes for the reliability tests: several on one database, killed and restarted at will."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

ADMIN_TOKEN = "reliability-admin"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """One `ksim serve` (a gunicorn master and its workers, in a process group of their own)."""

    def __init__(self, database_url: str, workdir: Path, *, workers: int = 1) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> ServeProcess:
        (self.workdir / "none.toml").write_text("[ksim]\n")  # no settings of the outer run's ksim.toml
        env = {**os.environ, "KSIM_ADMIN_TOKEN": ADMIN_TOKEN, "KSIM_CONFIG": str(self.workdir / "none.toml")}
        cmd = [
            sys.executable,
            "-m",
            "ksimkit.simulators.cli",
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--database-url",
            self.database_url,
        ]
        log = open(self.workdir / f"serve-{self.port}.log", "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ksim serve exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                if httpx.get(self.url + "/_sim/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"ksim serve did not answer within {timeout} s: {self.log()[-2000:]}")

    def log(self) -> str:
        return (self.workdir / f"serve-{self.port}.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL to the master and every worker at once: no shutdown code runs anywhere."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
