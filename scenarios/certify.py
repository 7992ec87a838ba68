"""``ksim certify``: load the suites, start (or reach) the broker and the simulator, run every scenario with a
progress bar, write the reports and print the rule table. ``simulators/cli.py`` parses the options and calls
:func:`run_certify`."""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksimkit.scenarios.brokers.http import HttpAdapter
from ksimkit.scenarios.errors import AdapterError, PoolError, ReferenceBrokerUnavailable, ScenarioFileError
from ksimkit.scenarios.loader import SUITES_DIR, load_suite
from ksimkit.scenarios.pool import PartnerPool
from ksimkit.scenarios.provenance import suite_digest
from ksimkit.scenarios.report import LABELS, ReportMeta, overall_verdict, rule_matrix, write_reports
from ksimkit.scenarios.runner import run_scenarios
from ksimkit.scenarios.simulator import Simulator
from ksimkit.simulators.client import KsimAdmin
from ksimkit.simulators.core.settings import Settings

__all__ = ["SUITE_NAMES", "CertifyOptions", "run_certify", "suite_paths"]

SUITE_NAMES = ("korm", "kss", "all")
REACH_TIMEOUT_S = 5.0


@dataclass
class CertifyOptions:
    adapter: str | None = None
    reference_broker: bool = False
    defects: list[str] = field(default_factory=list)
    broker_url: str | None = None
    suites: list[str] = field(default_factory=lambda: ["all"])
    jobs: int = 8
    out: str = "out"
    ksim_url: str | None = None
    admin_token: str | None = None
    strict: bool = False
    select: str | None = None
    pool: str | None = None  # a pool file: pooled partners with fixed credentials
    level: str = "full"  # vendor_side | full
    pooled_example: bool = False
    keep_state: bool = False  # the in-process simulator's database stays in ``out`` (else a temporary file)


def suite_paths(suites: list[str]) -> list[Path]:
    """``korm``/``kss``/``all`` are the packaged suites (scenarios/suites/...); anything else is a path."""
    paths: list[Path] = []
    for suite in suites:
        if suite == "all":
            paths.append(SUITES_DIR)
        elif suite in ("korm", "kss"):
            paths.append(SUITES_DIR / suite)
        else:
            paths.append(Path(suite))
    return paths


