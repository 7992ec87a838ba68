"""``ksim`` command line: ``ksim serve`` runs the simulators; ``ksim demo`` walks through them; ``ksim certify``
drives a broker through the scenario suites and writes the certification report."""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksimkit import __version__
from ksimkit.simulators.core.database_check import check_database
from ksimkit.simulators.core.settings import SettingError, Settings, coerce_setting, load_settings

SUITE_NAMES = ("korm", "kss", "all")


def _setting_type(name: str, flag: str) -> Callable[[str], Any]:
    """An argparse type that checks a flag's value as the setting it overrides (one line, exit 2)."""

    def convert(text: str) -> Any:
        try:
            return coerce_setting(name, text, flag)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(exc.expected) from None

    return convert


def _suggest(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """``did you mean --port?`` for an unknown flag close to one the command takes."""
    known = [flag for action in parser._actions for flag in action.option_strings]
    for arg in unknown:
        option = arg.split("=", 1)[0]
        if option in ("--config", "--debug"):
            return f" ({option} goes before the command: ksim {option} ... {parser.prog.split()[-1]})"
        if arg.startswith("-"):
            close = difflib.get_close_matches(arg.split("=", 1)[0], known, n=1)
            if close:
                return f" (did you mean {close[0]}?)"
    return ""


# The settings a flag of ``ksim serve`` (or ``demo``) overrides, and the flag: an error about one names it.
FLAG_OF = {
    "host": "--host",
    "port": "--port",
    "workers": "--workers",
    "database_url": "--database-url",
    "access_log": "--access-log",
}


def _serve_parser(sub: Any) -> argparse.ArgumentParser:
    defaults = Settings()
    serve = sub.add_parser(
        "serve",
        help="serve KORM SS, KSS and the control plane under gunicorn",
        description="Serve KORM SS (/korm/v1), KSS (/kss/soap/upi, /kss/v1) and the control plane (/_sim) under "
        "gunicorn. Each flag overrides its setting (ksim.toml [ksim], KSIM_<NAME>; docs/settings.md).",
    )
    serve.add_argument(
        "--host", type=_setting_type("host", "--host"), help=f"address to bind (setting host; default {defaults.host})"
    )
    serve.add_argument(
        "--port", type=_setting_type("port", "--port"), help=f"port to bind (setting port; default {defaults.port})"
    )
    serve.add_argument(
        "--workers",
        type=_setting_type("workers", "--workers"),
        help=f"gunicorn worker processes, 4 threads each (setting workers; default {defaults.workers})",
    )
    serve.add_argument(
        "--database-url",
        metavar="URL",
        type=_setting_type("database_url", "--database-url"),
        help=f"where state lives: sqlite:///FILE or postgresql://USER:PASSWORD@HOST/DB "
        f"(setting database_url; default {defaults.database_url})",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="log every request on stdout (setting access_log; default off)",
    )
    return serve


def main(argv: list[str] | None = None) -> int:
    """``ksim``: a user's mistake on the command line or in the settings is one line naming the setting and
    where it came from, exit status 2 (``--debug`` adds the traceback)."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except SettingError as exc:
        if debug:
            raise
        print(f"ksim: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="ksim", description="Kaspersky subscription services simulator")
    parser.add_argument("--version", action="version", version=f"ksim {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="path of ksim.toml; it must exist (default ./ksim.toml if present, or $KSIM_CONFIG)",
    )
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    demo = sub.add_parser("demo", help="a scripted walk-through against a real in-process server")
    demo.add_argument(
        "--database-url",
        type=_setting_type("database_url", "--database-url"),
        help="default: a fresh SQLite file under .ksim/",
    )
    certify = sub.add_parser(
        "certify",
        help="drive a broker through the scenario suites; write report.html, summary.json, junit.xml",
        description="Drive a broker through the certification scenarios against the simulator, compare what it "
        "billed with what the vendor rules say, and write out/report.html, out/summary.json and "
        "out/junit.xml. Exit status: 0 all applicable scenarios pass, 1 a scenario failed or could not "
        "run, 2 a bad adapter file, scenario file or option.",
    )
    which = certify.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--broker",
        metavar="ADAPTER.yaml",
        help="the HTTP adapter file describing your broker's API (docs/certify-your-broker.md)",
    )
    which.add_argument(
        "--reference-broker",
        action="store_true",
        help="start ksim's reference broker (examples/reference_broker) in-process and certify it",
    )
    which.add_argument(
        "--pooled-example",
        action="store_true",
        help="start ksim's second example broker (examples/pooled_broker: pooled partners, its own ids, "
        "codes, clock command and invoices) in-process and certify it on its pool",
    )
    certify.add_argument(
        "--pool",
        metavar="POOL.yaml",
        help="run on a pool of partners with fixed credentials (a broker without a tenant API)",
    )
    certify.add_argument(
        "--level",
        choices=("vendor_side", "full"),
        default="full",
        help="the certification level the verdict is at (default full; vendor_side: the broker's "
        "calls to the vendor only, no invoices needed)",
    )
    certify.add_argument(
        "--defects",
        metavar="A,B",
        default="",
        help="with --reference-broker: seeded defects to switch on (comma-separated)",
    )
    certify.add_argument("--broker-url", metavar="URL", help="override the adapter file's base_url")
    certify.add_argument(
        "--suite",
        nargs="+",
        default=["all"],
        metavar="SUITE",
        help="korm, kss, all (default) or scenario files/directories; several may be given",
    )
    certify.add_argument("--jobs", "-j", type=int, default=8, help="scenarios run in parallel (default 8)")
    certify.add_argument("--out", default="out", metavar="DIR", help="where the report goes (default ./out)")
    certify.add_argument(
        "--ksim-url",
        metavar="URL",
        help="a running simulator (default: start one in-process, state in DIR/ksim-state.db)",
    )
    certify.add_argument("--admin-token", help="the simulator's admin token (default: the setting admin_token)")
    certify.add_argument(
        "--strict", action="store_true", help="scenarios the broker cannot run (not applicable) also make the run fail"
    )
    certify.add_argument(
        "-k",
        dest="select",
        metavar="TEXT",
        help="run only the scenarios whose id contains TEXT (or names a rule containing it)",
    )
    certify.add_argument(
        "--keep-state",
        action="store_true",
        help="keep the in-process simulator's database as DIR/ksim-state.db "
        "(default: a temporary file, removed after the run)",
    )
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        chosen = sub.choices[args.command]
        chosen.error(f"unrecognized arguments: {' '.join(unknown)}{_suggest(chosen, unknown)}")
    settings = load_settings(args.config)
    overrides = {k: v for k, v in vars(args).items() if k in FLAG_OF and v is not None}
    settings = settings.override(FLAG_OF.__getitem__, **overrides)
    if args.command == "serve":
        return _serve(settings)
    if args.command == "demo":
        from ksimkit.simulators.demo import run_demo

        if args.database_url is not None:
            check_database(settings.database_url, settings.source("database_url"))
        return run_demo(settings, fresh_database=args.database_url is None)
    if args.command == "certify":
        if args.defects and not args.reference_broker:
            parser.error("--defects goes with --reference-broker")
        if args.jobs < 1:
            parser.error("--jobs must be at least 1")
        return run_certify(
            settings,
            CertifyOptions(
                adapter=args.broker,
                reference_broker=args.reference_broker,
                defects=[d.strip() for d in args.defects.split(",") if d.strip()],
                broker_url=args.broker_url,
                suites=args.suite,
                jobs=args.jobs,
                out=args.out,
                ksim_url=args.ksim_url,
                admin_token=args.admin_token,
                strict=args.strict,
                select=args.select,
                pool=args.pool,
                level=args.level,
                pooled_example=args.pooled_example,
                keep_state=args.keep_state,
            ),
        )
    parser.error(f"unknown command {args.command}")
    return 2


def check_serve_settings(settings: Settings) -> None:
    """What ``ksim serve`` needs before it starts, each mistake a ``SettingError``: the database, the vendor
    profile, the time zone, and a free address."""
    from zoneinfo import ZoneInfo

    from ksimkit.simulators.core.catalog import load_profile

    check_database(settings.database_url, settings.source("database_url"))
    try:
        load_profile(settings.profile_path)
    except Exception as exc:  # a missing file, bad YAML, a profile that does not validate: all the user's
        raise SettingError("profile_path", settings.source("profile_path"), f"cannot be loaded: {exc}") from None
    try:
        ZoneInfo(settings.default_timezone)
    except (ValueError, KeyError, OSError):
        raise SettingError(
            "default_timezone",
            settings.source("default_timezone"),
            f"expected an IANA time zone name such as Europe/Berlin, got {settings.default_timezone!r}",
        ) from None
    _check_address(settings)


def _check_address(settings: Settings) -> None:
    """A taken port is one line here, not gunicorn retrying for five seconds."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SettingError(
            "host", settings.source("host"), f"cannot resolve {settings.host!r}: {exc.strerror}"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SettingError(
                    "port",
                    settings.source("port"),
                    f"{settings.host}:{settings.port} is in use by another process; choose another port (--port)",
                ) from None
            raise SettingError(
                "host", settings.source("host"), f"cannot bind {settings.host}:{settings.port}: {exc.strerror}"
            ) from None


def _serve(settings: Settings) -> int:
    from ksimkit.simulators.server import run_gunicorn

    check_serve_settings(settings)
    run_gunicorn(settings)
    return 0


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
    pool: str | None = None  # a pool file: pooled partners with fixed credentials
    level: str = "full"  # vendor_side | full
    pooled_example: bool = False
    keep_state: bool = False  # the in-process simulator's database stays in ``out`` (else a temporary file)


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
            elif options.pooled_example:
                from ksimkit.scenarios.brokers.pooled_example import pooled_example_broker
                from ksimkit.scenarios.pool import PoolError

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
            from ksimkit.simulators.client import KsimAdmin

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

    from ksimkit.scenarios.provenance import suite_digest

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
    from ksimkit.scenarios.pool import PartnerPool, PoolError
    from ksimkit.simulators.client import KsimAdmin

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


REACH_TIMEOUT_S = 5.0


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

    from ksimkit.scenarios.runner import Simulator, run_scenarios

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

    from ksimkit.scenarios.report import LABELS, rule_matrix

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


if __name__ == "__main__":
    sys.exit(main())
