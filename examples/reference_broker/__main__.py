"""``python -m ksimkit.examples.reference_broker --port N --database-url URL --defects a,b``: serve the broker."""

from __future__ import annotations

import argparse
import sys

from ksimkit.examples.reference_broker import defects as defect_list


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ksimkit.examples.reference_broker",
        description="ksim's reference broker (a real broker to certify)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--database-url",
        default="sqlite:///.ksim/reference-broker.db",
        help="SQLAlchemy URL of the broker's own database (default %(default)s)",
    )
    parser.add_argument(
        "--defects",
        default="",
        help="comma-separated seeded defects for every tenant (added to $REFERENCE_BROKER_DEFECTS); "
        "known: " + ", ".join(sorted(defect_list.DEFECTS)),
    )
    args = parser.parse_args(argv)
    try:
        args.defects = defect_list.parse(args.defects)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.database_url.startswith("sqlite:///") and not args.database_url.startswith("sqlite:////"):
        from pathlib import Path

        Path(args.database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    from werkzeug.serving import make_server

    from ksimkit.examples.reference_broker.app import create_app

    app = create_app(args.database_url, args.defects)
    server = make_server(args.host, args.port, app, threaded=True)
    active = sorted(app.extensions["reference_broker"].defects)
    print(
        f"reference broker on http://{args.host}:{server.server_port} (database {args.database_url}; "
        f"defects: {', '.join(active) or 'none'})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