def run_certify(settings: Settings, options: CertifyOptions, *, console: Any = None) -> int:
    """``ksim certify``: 0 when every applicable scenario passes, 1 when one fails or errors, 2 for bad input."""
    from rich.console import Console

    # Off a terminal (CI logs) rich would cut lines at 80 columns; scenario ids must stay whole for a -k rerun.
    console = console or Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    err = Console(stderr=True, soft_wrap=True)  # file:line messages stay on one line
    missing = [str(p) for p in suite_paths(options.suites) if not p.exists()]
    if missing:
        err.print(
            f"[red]ksim certify: no such suite or path: {', '.join(missing)}[/] (suites: {', '.join(SUITE_NAMES)})"
        )
        return 2
    try:
        scenarios = load_suite(suite_paths(options.suites))
    except ScenarioFileError as exc:
        err.print("[red]ksim certify: the scenario files do not validate:[/]")
        for issue in exc.issues:
            err.print(f"  {issue}", markup=False, highlight=False)
        return 2
    if options.select:
        needle = options.select.lower()
        scenarios = [s for s in scenarios if needle in s.id.lower() or any(needle in r.lower() for r in s.rules)]
    if not scenarios:
        err.print("[red]ksim certify: no scenario to run[/]")
        return 2
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)

    with ExitStack() as stack:
        # the broker
        notes: list[str] = []
        pool: Any = None
        try:
            if options.reference_broker:
                from ksimkit.scenarios.brokers.reference import reference_broker

                try:
                    adapter = stack.enter_context(reference_broker(options.defects))
                except ReferenceBrokerUnavailable as exc:
                    err.print(f"[red]ksim certify: {exc}[/]", highlight=False)
                    return 2
                except AdapterError:
                    raise
                except ValueError as exc:  # an unknown defect
                    err.print(f"[red]ksim certify: --defects: {exc}[/]", highlight=False)
                    return 2
                if options.broker_url:
                    adapter = HttpAdapter.load(adapter.source, base_url=options.broker_url)
                broker_name = "reference broker"
                notes.append("reference broker with seeded defects: " + (", ".join(options.defects) or "none"))
            elif options.pooled_example:
                from ksimkit.scenarios.brokers.pooled_example import pooled_example_broker

                try:
                    adapter, pool = stack.enter_context(pooled_example_broker(options.pool))
                except PoolError as exc:
                    err.print(f"[red]ksim certify: --pool: {exc}[/]", highlight=False)
                    return 2
                broker_name = adapter.name
            else:
                assert options.adapter is not None
                adapter = HttpAdapter.load(options.adapter, base_url=options.broker_url)
                broker_name = adapter.name
        except AdapterError as exc:
            err.print(f"[red]ksim certify: bad adapter file:[/] {exc}", highlight=False)
            return 2
        # the simulator
        admin_token = options.admin_token or settings.admin_token
        if options.ksim_url:
            sim_url = options.ksim_url.rstrip("/")
            with KsimAdmin(sim_url, admin_token, timeout=REACH_TIMEOUT_S) as admin:
                problem = admin.problem(token_hint="--admin-token, setting admin_token")
            if problem:
                err.print(f"[red]ksim certify: {problem}[/]; no scenario was run", highlight=False)
                return 2
        else:
            from ksimkit.simulators.app import create_app
            from ksimkit.simulators.server import InProcessServer

            kept = out / "ksim-state.db"
            for suffix in ("", "-wal", "-shm", "-journal"):  # a previous run's state is never reused
                Path(f"{kept}{suffix}").unlink(missing_ok=True)
            # The state stays out of the report folder (published as an artifact) unless asked for.
            db = (
                kept
                if options.keep_state
                else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ksim-certify-"))) / "ksim-state.db"
            )
            sim_settings = settings.replace(database_url=f"sqlite:///{db.resolve()}", admin_token=admin_token)
            sim_url = stack.enter_context(InProcessServer(create_app(sim_settings))).url
        problem = _broker_problem(adapter)
        if problem:
            err.print(f"[red]ksim certify: {problem}[/]; no scenario was run", highlight=False)
            return 2
        pool = _certify_pool(options, pool, sim_url, admin_token, err)
        if pool is False:
            return 2
        if pool is not None:
            notes.append(f"on {len(pool)} pooled partner(s): " + ", ".join(m.id for m in pool.members))
        if options.level != "full":
            notes.append("certification level asked: vendor-side (the broker's invoices do not decide the verdict)")
        results = _run_with_progress(
            console, scenarios, adapter, sim_url, admin_token, options.jobs, pool, options.level
        )

    meta = ReportMeta(
        broker=broker_name,
        simulator=options.ksim_url or f"in-process ({sim_url})",
        suites=[str(s) for s in options.suites],
        started_at=started,
        notes=notes,
        suite_digest=suite_digest(scenarios),
        adapter=f"{adapter.name} ({Path(str(adapter.source)).name})",
    )
    paths = write_reports(results, out, meta, strict=options.strict)
    verdict = overall_verdict(results, strict=options.strict)
    _print_summary(console, results, verdict, paths)
    return 0 if verdict == "passed" else 1


def _certify_pool(options: CertifyOptions, pool: Any, sim_url: str, admin_token: str, err: Any) -> Any:
    """The partner pool of the run (None: a new partner per scenario), provisioned on the simulator; False when the
    pool file or the simulator refuses it (said on ``err``)."""
    try:
        if pool is None and options.pool:
            pool = PartnerPool.load(options.pool)
        if pool is not None:
            with KsimAdmin(sim_url, admin_token) as admin:
                pool.provision(admin)
    except PoolError as exc:
        err.print(f"[red]ksim certify: --pool: {exc}[/]", highlight=False)
        return False
    return pool


