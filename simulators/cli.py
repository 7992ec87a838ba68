"""``ksim`` command line: ``ksim serve`` runs the simulators; ``ksim demo`` walks through them."""
from __future__ import annotations

import argparse
import sys

from simulators.core.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ksim", description="Kaspersky subscription services simulator")
    parser.add_argument("--config", help="path of ksim.toml (default ./ksim.toml or $KSIM_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve KORM SS, KSS and the control plane under gunicorn")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--database-url")
    demo = sub.add_parser("demo", help="a scripted walk-through against a real in-process server")
    demo.add_argument("--database-url", help="default: a fresh SQLite file under .ksim/")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    overrides = {k: v for k, v in vars(args).items() if k in ("host", "port", "workers", "database_url") and v is not None}
    settings = settings.replace(**overrides)
    if args.command == "serve":
        from simulators.server import run_gunicorn

        run_gunicorn(settings)
        return 0
    if args.command == "demo":
        from simulators.demo import run_demo

        return run_demo(settings, fresh_database=args.database_url is None)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
