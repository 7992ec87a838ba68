"""``ksim`` command line: ``ksim serve`` runs the simulators; ``ksim demo`` walks through them; ``ksim certify``
drives a broker through the scenario suites and writes the certification report."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from typing import Any

from ksimkit import __version__
from ksimkit.simulators.core.database_check import check_database
from ksimkit.simulators.core.settings import SettingError, Settings, coerce_setting, load_settings


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
        from ksimkit.scenarios.certify import CertifyOptions, run_certify  # the client stack: for certify only

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


if __name__ == "__main__":
    sys.exit(main())
