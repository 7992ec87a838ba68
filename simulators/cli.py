"""``ksim`` command line: ``ksim serve`` runs the simulators; ``ksim demo`` walks through them; ``ksim certify``
drives a broker through the scenario suites and writes the certification report."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksimkit import __version__
from ksimkit.simulators.core.settings import Settings, load_settings

SUITE_NAMES = ("korm", "kss", "all")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ksim", description="Kaspersky subscription services simulator")
    parser.add_argument("--version", action="version", version=f"ksim {__version__}")
    parser.add_argument("--config", help="path of ksim.toml (default ./ksim.toml or $KSIM_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve KORM SS, KSS and the control plane under gunicorn")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--database-url")
    demo = sub.add_parser("demo", help="a scripted walk-through against a real in-process server")
    demo.add_argument("--database-url", help="default: a fresh SQLite file under .ksim/")
    certify = sub.add_parser(
        "certify", help="drive a broker through the scenario suites; write report.html, summary.json, junit.xml",
        description="Drive a broker through the certification scenarios against the simulator, compare what it "
                    "billed with what the vendor rules say, and write out/report.html, out/summary.json and "
                    "out/junit.xml. Exit status: 0 all applicable scenarios pass, 1 a scenario failed or could not "
                    "run, 2 a bad adapter file, scenario file or option.",
    )
    which = certify.add_mutually_exclusive_group(required=True)
    which.add_argument("--broker", metavar="ADAPTER.yaml",
                       help="the HTTP adapter file describing your broker's API (docs/certify-your-broker.md)")
    which.add_argument("--reference-broker", action="store_true",
                       help="start ksim's reference broker (examples/reference_broker) in-process and certify it")
    certify.add_argument("--defects", metavar="A,B", default="",
                         help="with --reference-broker: seeded defects to switch on (comma-separated)")
    certify.add_argument("--broker-url", metavar="URL", help="override the adapter file's base_url")
    certify.add_argument("--suite", nargs="+", default=["all"], metavar="SUITE",
                         help="korm, kss, all (default) or scenario files/directories; several may be given")
    certify.add_argument("--jobs", "-j", type=int, default=8, help="scenarios run in parallel (default 8)")
    certify.add_argument("--out", default="out", metavar="DIR", help="where the report goes (default ./out)")
    certify.add_argument("--ksim-url", metavar="URL",
                         help="a running simulator (default: start one in-process, state in DIR/ksim-state.db)")
    certify.add_argument("--admin-token", help="the simulator's admin token (default: the setting admin_token)")
    certify.add_argument("--strict", action="store_true",
                         help="scenarios the broker cannot run (not applicable) also make the run fail")
    certify.add_argument("-k", dest="select", metavar="TEXT",
                         help="run only the scenarios whose id contains TEXT (or names a rule containing it)")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    overrides = {k: v for k, v in vars(args).items() if k in ("host", "port", "workers", "database_url") and v is not None}
    settings = settings.replace(**overrides)
    if args.command == "serve":
        from ksimkit.simulators.server import run_gunicorn

        run_gunicorn(settings)
        return 0
    if args.command == "demo":
        from ksimkit.simulators.demo import run_demo

        return run_demo(settings, fresh_database=args.database_url is None)
    if args.command == "certify":
        if args.defects and not args.reference_broker:
            parser.error("--defects goes with --reference-broker")
        if args.jobs < 1:
            parser.error("--jobs must be at least 1")
        return run_certify(settings, CertifyOptions(
            adapter=args.broker, reference_broker=args.reference_broker,
            defects=[d.strip() for d in args.defects.split(",") if d.strip()], broker_url=args.broker_url,
            suites=args.suite, jobs=args.jobs, out=args.out, ksim_url=args.ksim_url, admin_token=args.admin_token,
            strict=args.strict, select=args.select,
        ))
    parser.error(f"unknown command {args.command}")
    return 2


# -- ksim certify -------------------------------------------------------------------------------------


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


def suite_paths(suites: list[str]) -> list[Path]:
    """``korm``/``kss``/``all`` are the packaged suites (scenarios/suites/...); anything else is a path."""
    from ksimkit.scenarios.model import SUITES_DIR

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
    from contextlib import ExitStack

    from rich.console import Console

    from ksimkit.scenarios.brokers.http import AdapterError, HttpAdapter
    from ksimkit.scenarios.model import ScenarioFileError, load_suite
    from ksimkit.scenarios.report import ReportMeta, overall_verdict, write_reports

    console = console or Console()
    err = Console(stderr=True, soft_wrap=True)  # file:line messages stay on one line
    missing = [str(p) for p in suite_paths(options.suites) if not p.exists()]
    if missing:
        err.print(f"[red]ksim certify: no such suite or path: {', '.join(missing)}[/] (suites: {', '.join(SUITE_NAMES)})")
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
    started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    with ExitStack() as stack:
        # the broker
        notes: list[str] = []
        try:
            if options.reference_broker:
                from ksimkit.scenarios.brokers.reference import ReferenceBrokerUnavailable, reference_broker

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
            from ksimkit.simulators.client import KsimAdmin

            try:
                with KsimAdmin(sim_url, admin_token) as admin:
                    admin.wait_until_ready(timeout=10)
            except TimeoutError as exc:
                err.print(f"[red]ksim certify: {exc}[/]")
                return 1
        else:
            from ksimkit.simulators.app import create_app
            from ksimkit.simulators.server import InProcessServer

            db = out / "ksim-state.db"
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            sim_settings = settings.replace(database_url=f"sqlite:///{db.resolve()}", admin_token=admin_token)
            sim_url = stack.enter_context(InProcessServer(create_app(sim_settings))).url
        results = _run_with_progress(console, scenarios, adapter, sim_url, admin_token, options.jobs)

    from ksimkit.scenarios.provenance import suite_digest

    meta = ReportMeta(broker=broker_name, simulator=options.ksim_url or f"in-process ({sim_url})",
                      suites=[str(s) for s in options.suites], started_at=started, notes=notes,
                      suite_digest=suite_digest(scenarios), adapter=f"{adapter.name} ({Path(str(adapter.source)).name})")
    paths = write_reports(results, out, meta, strict=options.strict)
    verdict = overall_verdict(results, strict=options.strict)
    _print_summary(console, results, verdict, paths)
    return 0 if verdict == "passed" else 1


def _run_with_progress(console: Any, scenarios: list[Any], adapter: Any, sim_url: str, admin_token: str,
                       jobs: int) -> list[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ksimkit.scenarios.runner import Simulator, run_scenarios

    colours = {"passed": "green", "failed": "red", "not_applicable": "dim", "error": "yellow"}
    tally = {"passed": 0, "failed": 0, "not_applicable": 0, "error": 0}
    with Progress(TextColumn("[bold]certifying[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[tally]}"), console=console, transient=False) as progress:
        task = progress.add_task("scenarios", total=len(scenarios), tally="")

        def on_result(result: Any) -> None:
            tally[result.verdict] += 1
            text = " ".join(f"[{colours[k]}]{v} {k.replace('_', ' ')}[/]" for k, v in tally.items() if v)
            progress.update(task, advance=1, tally=text)
            if result.verdict in ("failed", "error"):
                progress.console.print(f"  [{colours[result.verdict]}]{result.verdict}[/] {result.scenario_id}",
                                       highlight=False)

        return run_scenarios(scenarios, adapter, Simulator(sim_url, admin_token), jobs=jobs, on_result=on_result)


def _print_summary(console: Any, results: list[Any], verdict: str, paths: dict[str, Path]) -> None:
    from rich.table import Table

    from ksimkit.scenarios.report import LABELS, rule_matrix

    colours = {"passed": "green", "failed": "red", "not_applicable": "dim", "error": "yellow"}
    table = Table(title="vendor rules", title_justify="left")
    for column, width in (("rule", 13), ("verdict", 7), ("pass", 4), ("fail", 4), ("n/a", 3), ("error", 5)):
        table.add_column(column, justify="left" if width > 5 else "right", no_wrap=True, min_width=width)
    table.add_column("what the vendor requires", no_wrap=True, overflow="ellipsis",
                     max_width=max(20, console.width - 62))
    for rule, row in rule_matrix(results).items():
        c = row["counts"]
        table.add_row(rule, f"[{colours.get(row['verdict'], 'dim')}]{LABELS[row['verdict']]}[/]", str(c["passed"] or ""),
                      str(c["failed"] or ""), str(c["not_applicable"] or ""), str(c["error"] or ""), row["title"])
    console.print(table)
    bad = [r for r in results if r.verdict in ("failed", "error")]
    if bad:
        failures = Table(title="scenarios that did not pass", title_justify="left")
        failures.add_column("scenario", no_wrap=True, overflow="ellipsis", max_width=min(44, console.width // 3))
        failures.add_column("verdict", no_wrap=True, min_width=7)
        failures.add_column("first problem", overflow="fold", ratio=1)
        for result in bad:
            found = result.first_failure  # the earliest failed check, with the rule it belongs to
            first = (f"{found.rule}: {found.text}" if found else result.failures[0] if result.failures
                     else (result.reason or "").splitlines()[0])
            failures.add_row(result.scenario_id, f"[{colours[result.verdict]}]{LABELS[result.verdict]}[/]", first)
        console.print(failures)
    counts = {v: sum(1 for r in results if r.verdict == v) for v in colours}
    console.print(f"[bold]{len(results)} scenarios:[/] [green]{counts['passed']} passed[/], "
                  f"[red]{counts['failed']} failed[/], [dim]{counts['not_applicable']} not applicable[/], "
                  f"[yellow]{counts['error']} errors[/]")
    for kind, path in paths.items():
        console.print(f"  {kind:5} {path}", highlight=False)
    console.print(f"[bold {colours.get(verdict, 'red')}]{'CERTIFIED' if verdict == 'passed' else 'NOT CERTIFIED'}[/]")


if __name__ == "__main__":
    sys.exit(main())
