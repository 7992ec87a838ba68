"""Scale benchmarks of issue 6: big partners, long clock jumps, and the certification suite's wall time.

Each figure is the median of ``--reps`` runs (3; ``--quick``: 1) on a fresh SQLite file in a temporary directory:

- ``korm_statement``: a partner with 100,000 KORM SS subscriptions; the wall time of the month statement
  (``ksimkit.simulators.korm.billing.statement``, the function ``GET /korm/v1/billing/{period}`` calls), for the last
  month of the data set (2026-03, closed). Target <= 2 s.
- ``kss_jump``: a partner with 10,000 KSS subscriptions; ``move_clock`` 12 months forward (renewals, trial and
  pause ends, ends, the monthly bills closed). Target <= 10 s.
- ``korm_jump``: a partner with 10,000 KORM SS subscriptions; ``move_clock`` 12 months forward (anniversaries,
  statements closed). No target; reported.
- ``certify``: ``ksim certify --reference-broker --out <tmp>`` (99 scenarios), wall time of the process. Target
  <= 30 s.

Targets are on wall time; the CPU seconds of the same runs are reported beside it (the process's, or for certify
its children's), because on a machine shared with other work the wall time also measures the neighbours.

How the data is built (setup time is reported separately, never in the figures):

- KORM: by default a **bulk insert** of the very rows the rules write (``korm_subscriptions``, ``korm_history``,
  ``korm_approval_codes``, ``activation_codes``, ``audit_log``) for a deterministic plan (``korm_plan``): PAYG,
  Yearly and legacy subscriptions activated over 13 months, quantity changes, plan switches, Yearly increases,
  stops, approval discounts. What the bulk insert leaves out is what the vendor's clock writes while it moves
  (``anniversary`` and ``statement_closed`` audit entries, which no statement reads): the partner's clock is set
  to the plan's last day directly. ``--korm-setup rules`` builds the same plan through ``ksimkit.simulators.korm.rules``
  (the clock moved to each day of the plan with ``move_clock``): slow, for small sizes;
  tests/bench/test_scale_smoke.py checks that both give the same statements.
- KSS: always through the rules (``ksimkit.simulators.kss.container.process``, containers of 200 units): activations
  (some backdated, some with a trial, some with a fixed end), pauses with a resume time, soft cancels, licence
  count changes. The file is built once and copied for each repetition.

Usage: ``python bench/scale.py [--quick] [--json OUT] [--korm-subs N] [--kss-subs N] [--korm-jump-subs N]
[--months N] [--reps N] [--skip korm_statement,kss_jump,korm_jump,certify]``. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ksimkit.simulators.core.catalog import Profile, load_profile  # noqa: E402
from ksimkit.simulators.core.clock import system_now  # noqa: E402
from ksimkit.simulators.core.codes import _candidate  # noqa: E402
from ksimkit.simulators.core.context import CallContext  # noqa: E402
from ksimkit.simulators.core.due import move_clock  # noqa: E402
from ksimkit.simulators.core.partners import create_partner, load_partner  # noqa: E402
from ksimkit.simulators.core.store import Store, activation_codes, audit_log, partners  # noqa: E402
from ksimkit.simulators.korm import billing as korm_billing  # noqa: E402
from ksimkit.simulators.korm import rules as korm_rules  # noqa: E402
from ksimkit.simulators.korm.tables import approval_codes  # noqa: E402
from ksimkit.simulators.korm.tables import history as korm_history  # noqa: E402
from ksimkit.simulators.korm.tables import subscriptions as korm_subs  # noqa: E402
from ksimkit.simulators.kss import container as kss_container  # noqa: E402
from ksimkit.simulators.kss import model as kss_model  # noqa: E402
from ksimkit.simulators.services import default_services  # noqa: E402

SERVICES = default_services()  # what a clock move runs and a reset clears, as an app would

UTC = dt.UTC
TARGETS = {"korm_statement": 2.0, "kss_jump": 10.0, "certify": 30.0}
LABELS = {
    "korm_statement": "KORM month statement, {n:,} subscriptions",
    "kss_jump": "KSS {months} months of clock, {n:,} subscriptions",
    "korm_jump": "KORM {months} months of clock, {n:,} subscriptions",
    "certify": "certification suite, --reference-broker",
}
KORM_START = dt.date(2025, 3, 1)  # the partner's first day; activations over 393 days from it
KORM_LAST = dt.date(2026, 3, 28)  # no change after it
KORM_END = dt.date(2026, 4, 1)  # the clock at the end of setup: March 2026 is closed
STATEMENT_PERIOD = "2026-03"
KSS_START = dt.datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def at_nine(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(9, 0), UTC)


def new_store(path: Path) -> Store:
    store = Store(f"sqlite:///{path}")
    store.create_schema(SERVICES.tables)
    return store


def context(conn: Any, partner_id: str, actor: str = "bench") -> CallContext:
    partner = load_partner(conn, partner_id)
    return CallContext(partner=partner, profile=load_profile(), actor=actor)


# ---------------------------------------------------------------- KORM: the plan


@dataclass
class KormSub:
    i: int
    customer_id: str
    model: str  # payg | yearly | legacy
    sku: str
    quantity: int
    activation: dt.date
    approval: tuple[str, Decimal] | None = None  # (code, percent)
    changes: list[tuple[dt.date, str, Any]] = field(default_factory=list)  # (day, quantity|switch|stop, value)


def korm_plan(n: int, profile: Profile) -> list[KormSub]:
    """A deterministic mix: 60% PAYG, 30% Yearly, 10% legacy, over 13 months, with changes, stops and discounts."""
    products = sorted({s.product_id for s in profile.skus.values()})
    plan = []
    for i in range(n):
        kind = i % 20
        model = "payg" if kind < 12 else "yearly" if kind < 18 else "legacy"
        product = products[i % len(products)]
        bands = profile.band_skus(product, "yearly" if model == "yearly" else "payg")
        band = (i // 7) % 4
        sku = bands[band]
        width = sku.licence_max - sku.licence_min + 1
        qty = sku.licence_min + i % width
        activation = KORM_START + dt.timedelta(days=i * 37 % 393)
        sub = KormSub(i, f"cust-{i // 3:06d}", model, sku.sku, qty, activation)
        if model != "legacy" and i % 11 == 5:
            sub.approval = (f"APR-B{i:07d}", Decimal(5 + (i % 4) * 5).quantize(Decimal("0.01")))
        changes: list[tuple[dt.date, str, Any]] = []
        if model in ("payg", "legacy") and i % 3 == 0:
            new = sku.licence_min + (i + 3) % width
            if new != qty:
                changes.append((activation + dt.timedelta(days=i % 45 + 1), "quantity", new))
        if model == "payg" and i % 9 == 1:
            target = bands[band + 1]
            changes.append((activation + dt.timedelta(days=20 + i % 30), "switch", (target.sku, target.licence_min)))
        if model == "yearly" and i % 4 == 0 and qty + 1 + i % 3 <= sku.licence_max:
            changes.append((activation + dt.timedelta(days=i % 200 + 1), "quantity", qty + 1 + i % 3))
        if i % 13 == 0:
            changes.append((activation + dt.timedelta(days=40 + i % 300), "stop", None))
        changes.sort(key=lambda c: c[0])
        kept = []
        for change in changes:
            if change[0] > KORM_LAST:
                break
            kept.append(change)
            if change[1] == "stop":
                break
        sub.changes = kept
        plan.append(sub)
    return plan


def korm_days(plan: list[KormSub]) -> Iterator[tuple[dt.date, list[KormSub], list[tuple[KormSub, str, Any]]]]:
    """Day by day: the subscriptions ordered that day (in plan order), then the changes of that day (plan order)."""
    orders: dict[dt.date, list[KormSub]] = {}
    changes: dict[dt.date, list[tuple[KormSub, str, Any]]] = {}
    for sub in plan:
        orders.setdefault(sub.activation, []).append(sub)
        for day, what, value in sub.changes:
            changes.setdefault(day, []).append((sub, what, value))
    for day in sorted(set(orders) | set(changes)):
        yield day, orders.get(day, []), changes.get(day, [])


def korm_partner(store: Store) -> str:
    with store.begin() as conn:
        return create_partner(conn, faker_seed=0, default_timezone="UTC", name="bench-korm", now=at_nine(KORM_START))[
            "id"
        ]


def build_korm_rules(store: Store, plan: list[KormSub]) -> str:
    """The plan through ksimkit.simulators.korm.rules, the clock moved to each day of it (small sizes only)."""
    partner_id = korm_partner(store)
    ids: dict[int, str] = {}
    for day, ordered, changed in korm_days(plan):
        with store.begin() as conn:
            move_clock(conn, partner_id, at_nine(day), sources=SERVICES.due_sources)
            ctx = context(conn, partner_id)
            for sub in ordered:
                if sub.model == "legacy":
                    found = korm_rules.seed_legacy(
                        conn,
                        ctx,
                        customer_id=sub.customer_id,
                        sku_id=sub.sku,
                        quantity=sub.quantity,
                        activation_date=day,
                    )
                else:
                    code = None
                    if sub.approval is not None:
                        code = sub.approval[0]
                        korm_rules.create_approval_code(
                            conn, ctx, percent=sub.approval[1], expires_on=day + dt.timedelta(days=30), code=code
                        )
                    found = korm_rules.order(
                        conn, ctx, korm_rules.Order(sub.customer_id, sub.sku, sub.quantity, approval_code=code)
                    )
                ids[sub.i] = found["id"]
            for sub, what, value in changed:
                if what == "quantity":
                    korm_rules.change_quantity(conn, ctx, ids[sub.i], value)
                elif what == "switch":
                    korm_rules.switch_plan(conn, ctx, ids[sub.i], value[0], value[1])
                else:
                    korm_rules.stop(conn, ctx, ids[sub.i])
    with store.begin() as conn:
        move_clock(conn, partner_id, at_nine(KORM_END), sources=SERVICES.due_sources)
    return partner_id


def build_korm_bulk(store: Store, plan: list[KormSub], batch: int = 20_000) -> str:
    """The rows ``build_korm_rules`` makes, written with executemany (the clock's audit entries left out)."""
    profile = load_profile()
    partner_id = korm_partner(store)
    issued = system_now()
    subs: dict[int, dict[str, Any]] = {}
    codes, hist, audits, approvals = [], [], [], []

    def audit(
        at: dt.datetime,
        action: str,
        object_id: str,
        details: dict[str, Any],
        *,
        service: str = "korm",
        object_type: str = "subscription",
    ) -> None:
        audits.append(
            {
                "partner_id": partner_id,
                "at": at,
                "recorded_at": issued,
                "actor": "bench",
                "service": service,
                "action": action,
                "object_type": object_type,
                "object_id": object_id,
                "details": details,
            }
        )

    def record(row: dict[str, Any], day: dt.date, change: str, model: str, sku: str, qty: int) -> None:
        hist.append(
            {
                "subscription_id": row["id"],
                "partner_id": partner_id,
                "effective_date": day,
                "change": change,
                "billing_model": model,
                "sku": sku,
                "quantity": qty,
                "at": at_nine(day),
            }
        )

    for day, ordered, changed in korm_days(plan):
        now = at_nine(day)
        for sub in ordered:
            sku = profile.skus[sub.sku]
            code = _candidate()
            codes.append({"code": code, "partner_id": partner_id, "service": "korm", "issued_at": issued})
            row = {
                "id": "sub_" + secrets.token_hex(8),
                "partner_id": partner_id,
                "customer_id": sub.customer_id,
                "sku": sku.sku,
                "product_id": sku.product_id,
                "billing_model": sub.model,
                "quantity": sub.quantity,
                "activation_code": code,
                "activation_date": day,
                "stopped_on": None,
                "approval_code": None,
                "discount_percent": Decimal("0"),
                "migrated_on": None,
                "external_ref": None,
                "created_at": now,
                "updated_at": now,
            }
            subs[sub.i] = row
            if sub.model == "legacy":
                record(row, day, "legacy_order", "legacy", sku.sku, sub.quantity)
                audit(
                    now,
                    "seed_legacy",
                    row["id"],
                    {"sku": sku.sku, "quantity": sub.quantity, "activation_date": day.isoformat()},
                )
                continue
            if sub.approval is not None:
                code_name, percent = sub.approval
                audit(
                    now,
                    "create_approval_code",
                    code_name,
                    {"percent": str(percent), "expires_on": (day + dt.timedelta(days=30)).isoformat()},
                    service="admin",
                    object_type="approval_code",
                )
                approvals.append(
                    {
                        "partner_id": partner_id,
                        "code": code_name,
                        "percent": percent,
                        "expires_on": day + dt.timedelta(days=30),
                        "used_by": row["id"],
                        "created_at": now,
                    }
                )
                row.update(approval_code=code_name, discount_percent=percent)
            record(row, day, "order", sub.model, sku.sku, sub.quantity)
            audit(
                now,
                "order",
                row["id"],
                {
                    "customer_id": sub.customer_id,
                    "sku": sku.sku,
                    "quantity": sub.quantity,
                    "activation_date": day.isoformat(),
                    "approval_code": sub.approval[0] if sub.approval else None,
                },
            )
        for sub, what, value in changed:
            row = subs[sub.i]
            if what == "quantity":
                old = row["quantity"]
                row.update(quantity=value, updated_at=now)
                record(row, day, "quantity", row["billing_model"], row["sku"], value)
                audit(now, "change_quantity", row["id"], {"old": old, "new": value, "effective_date": day.isoformat()})
            elif what == "switch":
                new_sku, qty = value
                old_sku, old = row["sku"], row["quantity"]
                row.update(sku=new_sku, quantity=qty, updated_at=now)
                record(row, day, "switch", "payg", new_sku, qty)
                audit(
                    now,
                    "switch_plan",
                    row["id"],
                    {"old_sku": old_sku, "new_sku": new_sku, "old": old, "new": qty, "effective_date": day.isoformat()},
                )
            else:
                row.update(stopped_on=day, updated_at=now)
                record(row, day, "stop", row["billing_model"], row["sku"], row["quantity"])
                audit(now, "stop", row["id"], {"stopped_on": day.isoformat()})

    with store.begin() as conn:
        for table, rows in (
            (activation_codes, codes),
            (korm_subs, list(subs.values())),
            (korm_history, hist),
            (approval_codes, approvals),
            (audit_log, audits),
        ):
            for k in range(0, len(rows), batch):
                conn.execute(sa.insert(table), rows[k : k + batch])
        conn.execute(sa.update(partners).where(partners.c.id == partner_id).values(clock_now=at_nine(KORM_END)))
    return partner_id


def korm_statement(store: Store, partner_id: str, period: str = STATEMENT_PERIOD) -> dict[str, Any]:
    with store.begin() as conn:
        return korm_billing.statement(conn, context(conn, partner_id), period)


# ---------------------------------------------------------------- KSS: the plan (through the rules)

KSS_PRODUCTS = ("KAV", "KIS", "KTS", "KISA", "KSK", "KSOS", "KSEC")


def build_kss(
    store: Store,
    n: int,
    *,
    programme: str = "xsp",
    billing_period: str = "calendar_month",
    container: int = 200,
    timezone: str = "UTC",
) -> str:
    """``n`` subscriptions through ksimkit.simulators.kss.container: 70% open-ended, 10% trial, 5% fixed term, 5% paused
    for a term, 5% soft-cancelled, 5% with a licence count change."""
    with store.begin() as conn:
        partner_id = create_partner(
            conn,
            faker_seed=0,
            default_timezone="UTC",
            name="bench-kss",
            programme=programme,
            billing_period=billing_period,
            timezone=timezone,
            now=KSS_START,
        )["id"]
        products = [p for p in KSS_PRODUCTS if programme in load_profile().kss_products[p].programmes]
    unit = iter(range(1, 10**9))
    first: list[Any] = []
    then: list[Any] = []
    for i in range(n):
        sid, kind = f"sub-{i:06d}", i % 20
        start = KSS_START - dt.timedelta(days=i % 28, hours=i % 9)
        end = start + dt.timedelta(days=60 + i % 300) if kind == 16 else None
        trial = 1 + i % (60 if programme == "xsp" else 30) if kind in (14, 15) else None  # KSS-TRIAL-1 caps
        first.append(
            kss_model.Activate(
                next(unit),
                sid,
                start,
                end,
                products[i % len(products)],
                1 + i % 10,
                trial_days=trial,
                customer_id=f"cust-{i // 4:06d}",
            )
        )
        if kind == 17:
            then.append(kss_model.Pause(next(unit), sid, KSS_START, KSS_START + dt.timedelta(days=10 + i % 90)))
        elif kind == 18:
            then.append(kss_model.SoftCancel(next(unit), sid, KSS_START + dt.timedelta(days=30 + i % 200)))
        elif kind == 19:
            then.append(kss_model.ChangeLicenseCount(next(unit), sid, 11 + i % 5))
    txn = iter(range(1, 10**9))
    for items in (first, then):
        for k in range(0, len(items), container):
            with store.begin() as conn:
                ctx = context(conn, partner_id)
                answer = kss_container.process(
                    conn,
                    ctx,
                    kss_model.RequestContainer(ctx.clock.now, f"bench-{next(txn)}", tuple(items[k : k + container])),
                )
                if answer.errors or answer.transaction_error:
                    raise RuntimeError(f"KSS setup refused: {(answer.errors or [answer.transaction_error])[0]}")
    return partner_id


# ---------------------------------------------------------------- measuring


_cpu: list[float] = []  # the CPU seconds of each ``timed`` call, in order


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of ``fn()`` (and its CPU seconds, appended to ``_cpu``: on a shared machine the two differ)."""
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    _cpu.append(time.process_time() - c0)
    return wall, result


def cpu_of(runs: int) -> list[float]:
    return [round(c, 3) for c in _cpu[-runs:]]


def copy_db(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)


def audit_count(store: Store, partner_id: str) -> int:
    with store.begin() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(audit_log).where(audit_log.c.partner_id == partner_id)
        ).scalar_one()


def months_later(moment: dt.datetime, months: int) -> dt.datetime:
    month0 = moment.month - 1 + months
    return moment.replace(year=moment.year + month0 // 12, month=month0 % 12 + 1)


def measure_jump(tmp: Path, name: str, build: Callable[[Store], str], months: int, reps: int) -> dict[str, Any]:
    """Build once, then per repetition: a copy of the file, ``move_clock`` ``months`` forward, timed."""
    base = tmp / f"{name}-base.db"
    store = new_store(base)
    setup, partner_id = timed(lambda: build(store))
    with store.begin() as conn:
        start = load_partner(conn, partner_id).clock.now
    store.dispose()  # checkpoints the WAL: the file alone is the state
    runs, cpu, events = [], [], 0
    for rep in range(reps):
        path = tmp / f"{name}-{rep}.db"
        copy_db(base, path)
        store = Store(f"sqlite:///{path}")
        before = audit_count(store, partner_id)

        def jump(store: Store = store) -> None:
            with store.begin() as conn:
                move_clock(conn, partner_id, months_later(start, months), sources=SERVICES.due_sources)

        seconds, _ = timed(jump)
        runs.append(seconds)
        cpu.append(cpu_of(1)[0])
        events = audit_count(store, partner_id) - before
        store.dispose()
        path.unlink()
    return {
        "setup_seconds": round(setup, 3),
        "runs": [round(r, 3) for r in runs],
        "median": round(statistics.median(runs), 3),
        "cpu_runs": cpu,
        "cpu_median": round(statistics.median(cpu), 3),
        "audit_entries_written": events,
    }


def measure_korm_statement(tmp: Path, n: int, reps: int, setup: str) -> dict[str, Any]:
    store = new_store(tmp / "korm-statement.db")
    plan = korm_plan(n, load_profile())
    builder = build_korm_bulk if setup == "bulk" else build_korm_rules
    seconds, partner_id = timed(lambda: builder(store, plan))
    korm_statement(store, partner_id)  # warm: imports, compiled statements, the page cache
    runs, found = [], {}
    for _ in range(reps):
        t, found = timed(lambda: korm_statement(store, partner_id))
        runs.append(t)
    store.dispose()
    cpu = cpu_of(reps)
    return {
        "setup": setup,
        "setup_seconds": round(seconds, 3),
        "runs": [round(r, 3) for r in runs],
        "median": round(statistics.median(runs), 3),
        "cpu_runs": cpu,
        "cpu_median": round(statistics.median(cpu), 3),
        "period": STATEMENT_PERIOD,
        "lines": len(found["lines"]),
        "totals": found["totals"],
    }


def measure_certify(tmp: Path, reps: int) -> dict[str, Any]:
    ksim = Path(sys.executable).parent / "ksim"
    cmd = [str(ksim)] if ksim.exists() else [sys.executable, "-m", "ksimkit.simulators.cli"]
    runs, cpu, summary = [], [], {}
    for rep in range(reps):
        out = tmp / f"certify-{rep}"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*cmd, "certify", "--reference-broker", "--out", str(out)], cwd=ROOT, capture_output=True, text=True
        )
        runs.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 3))
        summary = {"returncode": proc.returncode, "last_line": (proc.stdout.strip().splitlines() or [""])[-1]}
        if proc.returncode != 0:
            summary["stderr"] = proc.stderr[-2000:]
        shutil.rmtree(out, ignore_errors=True)
    return {
        "runs": [round(r, 3) for r in runs],
        "median": round(statistics.median(runs), 3),
        "cpu_runs": cpu,
        "cpu_median": round(statistics.median(cpu), 3),
        **summary,
    }


def table(results: dict[str, Any], sizes: dict[str, int], months: int) -> str:
    lines = [
        "| workload | wall s, median (runs) | CPU s, median | setup s | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["figures"].items():
        label = LABELS[name].format(n=sizes.get(name, 0), months=months)
        target = TARGETS.get(name)
        met = "–" if target is None else ("yes" if r["median"] <= target else "**no**")
        runs = ", ".join(f"{x:.2f}" for x in r["runs"])
        setup = f"{r['setup_seconds']:.1f}" if "setup_seconds" in r else "–"
        goal = "–" if target is None else f"≤ {target:g} s"
        lines.append(f"| {label} | {r['median']:.2f} ({runs}) | {r['cpu_median']:.2f} | {setup} | {goal} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 repetition instead of 3")
    ap.add_argument("--json", metavar="OUT", help="write every run and the settings as JSON to OUT")
    ap.add_argument("--reps", type=int, help="repetitions per figure (default 3; --quick 1)")
    ap.add_argument("--korm-subs", type=int, default=100_000, help="KORM subscriptions for the month statement")
    ap.add_argument("--korm-setup", choices=("bulk", "rules"), default="bulk")
    ap.add_argument("--kss-subs", type=int, default=10_000, help="KSS subscriptions for the clock jump")
    ap.add_argument("--korm-jump-subs", type=int, default=10_000, help="KORM subscriptions for the clock jump")
    ap.add_argument("--months", type=int, default=12, help="months of each clock jump")
    ap.add_argument("--skip", default="", help="comma-separated: korm_statement,kss_jump,korm_jump,certify")
    args = ap.parse_args(argv)
    reps = args.reps or (1 if args.quick else 3)
    skip = {s for s in args.skip.split(",") if s}
    unknown = skip - set(LABELS)
    if unknown:
        ap.error(f"unknown --skip {sorted(unknown)}")
    sizes = {"korm_statement": args.korm_subs, "kss_jump": args.kss_subs, "korm_jump": args.korm_jump_subs}
    results: dict[str, Any] = {
        "started": dt.datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {"reps": reps, "quick": args.quick, "months": args.months, "korm_setup": args.korm_setup, **sizes},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "figures": {},
    }
    with tempfile.TemporaryDirectory(prefix="ksim-scale-") as tmp_name:
        tmp = Path(tmp_name)
        figures = results["figures"]
        if "korm_statement" not in skip:
            figures["korm_statement"] = measure_korm_statement(tmp, args.korm_subs, reps, args.korm_setup)
        if "kss_jump" not in skip:
            figures["kss_jump"] = measure_jump(tmp, "kss", lambda s: build_kss(s, args.kss_subs), args.months, reps)
        if "korm_jump" not in skip:
            plan = korm_plan(args.korm_jump_subs, load_profile())
            figures["korm_jump"] = measure_jump(tmp, "korm", lambda s: build_korm_bulk(s, plan), args.months, reps)
        if "certify" not in skip:
            figures["certify"] = measure_certify(tmp, reps)
    text = f"ksim scale benchmark, {results['started']}, {'quick' if args.quick else 'full'} ({reps} run(s) each)\n\n"
    text += table(results, sizes, args.months)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    failed = figures.get("certify", {}).get("returncode", 0) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
