"""Many clients at once on one partner, through two `ksim serve` processes sharing one database (SQLite file;
PostgreSQL): no lost update, no duplicate subscription, one audit entry per acknowledged change, and the rules'
invariants holding afterwards. How: docs/reliability.md (per-partner row lock / BEGIN IMMEDIATE).

CI runs a short load; ``make reliability`` (KSIM_RELIABILITY=long) a long one.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.databases import backend_params, database_for
from tests.reliability import load
from tests.reliability.figures import record
from tests.reliability.servers import ServeProcess

pytestmark = pytest.mark.wire

LONG = os.environ.get("KSIM_RELIABILITY") == "long"
CLIENTS, OPS = (16, 150) if LONG else (6, 24)


@pytest.fixture(params=backend_params())
def two_servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    url = database_for(request.param, "concurrency", tmp_path)
    with ServeProcess(url, tmp_path, workers=2) as first, ServeProcess(url, tmp_path, workers=2) as second:
        yield [first.url, second.url]


def test_concurrent_changes_on_one_subscription_lose_nothing(
    two_servers: list[str], request: pytest.FixtureRequest
) -> None:
    """SIM-CONC-1 (docs/reliability.md), KORM-QTY-1, KSS-QTY-1, KSS-QTY-3, SIM-CLOCK-1, KSS-AUDIT-1."""
    partner = load.setup_partner(two_servers[0])
    outcome = load.hammer(two_servers, partner, clients=CLIENTS, ops=OPS)

    assert outcome.unexpected == []
    assert outcome.operations == CLIENTS * OPS
    assert sum(outcome.korm_acked.values()) > 0 and sum(outcome.kss_acked.values()) > 0 and outcome.hours_acked > 0

    entries = load.audit(two_servers[1], partner.id)
    korm_changes = [e for e in entries if e["service"] == "korm" and e["action"] == "change_quantity"]
    kss_changes = [e for e in entries if e["service"] == "kss" and e["action"] == "change_license_count"]
    # Every acknowledged change audited exactly once, and no refused one.
    assert collections.Counter(e["details"]["new"] for e in korm_changes) == outcome.korm_acked
    assert collections.Counter(e["details"]["license_count"] for e in kss_changes) == outcome.kss_acked

    # No lost update: each change saw the one before it (old == previous new), the last is in force.
    previous = load.KORM_FIRST
    for entry in korm_changes:
        assert entry["details"]["old"] == previous, entry
        previous = entry["details"]["new"]
    state = load.settled_state(two_servers[0], partner)
    assert state["korm"]["quantity"] == previous
    assert state["kss"]["license_count"] == kss_changes[-1]["details"]["license_count"]

    # The clock moved by exactly the acknowledged hours, and the audit log is in the partner's time order.
    assert load.parse_time(state["clock"]["now"]) == partner.start + dt.timedelta(hours=outcome.hours_acked)
    times = [load.parse_time(e["at"]) for e in entries]
    assert times == sorted(times)
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    record(
        "concurrency",
        backend=request.node.callspec.params["two_servers"],
        servers=len(two_servers),
        clients=CLIENTS,
        operations=outcome.operations,
        korm_changes=sum(outcome.korm_acked.values()),
        kss_changes=sum(outcome.kss_acked.values()),
        clock_hours=outcome.hours_acked,
        refused=dict(outcome.refused),
        lost=0,
    )


def test_concurrent_orders_with_one_idempotency_key_make_one_subscription(two_servers: list[str]) -> None:
    """SIM-IDEM-1 under a race across two server processes: one subscription, every answer its own."""
    partner = load.setup_partner(two_servers[0])
    headers = {"Authorization": f"Bearer {partner.token}", "Idempotency-Key": "race-1"}
    order = {"customer_id": "race-corp", "sku": "KESB-SELECT-PAYG-10-14", "quantity": 12}

    def post(i: int) -> httpx.Response:
        return httpx.post(f"{two_servers[i % 2]}/korm/v1/subscriptions", json=order, headers=headers, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(16)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 15
    listed = httpx.get(
        f"{two_servers[1]}/korm/v1/subscriptions",
        params={"customer_id": "race-corp"},
        headers={"Authorization": f"Bearer {partner.token}"},
    ).json()["items"]
    assert len(listed) == 1


def test_concurrent_activations_of_one_subscriber_make_one_subscription(two_servers: list[str]) -> None:
    """KSS-ACT-1 under a race: one Activate of a SubscriberId wins, the others are refused, one code issued."""
    partner = load.setup_partner(two_servers[0])
    item = (
        '<Activate UnitId="1" SubscriberId="race-kss" StartTime="2026-04-15T09:00:00Z" EndTime="indefinite" '
        'LicenseCount="3" ProductId="KIS"/>'
    )

    def activate(i: int) -> tuple[str, int | None]:
        with httpx.Client(timeout=60) as http:
            return load.soap(http, two_servers[i % 2], partner.kss_user, partner.kss_password, item, f"race-{i}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(activate, range(12)))
    assert answers.count(("Activate", None)) == 1, answers
    assert all(name == "ActivateError" for name, _ in answers if (name, _) != ("Activate", None)), answers
    activations = [
        e for e in load.audit(two_servers[1], partner.id) if e["action"] == "activate" and e["object_id"] == "race-kss"
    ]
    assert len(activations) == 1
