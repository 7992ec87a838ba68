#!/usr/bin/env python3
"""ksim benchmarks: ``ksim serve`` under wrk on loopback, side by side with the installed peers, in one run.

    python bench/run.py            # the full run (make bench): 5 repetitions, workers 1 and 2
    python bench/run.py --quick    # a minute or two (make bench-quick): 2 repetitions, 1 worker
    python bench/run.py --install-peers   # npm install WireMock, Prism, Mountebank into bench/.peers first
    python bench/run.py --quick --peers none --workloads korm_get,kss_activate --soak 0   # a focused check
    python bench/run.py --scaling --workers 1,2,4,8 --server-cores per-worker --load-cores 12-15 \
        --database-url postgresql://ksim@127.0.0.1:55432/postgres     # req/s and p99 against workers

The server (ksim or a peer) is pinned to ``--server-cores`` (default core 0; ``per-worker``: cores 0..N-1 for N
workers) and wrk to ``--load-cores`` (default core 1), with taskset. ``--database-url`` runs ksim on a PostgreSQL
server (a fresh database per server start) instead of a fresh SQLite file. ``--scaling`` measures ksim alone for
each worker count and prints req/s, p99 and the server's busy cores against workers, with the speed-up over one
worker. Every workload is warmed up, then
measured ``--reps`` times for ``--duration`` seconds; the table shows the median and min-max of requests/s and
the medians of p50/p99 latency. Then, for the first worker count, a sustained load (``--soak`` seconds, 120; quick
30: the workloads in turn, 10 s each) with the workers' RSS sampled every second: the memory trace. Results go to
bench/results/<UTC time>.json (+ .md); the table is printed. Without wrk only the start-up time and memory are
measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LUA = HERE / "lua"
sys.path.insert(0, str(HERE))

import peers as peers_mod  # noqa: E402

ADMIN_TOKEN = "ksim-bench-admin"
SOAP_HEADERS = {
    "Content-Type": "text/xml; charset=utf-8",
    "SOAPAction": '"http://schemas.kaspersky.com/services/subscription/subscriptionRequest"',
}
WORKLOADS = ("korm_get", "korm_post", "korm_quantity", "kss_activate", "kss_getinfo")
WORKLOAD_TITLES = {
    "korm_get": "KORM GET /subscriptions/{id}",
    "korm_post": "KORM POST /subscriptions (order)",
    "korm_quantity": "KORM POST /subscriptions/{id}/quantity",
    "kss_activate": "KSS Activate",
    "kss_getinfo": "KSS GetInfo",
}
QUANTITY_SUBSCRIPTIONS = 200  # the quantity workload spreads its changes over this many subscriptions
FLAT = 0.05  # issue 6: memory flat within ±5% over the sustained load
# (workload, peer, target ratio ksim/peer) from issue 6; None: shown, no target
PAIRS = [
    ("korm_get", "wiremock", 1.0),
    ("korm_get", "prism", 2.0),
    ("korm_post", "prism", 1.0),
    ("kss_activate", "mountebank", 1.0),
    ("kss_activate", "wiremock", None),
]


# -- small helpers --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def pin(cores: int | str) -> list[str]:
    """taskset prefix (a core or a list such as ``0-3``) when there are at least two cores to keep server and load
    apart."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cores)]
    return []


