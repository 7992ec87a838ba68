"""The reference broker against the real simulator: both on real sockets, in-process; httpx and zeep in between.

``world(...)`` makes a fresh simulator partner (its own clock and data) and a broker tenant bound to it, and
returns a :class:`World` that drives the broker's REST API the way a scenario does, moving both clocks together.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ksimkit.examples.reference_broker.app import create_app as create_broker
from ksimkit.simulators.app import create_app as create_simulator
from ksimkit.simulators.client import KsimAdmin, PartnerHandle
from ksimkit.simulators.core.settings import Settings
from ksimkit.simulators.server import InProcessServer

ADMIN_TOKEN = "test-admin"


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    db = tmp_path_factory.mktemp("ksim") / "state.db"
    with InProcessServer(create_simulator(Settings(database_url=f"sqlite:///{db}", admin_token=ADMIN_TOKEN))) as srv:
        yield srv


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    db = tmp_path_factory.mktemp("broker") / "broker.db"
    with InProcessServer(create_broker(f"sqlite:///{db}", use_env=False)) as srv:
        yield srv


@pytest.fixture(scope="session")
def ksim_admin(simulator: InProcessServer) -> Iterator[KsimAdmin]:
    with KsimAdmin(simulator.url, ADMIN_TOKEN) as admin:
        yield admin


class LossyProxy:
    """A WSGI pass-through to the simulator that loses chosen answers: the request reaches the vendor and takes
    effect, the caller gets a 503 instead of the answer (the "lost answer" of a scenario fault)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.http = httpx.Client(base_url=target, timeout=10)
        self.lose: dict[tuple[str, str], int] = defaultdict(int)  # (method, path) -> answers still to lose
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path, Idempotency-Key)
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        # Host stays: the simulator writes the WSDL's soap:address from it, so zeep posts through the proxy too
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        with self.lock:
            self.seen.append((method, path, headers.get("Idempotency-Key")))
        answer = self.http.request(method, path + (f"?{query}" if query else ""), content=body, headers=headers)
        with self.lock:
            lose = self.lose[(method, path)] > 0
            if lose:
                self.lose[(method, path)] -= 1
        if lose:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"upstream answer lost"]
        passed = [
            (k, v)
            for k, v in answer.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")
        ]
        start_response(f"{answer.status_code} {answer.reason_phrase}", passed)
        return [answer.content]


