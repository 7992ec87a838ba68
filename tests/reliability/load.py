"""Concurrent load on one partner through several `ksim serve` processes, and what must hold afterwards.

``hammer`` runs ``clients`` threads of ``ops`` operations each on ONE KORM subscription, ONE KSS subscription
and the partner's clock, each operation through the next server in turn: a KORM quantity change, a KSS
ext:ChangeLicenseCount, or a one-hour clock advance. It keeps what was acknowledged. ``Outcome`` then says
what the simulator must show: every acknowledged change audited once and nothing else, the last audited values
in force, the clock moved by exactly the acknowledged hours.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
from lxml import etree

from tests.reliability.servers import ADMIN
from tests.wire.conftest import ENDPOINT, KSS, SAFE, SOAP_ACTION, envelope

KORM_SKU = "KESB-SELECT-PAYG-500-999"  # a wide licence band: many distinct quantities on one subscription
KORM_FIRST = 500
KSS_FIRST = 5


def korm_quantity(n: int) -> int:
    return 500 + (n * 7 + 1) % 500  # 501, 508, ...: seldom the one in force (refused if it is)


def kss_count(n: int) -> int:
    return 6 + (n * 11) % 400


@dataclass
class Partner:
    id: str
    token: str
    kss_user: str
    kss_password: str
    korm_subscription: str
    kss_subscriber: str
    start: dt.datetime


def setup_partner(base: str, *, now: str = "2026-04-15T09:00:00Z") -> Partner:
    with httpx.Client(base_url=base, timeout=30) as http:
        created = http.post("/_sim/partners", json={"now": now, "programme": "xsp"}, headers=ADMIN)
        assert created.status_code == 201, created.text
        p = created.json()
        korm = http.post(
            "/korm/v1/subscriptions",
            headers={"Authorization": f"Bearer {p['token']}"},
            json={"customer_id": "hammer-corp", "sku": KORM_SKU, "quantity": KORM_FIRST},
        )
        assert korm.status_code == 201, korm.text
        item = (
            f'<Activate UnitId="1" SubscriberId="hammer-kss" StartTime="{now}" EndTime="indefinite" '
            f'LicenseCount="{KSS_FIRST}" ProductId="KIS"/>'
        )
        answer = soap(http, base, p["kss"]["username"], p["kss"]["password"], item, "setup-1")
        assert answer == ("Activate", None), answer
    return Partner(
        p["id"],
        p["token"],
        p["kss"]["username"],
        p["kss"]["password"],
        korm.json()["id"],
        "hammer-kss",
        dt.datetime.fromisoformat(now.replace("Z", "+00:00")),
    )


def soap(http: httpx.Client, base: str, user: str, password: str, item: str, txn: str) -> tuple[str, int | None]:
    """(the answer item's name, its ErrorCode or None); raises on anything but a SOAP answer."""
    response = http.post(
        base + ENDPOINT,
        content=envelope(item, txn=txn, username=user, password=password).encode(),
        headers={"SOAPAction": f'"{SOAP_ACTION}"', "Content-Type": "text/xml; charset=utf-8"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"SOAP answered {response.status_code}: {response.text[:300]}")
    root = etree.fromstring(response.content, SAFE)
    for part in ("SubscriptionResponse", "SubscriptionError"):
        holder = root.find(f".//{{{KSS}}}{part}")
        if holder is not None and len(holder):
            el = holder[0]
            code = el.get("ErrorCode")
            return etree.QName(el).localname, None if code is None else int(code)
    raise RuntimeError(f"no answer item: {response.text[:300]}")


@dataclass
class Outcome:
    korm_acked: collections.Counter[int] = field(default_factory=collections.Counter)
    kss_acked: collections.Counter[int] = field(default_factory=collections.Counter)
    hours_acked: int = 0
    refused: collections.Counter[str] = field(default_factory=collections.Counter)  # business refusals, by code
    unexpected: list[str] = field(default_factory=list)  # 5xx, transport errors, malformed answers
    operations: int = 0


def hammer(bases: list[str], partner: Partner, *, clients: int, ops: int) -> Outcome:
    outcome = Outcome()
    lock = threading.Lock()
    numbers = itertools.count(1)
    korm_headers = {"Authorization": f"Bearer {partner.token}"}

    def client(index: int) -> None:
        with httpx.Client(timeout=60) as http:
            for step in range(ops):
                n = next(numbers)
                base = bases[(index + step) % len(bases)]
                kind = (index + step) % 3
                try:
                    if kind == 0:
                        quantity = korm_quantity(n)
                        r = http.post(
                            f"{base}/korm/v1/subscriptions/{partner.korm_subscription}/quantity",
                            json={"quantity": quantity},
                            headers=korm_headers,
                        )
                        ok = r.status_code == 200
                        with lock:
                            if ok:
                                outcome.korm_acked[quantity] += 1
                            elif r.status_code < 500:
                                outcome.refused[f"korm {r.status_code} {r.json().get('code')}"] += 1
                            else:
                                outcome.unexpected.append(f"korm {r.status_code}: {r.text[:200]}")
                    elif kind == 1:
                        count = kss_count(n)
                        item = (
                            f'<ext:ChangeLicenseCount UnitId="1" SubscriberId="{partner.kss_subscriber}" '
                            f'LicenseCount="{count}"/>'
                        )
                        name, code = soap(http, base, partner.kss_user, partner.kss_password, item, f"hammer-{n}")
                        with lock:
                            if name == "ChangeLicenseCountResult":
                                outcome.kss_acked[count] += 1
                            else:
                                outcome.refused[f"kss {name} {code}"] += 1
                    else:
                        r = http.post(
                            f"{base}/_sim/partners/{partner.id}/clock/advance", json={"hours": 1}, headers=ADMIN
                        )
                        with lock:
                            if r.status_code == 200:
                                outcome.hours_acked += 1
                            else:
                                outcome.unexpected.append(f"advance {r.status_code}: {r.text[:200]}")
                except Exception as exc:  # noqa: BLE001  (what went wrong is the finding)
                    with lock:
                        outcome.unexpected.append(f"{type(exc).__name__}: {exc}")
                with lock:
                    outcome.operations += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcome


def audit(base: str, partner_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    with httpx.Client(base_url=base, headers=ADMIN, timeout=60) as http:
        while True:
            page = http.get(f"/_sim/partners/{partner_id}/audit", params={"limit": 1000, "offset": len(entries)})
            assert page.status_code == 200, page.text
            items = page.json()["items"]
            entries.extend(items)
            if not items:
                return entries


def settled_state(base: str, partner: Partner) -> dict[str, Any]:
    """What the simulator shows once the load is over."""
    with httpx.Client(base_url=base, timeout=60) as http:
        korm = http.get(
            f"/korm/v1/subscriptions/{partner.korm_subscription}", headers={"Authorization": f"Bearer {partner.token}"}
        )
        assert korm.status_code == 200, korm.text
        kss = http.get(
            f"/kss/v1/subscriptions/{partner.kss_subscriber}", headers={"Authorization": f"Bearer {partner.token}"}
        )
        assert kss.status_code == 200, kss.text
        clock = http.get(f"/_sim/partners/{partner.id}/clock", headers=ADMIN)
        assert clock.status_code == 200, clock.text
    return {"korm": korm.json(), "kss": kss.json(), "clock": clock.json()}


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


__all__ = ["Outcome", "Partner", "audit", "hammer", "parse_time", "settled_state", "setup_partner", "soap"]