def server_cores(opts: argparse.Namespace, workers: int) -> str:
    """The cores the server runs on: ``per-worker`` is 0..N-1 for N workers."""
    return f"0-{workers - 1}" if opts.server_cores == "per-worker" else opts.server_cores


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _postgres(url: str, statement: str) -> Any:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the server of ``url``; its base URL."""
    import sqlalchemy as sa

    base = sa.make_url(url.replace("postgres://", "postgresql://", 1))
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(statement)
    engine.dispose()
    return base


def fresh_postgres_database(url: str) -> str:
    """A new, empty database on the PostgreSQL server of ``url``; its URL (each server start gets its own)."""
    name = f"ksim_bench_{os.getpid()}_{time.time_ns()}"
    return _postgres(url, f'CREATE DATABASE "{name}"').set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    import sqlalchemy as sa

    target = sa.make_url(url)
    _postgres(
        target.set(database="postgres").render_as_string(hide_password=False),
        f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)',
    )


def ksim_command() -> list[str]:
    exe = Path(sys.executable).parent / "ksim"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from ksimkit.simulators.cli import main; sys.exit(main())"]


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# -- ksim under gunicorn --------------------------------------------------------------------------------


class KsimServer:
    def __init__(self, workers: int, core: int | str = 0, database_url: str | None = None) -> None:
        self.workers = workers
        self.core = core
        self.database_url = database_url
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ksim-bench-"))
        self.proc: subprocess.Popen[Any] | None = None
        self.start_seconds: float | None = None
        self.created_database: str | None = None

    def start(self, timeout: float = 30) -> float:
        """Start ``ksim serve`` on a fresh SQLite file (or a fresh PostgreSQL database); seconds from spawn to the
        first 200 of /_sim/health."""
        env = {**os.environ, "KSIM_ADMIN_TOKEN": ADMIN_TOKEN, "KSIM_LOG_LEVEL": "warning"}
        env.pop("KSIM_CONFIG", None)
        cmd = [
            *pin(self.core),
            *ksim_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--database-url",
            self._database(),
        ]
        log = open(self.dir / "serve.log", "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, env=env, start_new_session=True
        )
        while True:
            try:
                status, _ = http_request(self.port, "GET", "/_sim/health", timeout=1)
                if status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                raise RuntimeError(f"ksim serve did not start: {(self.dir / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.005)
        self.start_seconds = time.monotonic() - t0
        return self.start_seconds

    def _database(self) -> str:
        if not self.database_url:
            return f"sqlite:///{self.dir / 'state.db'}"
        self.created_database = fresh_postgres_database(self.database_url)
        return self.created_database

    def pids(self) -> list[int]:
        assert self.proc is not None
        return peers_mod.tree_pids(self.proc.pid)

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        return [p for p in peers_mod.tree_pids(self.proc.pid) if p != self.proc.pid]

    def memory(self) -> dict[str, Any]:
        assert self.proc is not None
        workers = [peers_mod.memory_kib(p) for p in self.worker_pids()]
        return {"master": peers_mod.memory_kib(self.proc.pid), "workers": workers}

    def stop(self) -> None:
        if self.proc is not None:
            peers_mod.stop_process(self.proc)
        if self.created_database:
            drop_postgres_database(self.created_database)
        shutil.rmtree(self.dir, ignore_errors=True)

    # setup through the real API
    def admin(self, method: str, path: str, payload: Any = None) -> Any:
        status, body = http_request(
            self.port,
            method,
            path,
            {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
            json.dumps(payload).encode() if payload is not None else None,
        )
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {body[:300]!r}")
        return json.loads(body)

    def setup(self, quantity_subscriptions: int = QUANTITY_SUBSCRIPTIONS) -> dict[str, Any]:
        """A partner (xsp, so KSS Activate of KIS works), one subscription to read, one KSS subscriber to read,
        ``quantity_subscriptions`` subscriptions (that one included) for the quantity changes."""
        partner = self.admin("POST", "/_sim/partners", {"programme": "xsp"})
        token = partner["token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Idempotency-Key": "setup-1"}
        order = {"customer_id": "bench-customer", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}
        status, body = http_request(self.port, "POST", "/korm/v1/subscriptions", headers, json.dumps(order).encode())
        if status != 201:
            raise RuntimeError(f"order: {status} {body[:300]!r}")
        sub = json.loads(body)
        status, body = http_request(
            self.port, "GET", f"/korm/v1/subscriptions/{sub['id']}", {"Authorization": f"Bearer {token}"}
        )
        subscription = json.loads(body)
        # Quantity changes append to a subscription's history (which its answer carries), so they are spread over
        # many subscriptions: each gets a few changes in a run, not thousands.
        subs = [sub["id"]]
        for i in range(1, quantity_subscriptions):
            status, body = http_request(
                self.port,
                "POST",
                "/korm/v1/subscriptions",
                {**headers, "Idempotency-Key": f"setup-q{i}"},
                json.dumps({**order, "customer_id": f"bench-q{i % 20}"}).encode(),
            )
            if status != 201:
                raise RuntimeError(f"order: {status} {body[:300]!r}")
            subs.append(json.loads(body)["id"])
        start = partner["now"]
        env = {
            "BENCH_TOKEN": token,
            "BENCH_KSS_USER": partner["kss"]["username"],
            "BENCH_KSS_PASSWORD": partner["kss"]["password"],
            "BENCH_KSS_START": start,
            "BENCH_KSS_SUBSCRIBER": "bench-getinfo-subscriber",
            "BENCH_SUBS": ",".join(subs),
        }
        activate = kss_envelope(
            env,
            "setup-activate",
            '<kss:Activate UnitId="1" SubscriberId="bench-getinfo-subscriber" '
            f'StartTime="{start}" EndTime="indefinite" LicenseCount="1" ProductId="KIS"/>',
        )
        status, body = http_request(self.port, "POST", "/kss/soap/upi", SOAP_HEADERS, activate.encode())
        if status != 200 or b"Error" in body:
            raise RuntimeError(f"KSS Activate: {status} {body[:300]!r}")
        return {
            "env": env,
            "subscription": subscription,
            "activate_response": body.decode(),
            "paths": {
                "korm_get": f"/korm/v1/subscriptions/{sub['id']}",
                "korm_post": "/korm/v1/subscriptions",
                "korm_quantity": f"/korm/v1/subscriptions/{sub['id']}/quantity",
                "kss_activate": "/kss/soap/upi",
                "kss_getinfo": "/kss/soap/upi",
            },
        }


def kss_envelope(env: dict[str, str], transaction: str, item: str) -> str:
    return (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:kss="http://schemas.kaspersky.com/services/subscription/2.0/"><soap:Header><kss:AccessInfo>'
        f"<kss:UserName>{env['BENCH_KSS_USER']}</kss:UserName><kss:Password>{env['BENCH_KSS_PASSWORD']}"
        "</kss:Password></kss:AccessInfo></soap:Header><soap:Body><kss:SubscriptionRequestContainer>"
        f"<kss:Timestamp>{env['BENCH_KSS_START']}</kss:Timestamp><kss:TransactionId>{transaction}"
        f"</kss:TransactionId><kss:SubscriptionRequest>{item}</kss:SubscriptionRequest>"
        "</kss:SubscriptionRequestContainer></soap:Body></soap:Envelope>"
    )


# -- wrk ----------------------------------------------------------------------------------------------------


SCRIPTS = {
    "korm_get": ("get.lua", {}),
    "korm_post": ("korm_post.lua", {}),
    "korm_quantity": ("korm_quantity.lua", {}),
    "kss_activate": ("kss.lua", {"BENCH_KSS_OP": "activate"}),
    "kss_getinfo": ("kss.lua", {"BENCH_KSS_OP": "getinfo"}),
}


def run_wrk(
    url: str, workload: str, env: dict[str, str], seconds: float, opts: argparse.Namespace, run_id: str
) -> dict[str, Any]:
    script, extra = SCRIPTS[workload]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write((LUA / "report.lua").read_text() + "\n" + (LUA / script).read_text())
        lua = fh.name
    try:
        cmd = [
            *pin(opts.load_cores),
            "wrk",
            "-t",
            str(opts.threads),
            "-c",
            str(opts.connections),
            "-d",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "-s",
            lua,
            url,
        ]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            env={**os.environ, **env, **extra, "BENCH_RUN": run_id},
        )
    finally:
        os.unlink(lua)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            r = json.loads(line[len("BENCH_JSON ") :])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
            r["errors"] = sum(r[k] for k in r if k.startswith("errors_")) + r["bad"]
            return r
    raise RuntimeError(f"wrk gave no result: {proc.stdout[-500:]} {proc.stderr[-500:]}")


def measure(
    port: int,
    path: str,
    workload: str,
    env: dict[str, str],
    opts: argparse.Namespace,
    label: str,
    warmup: float,
    server_pids: list[int] | None = None,
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{path}"
    stamp = f"{label}-{time.time_ns()}"
    if warmup > 0:
        run_wrk(url, workload, env, warmup, opts, f"{stamp}-w")
    runs = []
    for i in range(opts.reps):
        cpu0, t0 = cpu_seconds(server_pids or []), time.monotonic()
        run = run_wrk(url, workload, env, opts.duration, opts, f"{stamp}-{i}")
        run["server_cores_busy"] = (cpu_seconds(server_pids or []) - cpu0) / (time.monotonic() - t0)
        runs.append(run)
    out = {
        "rps": summarize([r["rps"] for r in runs]),
        "server_cores_busy": summarize([r["server_cores_busy"] for r in runs]),
        "p50_ms": summarize([r["p50_us"] / 1000 for r in runs]),
        "p99_ms": summarize([r["p99_us"] / 1000 for r in runs]),
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "runs": runs,
    }
    print(
        f"  {label:<28} {WORKLOAD_TITLES[workload]:<34} {out['rps']['median']:>9.0f} req/s  "
        f"p50 {out['p50_ms']['median']:.2f} ms  p99 {out['p99_ms']['median']:.2f} ms  errors {out['errors']}",
        flush=True,
    )
    return out


def soak(server: KsimServer, fixtures: dict[str, Any], opts: argparse.Namespace, label: str) -> dict[str, Any]:
    """Sustained load for ``opts.soak`` seconds (the workloads in turn, 10 s each) while the workers' RSS is
    sampled every second: is memory flat? The reference is the first sample (1 s into the load, after the
    workloads above warmed every path); the deviation of each sample is relative to it."""
    samples: list[dict[str, Any]] = []
    done = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not done.wait(1.0):
            workers = [peers_mod.memory_kib(p)["rss_kib"] for p in server.worker_pids()]
            samples.append({"t": round(time.monotonic() - t0, 1), "rss_kib": workers})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    runs = []
    try:
        i = 0
        while time.monotonic() - t0 < opts.soak - 0.5:
            workload = opts.workloads[i % len(opts.workloads)]
            seconds = max(1.0, min(10.0, opts.soak - (time.monotonic() - t0)))
            url = f"http://127.0.0.1:{server.port}{fixtures['paths'][workload]}"
            runs.append(
                {
                    "workload": workload,
                    **run_wrk(url, workload, fixtures["env"], seconds, opts, f"{label}-soak-{time.time_ns()}"),
                }
            )
            i += 1
    finally:
        done.set()
        sampler.join()
    totals = [sum(s["rss_kib"]) for s in samples] or [0]
    first, last = totals[0], totals[-1]
    deviation = max(abs(t - first) for t in totals) / first if first else 0.0
    out = {
        "seconds": round(time.monotonic() - t0, 1),
        "samples": samples,
        "first_kib": first,
        "last_kib": last,
        "max_kib": max(totals),
        "min_kib": min(totals),
        "max_deviation": deviation,
        "drift": (last - first) / first if first else 0.0,
        "flat": deviation <= FLAT,
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "workloads": [r["workload"] for r in runs],
    }
    print(
        f"  {label:<28} sustained load {out['seconds']:.0f} s: RSS {first / 1024:.1f} -> {last / 1024:.1f} MB, "
        f"max deviation {deviation * 100:.1f}% ({'flat' if out['flat'] else 'NOT flat'}), "
        f"{out['requests']} requests, errors {out['errors']}",
        flush=True,
    )
    return out


# -- the run ------------------------------------------------------------------------------------------------


def bench_ksim(workers: int, opts: argparse.Namespace, have_wrk: bool, trace: bool = False) -> dict[str, Any]:
    label = f"ksim ({workers} worker{'s' if workers > 1 else ''})"
    cores = server_cores(opts, workers)
    print(f"{label}: start-up x{opts.startup_reps}", flush=True)
    starts = []
    for _ in range(opts.startup_reps):
        server = KsimServer(workers, cores, opts.database_url)
        try:
            starts.append(server.start())
        finally:
            server.stop()
    result: dict[str, Any] = {
        "label": label,
        "workers": workers,
        "server_cores": cores,
        "database": "postgresql" if opts.database_url else "sqlite",
        "start_seconds": summarize(starts) if starts else None,
        "workloads": {},
    }
    server = KsimServer(workers, cores, opts.database_url)
    try:
        server.start()
        fixtures = server.setup(QUANTITY_SUBSCRIPTIONS if "korm_quantity" in opts.workloads else 1)
        time.sleep(1)
        result["idle_memory"] = server.memory()
        if have_wrk:
            for workload in opts.workloads:
                result["workloads"][workload] = measure(
                    server.port,
                    fixtures["paths"][workload],
                    workload,
                    fixtures["env"],
                    opts,
                    label,
                    opts.warmup,
                    server.pids(),
                )
            result["loaded_memory"] = server.memory()
            if trace and opts.soak > 0 and opts.workloads:
                result["soak"] = soak(server, fixtures, opts, label)
    finally:
        server.stop()
    result["fixtures"] = fixtures
    return result


def bench_peer(name: str, fixtures: dict[str, Any], opts: argparse.Namespace) -> dict[str, Any]:
    cls = peers_mod.PEERS[name]
    workloads = [w for w in opts.workloads if w in cls.targets]
    result: dict[str, Any] = {"label": name, "workloads": {}}
    if not workloads:
        return result
    peer = cls(free_port(), pin(server_cores(opts, 1)), {**fixtures, "free_port": free_port})
    try:
        peer.start(http_request)
        result["start_seconds"] = peer.start_seconds
        result["idle_memory"] = peer.memory()
        warmup = opts.jvm_warmup if peer.jvm else opts.warmup
        for workload in workloads:
            path = cls.targets[workload].replace("{id}", fixtures["subscription"]["id"])
            status, body = http_request(
                peer.port,
                "GET" if workload == "korm_get" else "POST",
                path,
                {
                    "Authorization": f"Bearer {fixtures['env']['BENCH_TOKEN']}",
                    "Content-Type": "application/json" if workload == "korm_post" else "text/xml; charset=utf-8",
                },
                json.dumps({"customer_id": "c", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}).encode()
                if workload == "korm_post"
                else (fixtures["activate_response"].encode() if workload == "kss_activate" else None),
            )
            if status >= 300:
                print(f"  {name}: {workload} answers {status} {body[:200]!r}", flush=True)
            result["workloads"][workload] = measure(peer.port, path, workload, fixtures["env"], opts, name, warmup)
            warmup = opts.warmup
        result["loaded_memory"] = peer.memory()
    finally:
        peer.stop()
    return result


def fmt_range(s: dict[str, float], digits: int = 0) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"ksim benchmark, {report['started_at']}, {report['mode']} "
        f"({report['settings']['reps']} × {report['settings']['duration']} s, "
        f"{report['settings']['connections']} connections)",
        "",
    ]
    lines += ["| server | workload | req/s median (min–max) | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
    for entry in [*report["ksim"], *report["peers"].values()]:
        for workload, m in entry["workloads"].items():
            lines.append(
                f"| {entry['label']} | {WORKLOAD_TITLES[workload]} | {fmt_range(m['rps'])} | "
                f"{m['p50_ms']['median']:.2f} | {m['p99_ms']['median']:.2f} | {m['errors']} |"
            )
    if report["ratios"]:
        lines += [
            "",
            "| ksim | workload | peer | ratio ksim/peer (medians) | target | met |",
            "|---|---|---|---|---|---|",
        ]
        for r in report["ratios"]:
            target = f"≥ {r['target']:.1f}×" if r["target"] else "–"
            met = "–" if r["target"] is None else ("yes" if r["ratio"] >= r["target"] else "**no**")
            lines.append(
                f"| {r['ksim']} | {WORKLOAD_TITLES[r['workload']]} | {r['peer']} | {r['ratio']:.2f}× | "
                f"{target} | {met} |"
            )
    lines += [
        "",
        "| server | start to first 200, s | idle RSS / PSS per worker, MB | RSS after load, MB |",
        "|---|---|---|---|",
    ]
    for entry in report["ksim"]:
        idle = entry.get("idle_memory", {}).get("workers", [])
        loaded = entry.get("loaded_memory", {}).get("workers", [])
        start = fmt_range(entry["start_seconds"], 3) if entry.get("start_seconds") else "–"
        lines.append(
            f"| {entry['label']} | {start} | "
            + ", ".join(f"{w['rss_kib'] / 1024:.1f} / {w['pss_kib'] / 1024:.1f}" for w in idle)
            + " | "
            + (", ".join(f"{w['rss_kib'] / 1024:.1f}" for w in loaded) or "–")
            + " |"
        )
    for entry in report["peers"].values():
        if "start_seconds" in entry:
            lines.append(
                f"| {entry['label']} | {entry['start_seconds']:.3f} | "
                f"{entry['idle_memory']['rss_kib'] / 1024:.1f} / {entry['idle_memory']['pss_kib'] / 1024:.1f}"
                f" (whole process) | {entry['loaded_memory']['rss_kib'] / 1024:.1f} |"
            )
    soaks = [e for e in report["ksim"] if e.get("soak")]
    if soaks:
        lines += [
            "",
            "| server | sustained load | RSS first → last, MB (min–max) | max deviation | drift | "
            "flat ±5% | requests | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for entry in soaks:
            m = entry["soak"]
            lines.append(
                f"| {entry['label']} | {m['seconds']:.0f} s, {', '.join(dict.fromkeys(m['workloads']))} | "
                f"{m['first_kib'] / 1024:.1f} → {m['last_kib'] / 1024:.1f} "
                f"({m['min_kib'] / 1024:.1f}–{m['max_kib'] / 1024:.1f}) | {m['max_deviation'] * 100:.1f}% | "
                f"{m['drift'] * 100:+.1f}% | {'yes' if m['flat'] else '**no**'} | {m['requests']} | "
                f"{m['errors']} |"
            )
    lines += scaling_table(report["ksim"])
    lines += ["", "Targets: start ≤ 0.5 s; idle memory ≤ 80 MB per worker; memory flat (±5%) under sustained load."]
    return "\n".join(lines) + "\n"


def scaling_table(entries: list[dict[str, Any]]) -> list[str]:
    """req/s, p99 and busy server cores against workers, with the speed-up over the first worker count."""
    if len(entries) < 2:
        return []
    lines = [
        "",
        "| workload | database | workers | server cores | req/s | × first | p99 ms | server cores busy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload in dict.fromkeys(w for e in entries for w in e["workloads"]):
        base = entries[0]["workloads"].get(workload)
        for entry in entries:
            m = entry["workloads"].get(workload)
            if not m:
                continue
            speedup = m["rps"]["median"] / base["rps"]["median"] if base and base["rps"]["median"] else 0.0
            busy = m.get("server_cores_busy", {}).get("median", 0.0)
            lines.append(
                f"| {WORKLOAD_TITLES[workload]} | {entry.get('database', 'sqlite')} | {entry['workers']} | "
                f"{entry.get('server_cores', '0')} | {m['rps']['median']:.0f} | {speedup:.2f}× | "
                f"{m['p99_ms']['median']:.1f} | {busy:.2f} |"
            )
    return lines


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem = 0
    wrk = (
        subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        if shutil.which("wrk")
        else None
    )
    java = (
        subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.split("\n")[0]
        if shutil.which("java")
        else None
    )
    node = (
        subprocess.run(["node", "-v"], capture_output=True, text=True).stdout.strip() if shutil.which("node") else None
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk,
        "java": java,
        "node": node,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 repetitions of 5 s, 1 worker: a minute or two")
    parser.add_argument("--reps", type=int, help="repetitions per workload (5; quick 2)")
    parser.add_argument("--duration", type=float, help="seconds per repetition (10; quick 5)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per workload (5; quick 2)")
    parser.add_argument(
        "--jvm-warmup", type=float, help="warm-up seconds of the first workload on a JVM (30; quick 10)"
    )
    parser.add_argument("--workers", help="ksim worker counts, comma-separated (1,2; quick 1)")
    parser.add_argument("--startup-reps", type=int, help="start-up time measurements (5; quick 3)")
    parser.add_argument(
        "--soak",
        type=float,
        help="seconds of sustained load with the memory trace, first worker count only (120; quick 30; 0: none)",
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (all on --load-cores)")
    parser.add_argument(
        "--server-cores",
        default="0",
        help="taskset cores of the server (0; e.g. 0-3), or per-worker: cores 0..N-1 for N workers",
    )
    parser.add_argument("--load-cores", default="1", help="taskset cores of wrk (1; e.g. 12-15)")
    parser.add_argument(
        "--database-url",
        help="run ksim on this PostgreSQL server (a fresh database per start) instead of a fresh SQLite file",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="ksim alone (no peers, no soak, one start-up), for each --workers count: the scaling table",
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}")
    parser.add_argument(
        "--peers",
        default="auto",
        help="comma-separated of wiremock,prism,mountebank; 'auto' (those installed) or 'none'",
    )
    parser.add_argument("--install-peers", action="store_true", help="npm install the peers into bench/.peers first")
    parser.add_argument("--out", default=str(HERE / "results"), help="where the JSON and markdown go")
    opts = parser.parse_args(argv)
    full = {
        "reps": 5,
        "duration": 10.0,
        "warmup": 5.0,
        "jvm_warmup": 30.0,
        "workers": "1,2",
        "startup_reps": 5,
        "soak": 120.0,
    }
    quick = {
        "reps": 2,
        "duration": 5.0,
        "warmup": 2.0,
        "jvm_warmup": 10.0,
        "workers": "1",
        "startup_reps": 3,
        "soak": 30.0,
    }
    for key, value in (quick if opts.quick else full).items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    opts.workers = [int(w) for w in str(opts.workers).split(",") if w]
    if opts.scaling:
        opts.peers, opts.soak, opts.startup_reps = "none", 0.0, 1
    opts.workloads = [w for w in opts.workloads.split(",") if w]
    unknown = set(opts.workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.install_peers:
        peers_mod.install()
    have_wrk = shutil.which("wrk") is not None
    if not have_wrk:
        print("wrk is not installed (apt-get install wrk): measuring start-up and memory only", flush=True)
    if opts.peers == "none" or not have_wrk:
        peer_names: list[str] = []
    elif opts.peers == "auto":
        peer_names = [n for n in peers_mod.PEERS if peers_mod.installed(n)]
    else:
        peer_names = [n for n in opts.peers.split(",") if n]
        missing = [n for n in peer_names if not peers_mod.installed(n)]
        if missing:
            print(f"not installed, skipped: {', '.join(missing)} (bench/run.py --install-peers)", flush=True)
            peer_names = [n for n in peer_names if n not in missing]
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    report: dict[str, Any] = {
        "started_at": started.isoformat(),
        "mode": "quick" if opts.quick else "full",
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "settings": {
            k: getattr(opts, k)
            for k in (
                "reps",
                "duration",
                "warmup",
                "jvm_warmup",
                "workers",
                "startup_reps",
                "soak",
                "connections",
                "threads",
                "workloads",
                "server_cores",
                "load_cores",
                "scaling",
            )
        }
        | {"database": "postgresql" if opts.database_url else "sqlite"},
        "ksim": [],
        "peers": {},
        "ratios": [],
    }
    for i, workers in enumerate(opts.workers):
        report["ksim"].append(bench_ksim(workers, opts, have_wrk, trace=i == 0))
    fixtures = report["ksim"][0]["fixtures"]
    for name in peer_names:
        print(f"{name}:", flush=True)
        try:
            report["peers"][name] = bench_peer(name, fixtures, opts)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"  {name} failed: {exc}", flush=True)
            report["peers"][name] = {"label": name, "workloads": {}, "error": str(exc)}
    for entry in report["ksim"]:
        for workload, peer, target in PAIRS:
            mine = entry["workloads"].get(workload)
            theirs = report["peers"].get(peer, {}).get("workloads", {}).get(workload)
            if mine and theirs and theirs["rps"]["median"]:
                report["ratios"].append(
                    {
                        "ksim": entry["label"],
                        "workload": workload,
                        "peer": peer,
                        "target": target,
                        "ratio": mine["rps"]["median"] / theirs["rps"]["median"],
                    }
                )
    table = markdown(report)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    name = started.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if opts.quick else "")
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{name}.md").write_text(table)
    print()
    print(table)
    print(f"results: {out / name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
