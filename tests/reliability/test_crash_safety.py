"""Crash safety: `ksim serve` killed with SIGKILL (master and workers at once) in the middle of a write load, then
restarted on the same database (SQLite file; PostgreSQL). Every acknowledged order and activation is there as
acknowledged; nothing is half applied (each subscription has its audit entry and each audit entry its
subscription); a request whose answer was lost, retried with its Idempotency-Key, has its effect once.

CI kills once after a short load; ``make reliability`` (KSIM_RELIABILITY=long) kills several times.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.databases import backend_params, database_for
from tests.reliability import load
from tests.reliability.figures import record
from tests.reliability.servers import ServeProcess

pytestmark = pytest.mark.wire

LONG = os.environ.get("KSIM_RELIABILITY") == "long"
KILLS, LOAD_SECONDS, CLIENTS = (5, 4.0, 6) if LONG else (1, 1.5, 4)
SKU = "KESB-SELECT-PAYG-10-14"


@dataclass
class Ledger:
    """What the clients were told: acknowledged effects, and requests whose outcome they never learnt."""

    orders: dict[str, dict[str, object]] = field(default_factory=dict)  # Idempotency-Key -> the 201 body
    activations: dict[str, str] = field(default_factory=dict)  # SubscriberId -> activation code
    unknown_orders: dict[str, dict[str, object]] = field(default_factory=dict)  # key -> the order sent
    unknown_activations: set[str] = field(default_factory=set)
    answers_lost: int = 0  # of the unknown ones, those sent to a live server (the rest found it down already)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def write_load(
    base: str, partner: load.Partner, ledger: Ledger, stop: threading.Event, round_: int
) -> list[threading.Thread]:
    numbers = itertools.count(1)

    def client(index: int) -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                n = next(numbers)
                if n % 2:
                    key = f"crash-{round_}-{index}-{n}"
                    order = {"customer_id": f"cust-{round_}-{index}-{n}", "sku": SKU, "quantity": 10 + n % 5}
                    try:
                        r = http.post(
                            f"{base}/korm/v1/subscriptions",
                            json=order,
                            headers={"Authorization": f"Bearer {partner.token}", "Idempotency-Key": key},
                        )
                    except httpx.TransportError as exc:
                        with ledger.lock:
                            ledger.unknown_orders[key] = order
                            ledger.answers_lost += not isinstance(exc, httpx.ConnectError)
                        continue
                    with ledger.lock:
                        if r.status_code == 201:
                            ledger.orders[key] = r.json()
                        else:
                            ledger.unexpected.append(f"order {r.status_code}: {r.text[:200]}")
                else:
                    sid = f"kss-{round_}-{index}-{n}"
                    item = (
                        f'<Activate UnitId="1" SubscriberId="{sid}" StartTime="2026-04-15T09:00:00Z" '
                        'EndTime="indefinite" LicenseCount="2" ProductId="KIS"/>'
                    )
                    try:
                        name, code = load.soap(http, base, partner.kss_user, partner.kss_password, item, sid)
                    except (httpx.TransportError, RuntimeError) as exc:
                        with ledger.lock:
                            ledger.unknown_activations.add(sid)
                            ledger.answers_lost += not isinstance(exc, httpx.ConnectError)
                        continue
                    with ledger.lock:
                        if (name, code) == ("Activate", None):
                            ledger.activations[sid] = ""  # the code is read back below, from GetInfo's answer
                        else:
                            ledger.unexpected.append(f"activate {name} {code}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    return threads


@pytest.mark.parametrize("backend", backend_params())
def test_sigkill_under_write_load_loses_no_acknowledged_change(backend: str, tmp_path: Path) -> None:
    """SIM-CRASH-1 (docs/reliability.md), SIM-IDEM-1, KSS-ACT-1, KSS-AUDIT-1."""
    url = database_for(backend, "crash", tmp_path)
    server = ServeProcess(url, tmp_path, workers=2).start()
    partner = load.setup_partner(server.url)
    ledger = Ledger()
    try:
        for round_ in range(KILLS):
            stop = threading.Event()
            threads = write_load(server.url, partner, ledger, stop, round_)
            time.sleep(LOAD_SECONDS)
            server.kill()  # mid-write: the clients are still sending
            stop.set()
            for t in threads:
                t.join()
            server = ServeProcess(url, tmp_path, workers=2).start()
        assert ledger.unexpected == []
        assert ledger.orders and ledger.activations
        check_after_restart(server.url, partner, ledger)
        record(
            "crash",
            backend=backend,
            kills=KILLS,
            clients=CLIENTS,
            acknowledged_orders=len(ledger.orders),
            acknowledged_activations=len(ledger.activations),
            unknown_orders=len(ledger.unknown_orders),
            unknown_activations=len(ledger.unknown_activations),
            answers_lost_in_flight=ledger.answers_lost,
            lost=0,
        )
    finally:
        server.stop()


def check_after_restart(base: str, partner: load.Partner, ledger: Ledger) -> None:
    korm = {"Authorization": f"Bearer {partner.token}"}
    with httpx.Client(base_url=base, timeout=60) as http:
        # Every acknowledged order is there, as acknowledged.
        for body in ledger.orders.values():
            got = http.get(f"/korm/v1/subscriptions/{body['id']}", headers=korm)
            assert got.status_code == 200, got.text
            assert {k: got.json()[k] for k in ("customer_id", "sku", "quantity")} == {
                k: body[k] for k in ("customer_id", "sku", "quantity")
            }
        # Every acknowledged activation is there, with one code for ever.
        for sid in ledger.activations:
            got = http.get(f"/kss/v1/subscriptions/{sid}", headers=korm)
            assert got.status_code == 200, got.text
        # Nothing half applied: subscriptions and their audit entries match one to one.
        entries = load.audit(base, partner.id)
        audited_orders = {e["object_id"] for e in entries if e["action"] == "order"}
        listed = {
            s["id"]
            for s in http.get("/korm/v1/subscriptions", headers=korm, params={"include_deleted": "true"}).json()[
                "items"
            ]
        }
        assert listed == audited_orders
        for sid in {e["object_id"] for e in entries if e["action"] == "activate"}:
            assert http.get(f"/kss/v1/subscriptions/{sid}", headers=korm).status_code == 200
        # A lost answer, retried with its key, has its effect once: one subscription per key in all.
        for key, order in ledger.unknown_orders.items():
            retry = http.post("/korm/v1/subscriptions", json=order, headers={**korm, "Idempotency-Key": key})
            assert retry.status_code == 201, retry.text
        listed = http.get("/korm/v1/subscriptions", headers=korm, params={"include_deleted": "true"}).json()["items"]
        expected = len(ledger.orders) + len(ledger.unknown_orders) + 1  # + the setup's own order
        assert len(listed) == expected
        assert len({s["customer_id"] for s in listed}) == expected
        # A lost activation either happened (the subscriber exists, audited) or not (it can be made now).
        for sid in ledger.unknown_activations:
            item = (
                f'<Activate UnitId="1" SubscriberId="{sid}" StartTime="2026-04-15T09:00:00Z" '
                'EndTime="indefinite" LicenseCount="2" ProductId="KIS"/>'
            )
            name, _code = load.soap(http, base, partner.kss_user, partner.kss_password, item, sid + "-retry")
            assert name in ("Activate", "ActivateError")
            assert http.get(f"/kss/v1/subscriptions/{sid}", headers=korm).status_code == 200
        final = load.audit(base, partner.id)
        assert sum(e["action"] == "activate" for e in final) == len(
            {e["object_id"] for e in final if e["action"] == "activate"}
        )
