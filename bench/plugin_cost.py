#!/usr/bin/env python3
"""What ksim's own setup costs a plugin user per test: the test's partner made, one call, the partner gone.

    python bench/plugin_cost.py              # in-process server and a shared `ksim serve`, 200 tests each
    python bench/plugin_cost.py -n 500 --where shared

Each "test" does what the pytest plugin does around a test that uses ``korm_client``: ``POST /_sim/partners``
(``ksim_partner``), one KORM call (``GET /products``), and on a shared server (``--ksim-url``) the partner's
``DELETE`` at teardown (in-process, the session's temporary database goes at the end instead). Printed: the median
and p90 wall milliseconds per test and the projected seconds of a 1,000-test suite (target: under 10 s). The
in-process server shares the Python process with the "tests", as under the plugin; the shared server is
``ksim serve`` with its default workers on a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ADMIN = "ksim-bench-admin"
TARGET_SECONDS_PER_1000 = 10.0


@contextmanager
def in_process() -> Iterator[str]:
    from ksimkit.simulators.app import create_app
    from ksimkit.simulators.core.settings import load_settings
    from ksimkit.simulators.server import InProcessServer

    with tempfile.TemporaryDirectory(prefix="ksim-plugin-cost-") as tmp:
        settings = load_settings().replace(database_url=f"sqlite:///{tmp}/state.db", admin_token=ADMIN)
        with InProcessServer(create_app(settings)) as server:
            yield server.url


@contextmanager
def shared() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="ksim-plugin-cost-") as tmp:
        env = {**os.environ, "KSIM_ADMIN_TOKEN": ADMIN, "KSIM_LOG_LEVEL": "warning"}
        env.pop("KSIM_CONFIG", None)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ksimkit",
                "serve",
                "--port",
                str(port),
                "--database-url",
                f"sqlite:///{tmp}/state.db",
            ],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def measure(url: str, tests: int, teardown: bool) -> list[float]:
    from ksimkit.simulators.client import KsimAdmin

    seconds: list[float] = []
    with KsimAdmin(url, ADMIN) as admin:
        admin.wait_until_ready(timeout=30)
        for i in range(tests + 10):  # the first 10 warm the paths up and are not counted
            t0 = time.perf_counter()
            partner = admin.create_partner(name=f"tests/test_cost.py::test_{i}")
            with partner.korm() as korm:
                korm.get("/products").raise_for_status()
            if teardown:
                partner.delete()
            if i >= 10:
                seconds.append(time.perf_counter() - t0)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--tests", type=int, default=200)
    parser.add_argument("--where", choices=("both", "in-process", "shared"), default="both")
    opts = parser.parse_args(argv)
    places: dict[str, tuple[Callable[[], object], bool]] = {"in-process": (in_process, False), "shared": (shared, True)}
    failed = False
    for name, (server, teardown) in places.items():
        if opts.where not in ("both", name):
            continue
        with server() as url:  # type: ignore[attr-defined]
            seconds = measure(url, opts.tests, teardown)
        median, p90 = statistics.median(seconds), statistics.quantiles(seconds, n=10)[-1]
        projected = median * 1000
        failed |= projected >= TARGET_SECONDS_PER_1000
        print(
            f"{name:<11} {len(seconds)} tests: median {median * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms per test "
            f"({'create, call, delete' if teardown else 'create, call'}); 1,000 tests: {projected:.1f} s "
            f"(target < {TARGET_SECONDS_PER_1000:.0f} s: {'met' if projected < TARGET_SECONDS_PER_1000 else 'missed'})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