@pytest.fixture
def lossy_proxy(simulator: InProcessServer) -> Iterator[LossyProxy]:
    proxy = LossyProxy(simulator.url)
    with InProcessServer(proxy) as srv:  # type: ignore[arg-type]
        proxy.url = srv.url  # type: ignore[attr-defined]
        yield proxy


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class World:
    """One simulator partner and one broker tenant bound to it."""

    def __init__(
        self,
        ksim_admin: KsimAdmin,
        broker_url: str,
        *,
        now: str,
        programme: str = "reseller",
        timezone: str = "UTC",
        billing_period: str | None = None,
        prices: dict[str, str] | None = None,
        defects: list[str] | None = None,
        vendor_url: str | None = None,
        legacy: list[dict[str, Any]] | None = None,
        approval_codes: list[dict[str, Any]] | None = None,
        tell_programme: bool = False,
    ) -> None:
        self.partner: PartnerHandle = ksim_admin.create_partner(
            programme=programme,
            timezone=timezone,
            now=now,
            **({"billing_period": billing_period} if billing_period else {}),
        )
        for code in approval_codes or []:
            self.partner.create_approval_code(**code)
        for entry in legacy or []:
            self.partner.seed_legacy_subscription(
                entry["customer"], entry["sku"], entry["quantity"], entry["activation_date"]
            )
        base = vendor_url or self.partner.base_url
        setup: dict[str, Any] = {
            "scenario_id": "test",
            "korm_url": f"{base}/korm/v1",
            "korm_token": self.partner.token,
            "kss_wsdl_url": f"{base}/kss/soap/upi?wsdl",
            "kss_username": self.partner.kss_username,
            "kss_password": self.partner.kss_password,
            "now": _iso(self.partner.clock().now),
            "timezone": timezone,
            "prices": prices or {},
            "defects": defects or [],
        }
        if legacy:
            setup["legacy"] = legacy
        if tell_programme:
            setup.update(programme=programme, billing_period=billing_period or "calendar_month")
        self.http = httpx.Client(base_url=broker_url, timeout=30)
        created = self.http.post("/tenants", json=setup)
        assert created.status_code == 201, created.text
        self.tenant: str = created.json()["id"]
        self.info = created.json()

    # ------------------------------------------------------------------ steps

    def call(self, path: str, body: dict[str, Any] | None = None, *, expect: str | None = "done") -> dict[str, Any]:
        answer = self.http.post(f"/tenants/{self.tenant}{path}", json=body or {})
        result: dict[str, Any] = answer.json()
        if expect is not None:
            assert result.get("outcome") == expect, (path, answer.status_code, result)
        return result

    def order(
        self, ref: str, customer: str, sku: str, quantity: int, approval_code: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        return self.call(
            "/subscriptions",
            {"ref": ref, "customer": customer, "sku": sku, "quantity": quantity, "approval_code": approval_code},
            **kw,
        )

    def quantity(self, ref: str, quantity: int, **kw: Any) -> dict[str, Any]:
        return self.call(f"/subscriptions/{ref}/quantity", {"quantity": quantity}, **kw)

    def activate(
        self, ref: str, customer: str, product: str, count: int, trial_days: int = 0, **kw: Any
    ) -> dict[str, Any]:
        return self.call(
            "/kss/subscriptions",
            {"ref": ref, "customer": customer, "product": product, "count": count, "trial_days": trial_days},
            **kw,
        )

    def count(self, ref: str, count: int, **kw: Any) -> dict[str, Any]:
        return self.call(f"/kss/subscriptions/{ref}/count", {"count": count}, **kw)

    def advance(self, to: str) -> None:
        """Both clocks to 00:00 of ``to`` in the partner's zone, the way the scenario runner moves them."""
        clock = self.partner.advance(to=to)
        answer = self.http.post(f"/tenants/{self.tenant}/clock", json={"now": _iso(clock.now)})
        assert answer.status_code == 200, answer.text

    # ------------------------------------------------------------------ reading

    def sub(self, ref: str) -> dict[str, Any]:
        answer = self.http.get(f"/tenants/{self.tenant}/subscriptions/{ref}")
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def invoice(self, period: str) -> dict[str, Any]:
        answer = self.http.get(f"/tenants/{self.tenant}/invoices/{period}")
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def lines(self, period: str, ref: str | None = None) -> list[dict[str, Any]]:
        return [line for line in self.invoice(period)["lines"] if ref is None or line["ref"] == ref]

    def charged(self, period: str, ref: str) -> tuple[int, Decimal]:
        """(units, amount) of a ref on the broker's invoice of ``period``."""
        lines = self.lines(period, ref)
        return sum(line["units"] for line in lines), sum((Decimal(line["amount"]) for line in lines), Decimal("0"))

    def statement(self, period: str) -> dict[str, Any]:
        with self.partner.korm() as korm:
            result: dict[str, Any] = korm.get(f"/billing/{period}").json()
            return result

    def bill(self, period: str) -> dict[str, Any]:
        with self.partner.kss_rest() as kss:
            result: dict[str, Any] = kss.get(f"/bills/{period}").json()
            return result

    def korm_subscriptions(self, customer: str | None = None) -> list[dict[str, Any]]:
        with self.partner.korm() as korm:
            params = {"include_deleted": "true", **({"customer_id": customer} if customer else {})}
            items: list[dict[str, Any]] = korm.get("/subscriptions", params=params).json()["items"]
            return items

    def reconcile(self, period: str) -> list[tuple[str, Any, Any]]:
        """Per ref, the broker's (units, vendor_cost) against the vendor's (units, amount); the differences."""
        ours: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal("0")])
        for line in self.lines(period):
            ours[line["ref"]][0] += line["units"]
            ours[line["ref"]][1] += Decimal(line["vendor_cost"])
        vendor_ids = {self.sub(ref)["vendor_id"]: ref for ref in ours}
        theirs: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal("0")])
        for line in self.statement(period)["lines"]:
            ref = vendor_ids.get(line["subscription_id"], line["subscription_id"])
            theirs[ref][0] += line["units"]
            theirs[ref][1] += Decimal(line["amount"])
        for line in self.bill(period)["lines"]:
            ref = vendor_ids.get(line["subscriber_id"], line["subscriber_id"])
            theirs[ref][0] += line["charged_count"]
            theirs[ref][1] += Decimal(line["amount"])
        return [
            (ref, tuple(ours.get(ref, (0, 0))), tuple(theirs.get(ref, (0, 0))))
            for ref in sorted(set(ours) | set(theirs))
            if tuple(ours.get(ref, (0, 0))) != tuple(theirs.get(ref, (0, 0)))
        ]


@pytest.fixture
def world(ksim_admin: KsimAdmin, broker: InProcessServer) -> Callable[..., World]:
    made: list[World] = []

    def make(**kwargs: Any) -> World:
        w = World(ksim_admin, broker.url, **kwargs)
        made.append(w)
        return w

    yield make  # type: ignore[misc]
    for w in made:
        w.http.close()