def _broker_problem(adapter: Any) -> str | None:
    """Why the broker cannot be reached at all (any HTTP answer counts as reachable), or ``None``."""
    import httpx

    base_url = getattr(adapter, "base_url", None)
    if not base_url:
        return None
    try:
        httpx.get(base_url, timeout=REACH_TIMEOUT_S, verify=getattr(adapter, "verify", True))
    except httpx.TransportError as exc:
        return (
            f"the broker at {base_url} cannot be reached ({type(exc).__name__}: {exc or 'no answer'}); "
            "start it, or point --broker-url or the adapter's base_url at it"
        )
    return None


def _run_with_progress(
    console: Any,
    scenarios: list[Any],
    adapter: Any,
    sim_url: str,
    admin_token: str,
    jobs: int,
    pool: Any = None,
    level: str = "full",
) -> list[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    colours = {"passed": "green", "failed": "red", "not_applicable": "dim", "error": "yellow"}
    tally = {"passed": 0, "failed": 0, "not_applicable": 0, "error": 0}
    with Progress(
        TextColumn("[bold]certifying[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[tally]}"),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("scenarios", total=len(scenarios), tally="")

        def on_result(result: Any) -> None:
            tally[result.verdict] += 1
            text = " ".join(f"[{colours[k]}]{v} {k.replace('_', ' ')}[/]" for k, v in tally.items() if v)
            progress.update(task, advance=1, tally=text)
            if result.verdict in ("failed", "error"):
                progress.console.print(
                    f"  [{colours[result.verdict]}]{result.verdict}[/] {result.scenario_id}",
                    highlight=False,
                    soft_wrap=True,
                )

        return run_scenarios(
            scenarios, adapter, Simulator(sim_url, admin_token, pool=pool), jobs=jobs, on_result=on_result, level=level
        )


def _print_summary(console: Any, results: list[Any], verdict: str, paths: dict[str, Path]) -> None:
    from rich.table import Table

    colours = {"passed": "green", "failed": "red", "not_applicable": "dim", "error": "yellow"}
    table = Table(title="vendor rules", title_justify="left")
    for column, width in (("rule", 13), ("verdict", 7), ("pass", 4), ("fail", 4), ("n/a", 3), ("error", 5)):
        table.add_column(column, justify="left" if width > 5 else "right", no_wrap=True, min_width=width)
    table.add_column(
        "what the vendor requires", no_wrap=True, overflow="ellipsis", max_width=max(20, console.width - 62)
    )
    for rule, row in rule_matrix(results).items():
        c = row["counts"]
        table.add_row(
            rule,
            f"[{colours.get(row['verdict'], 'dim')}]{LABELS[row['verdict']]}[/]",
            str(c["passed"] or ""),
            str(c["failed"] or ""),
            str(c["not_applicable"] or ""),
            str(c["error"] or ""),
            row["title"],
        )
    console.print(table)
    bad = [r for r in results if r.verdict in ("failed", "error")]
    if bad:
        failures = Table(title="scenarios that did not pass", title_justify="left")
        # ids whole, never cut: a -k rerun needs them
        failures.add_column("scenario", no_wrap=True, min_width=max(len(r.scenario_id) for r in bad))
        failures.add_column("verdict", no_wrap=True, min_width=7)
        failures.add_column("first problem", overflow="fold", ratio=1)
        for result in bad:
            found = result.first_failure  # the earliest failed check, with the rule it belongs to
            first = (
                f"{found.rule}: {found.text}"
                if found
                else result.failures[0]
                if result.failures
                else (result.reason or "").splitlines()[0]
            )
            failures.add_row(result.scenario_id, f"[{colours[result.verdict]}]{LABELS[result.verdict]}[/]", first)
        console.print(failures)
    counts = {v: sum(1 for r in results if r.verdict == v) for v in colours}
    console.print(
        f"[bold]{len(results)} scenarios:[/] [green]{counts['passed']} passed[/], "
        f"[red]{counts['failed']} failed[/], [dim]{counts['not_applicable']} not applicable[/], "
        f"[yellow]{counts['error']} errors[/]"
    )
    for kind, path in paths.items():
        console.print(f"  {kind:5} {path}", highlight=False)
    console.print(f"[bold {colours.get(verdict, 'red')}]{'CERTIFIED' if verdict == 'passed' else 'NOT CERTIFIED'}[/]")
