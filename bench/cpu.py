#!/usr/bin/env python3
"""CPU per request of ksim's hot calls through Flask's test client (no network, no gunicorn, no load generator):
the figure the request-path work moves, steady even on a shared machine where req/s under wrk is not.

    python bench/cpu.py                  # every workload, 1,000 calls each
    python bench/cpu.py get post -n 2000
    python bench/cpu.py get --profile    # and a cProfile of the calls (cumulative, top 40)

Each workload gets 100 warm-up calls, then 5 batches; the median and the minimum of the batches' CPU time per
call (``time.process_time``) are printed. To compare two versions, run it with ``PYTHONPATH`` set to each
checkout in turn, alternating.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

WORKLOADS = ("get", "post", "quantity", "activate", "getinfo")
ADMIN = "ksim-cpu-admin"
ORDER = {"customer_id": "c", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}
SOAP = {"Content-Type": "text/xml; charset=utf-8"}


def workloads() -> dict[str, Callable[[], None]]:
    from ksimkit.simulators.app import create_app
    from ksimkit.simulators.core.settings import Settings

    app = create_app(
        Settings(database_url=f"sqlite:///{tempfile.mkdtemp(prefix='ksim-cpu-')}/state.db", admin_token=ADMIN)
    )
    client = app.test_client()
    partner = client.post(
        "/_sim/partners", json={"programme": "xsp"}, headers={"Authorization": f"Bearer {ADMIN}"}
    ).get_json()
    auth = {"Authorization": f"Bearer {partner['token']}"}
    subs = [
        client.post(
            "/korm/v1/subscriptions",
            json={**ORDER, "customer_id": f"c{i % 20}"},
            headers={**auth, "Idempotency-Key": f"setup-{i}"},
        ).get_json()["id"]
        for i in range(200)
    ]
    user, password, start = partner["kss"]["username"], partner["kss"]["password"], partner["now"]

    def envelope(transaction: str, item: str) -> bytes:
        return (
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:kss="http://schemas.kaspersky.com/services/subscription/2.0/"><soap:Header><kss:AccessInfo>'
            f"<kss:UserName>{user}</kss:UserName><kss:Password>{password}</kss:Password></kss:AccessInfo>"
            "</soap:Header><soap:Body><kss:SubscriptionRequestContainer>"
            f"<kss:Timestamp>{start}</kss:Timestamp><kss:TransactionId>{transaction}</kss:TransactionId>"
            f"<kss:SubscriptionRequest>{item}</kss:SubscriptionRequest></kss:SubscriptionRequestContainer>"
            "</soap:Body></soap:Envelope>"
        ).encode()

    def activate_item(subscriber: str) -> str:
        return (
            f'<kss:Activate UnitId="1" SubscriberId="{subscriber}" StartTime="{start}" EndTime="indefinite" '
            'LicenseCount="1" ProductId="KIS"/>'
        )

    client.post("/kss/soap/upi", data=envelope("setup", activate_item("getinfo")), headers=SOAP)
    n = [0]

    def nxt() -> int:
        n[0] += 1
        return n[0]

    def get() -> None:
        assert client.get(f"/korm/v1/subscriptions/{subs[0]}", headers=auth).status_code == 200

    def post() -> None:
        r = client.post("/korm/v1/subscriptions", json=ORDER, headers={**auth, "Idempotency-Key": f"k{nxt()}"})
        assert r.status_code == 201, r.data

    def quantity() -> None:
        i = nxt()
        r = client.post(
            f"/korm/v1/subscriptions/{subs[i % len(subs)]}/quantity",
            json={"quantity": 21 + (i // len(subs)) % 28},
            headers={**auth, "Idempotency-Key": f"q{i}"},
        )
        assert r.status_code == 200, r.data

    def activate() -> None:
        i = nxt()
        r = client.post("/kss/soap/upi", data=envelope(f"t{i}", activate_item(f"s{i}")), headers=SOAP)
        assert b"Error" not in r.data, r.data

    def getinfo() -> None:
        item = '<kss:GetInfo UnitId="1" SubscriberId="getinfo" InfoSection="Subscription"/>'
        r = client.post("/kss/soap/upi", data=envelope(f"t{nxt()}", item), headers=SOAP)
        assert b"Error" not in r.data, r.data

    return {"get": get, "post": post, "quantity": quantity, "activate": activate, "getinfo": getinfo}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="*", choices=[[], *WORKLOADS], default=[], help=", ".join(WORKLOADS))
    parser.add_argument("-n", type=int, default=1000, help="measured calls per workload (default 1000)")
    parser.add_argument("--profile", action="store_true", help="then profile another n calls (cProfile)")
    opts = parser.parse_args(argv)
    calls = workloads()
    for name in opts.workloads or WORKLOADS:
        call = calls[name]
        for _ in range(100):
            call()
        batch = max(1, opts.n // 5)
        per_call = []
        for _ in range(5):
            t0 = time.process_time()
            for _ in range(batch):
                call()
            per_call.append((time.process_time() - t0) / batch * 1e6)
        print(
            f"{name:<9} median {statistics.median(per_call):6.0f} µs CPU per call  (min {min(per_call):.0f})",
            flush=True,
        )
        if opts.profile:
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(opts.n):
                call()
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
