"""``python -m ksimkit.examples.pooled_broker serve --pool pool.yaml`` serves the broker;
``python -m ksimkit.examples.pooled_broker clock --broker URL --company C --to INSTANT`` is its operator's CLI: it
moves a company's clock (the month end runs as the broker's scheduled job would) and prints the answer as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ksimkit.examples.pooled_broker", description="the pooled example broker and its operator's CLI"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the broker")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8766)
    serve.add_argument("--database-url", default="sqlite:///.ksim/pooled-broker.db")
    serve.add_argument(
        "--pool",
        default=str(Path(__file__).with_name("pool.yaml")),
        help="the vendor accounts, read once (default: the pool.yaml beside this file)",
    )
    clock = sub.add_parser("clock", help="move a company's clock and run its month end")
    clock.add_argument("--broker", required=True, help="the broker's URL")
    clock.add_argument("--company", required=True)
    clock.add_argument("--to", required=True, help="RFC 3339 instant")
    args = parser.parse_args(argv)
    if args.command == "clock":
        import httpx

        try:
            answer = httpx.post(
                f"{args.broker.rstrip('/')}/admin/companies/{args.company}/clock", json={"now": args.to}, timeout=60
            )
        except httpx.HTTPError as exc:
            print(json.dumps({"error": f"the broker did not answer: {exc}"}), file=sys.stderr)
            return 3
        print(answer.text)
        return 0 if answer.is_success else 1
    if args.database_url.startswith("sqlite:///") and not args.database_url.startswith("sqlite:////"):
        Path(args.database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    from werkzeug.serving import make_server

    from ksimkit.examples.pooled_broker.app import create_app

    server = make_server(args.host, args.port, create_app(args.database_url, args.pool), threaded=True)
    print(f"pooled broker on http://{args.host}:{server.server_port} (pool {args.pool})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
