"""``ksim demo``: a scripted walk-through against a real server on a socket, printed for a person to follow."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from simulators.app import create_app
from simulators.core.settings import Settings
from simulators.server import InProcessServer

console = Console(width=None if Console().is_terminal else 130)


class Walkthrough:
    def __init__(self, base_url: str, admin_token: str) -> None:
        self.admin = httpx.Client(base_url=f"{base_url}/_sim", headers={"Authorization": f"Bearer {admin_token}"})
        self.base_url = base_url
        self.partner: dict[str, Any] = {}
        self.korm: httpx.Client | None = None

    def step(self, title: str) -> None:
        console.rule(f"[bold]{title}")

    def show(self, response: httpx.Response, expect: int) -> dict[str, Any]:
        body = response.json()
        ok = response.status_code == expect
        colour = "green" if ok else "red"
        request = response.request
        summary = body.get("code") or body.get("status") or ""
        console.print(f"  {request.method} {request.url.path} -> [{colour}]{response.status_code}[/] {summary}")
        if body.get("detail"):
            console.print(f"    [dim]{body['detail']}[/]")
        if not ok:
            raise SystemExit(f"demo: expected {expect}, got {response.status_code}: {response.text}")
        return body

    def advance(self, day: str) -> None:
        clock = self.show(self.admin.post(f"/partners/{self.partner['id']}/clock/advance", json={"to": day}), 200)
        console.print(f"  partner clock is now [bold]{clock['today']}[/]")

    def statement(self, period: str) -> None:
        assert self.korm is not None
        body = self.show(self.korm.get(f"/billing/{period}"), 200)
        table = Table(title=f"KORM vendor statement {period}" + (" (provisional)" if body["provisional"] else ""))
        for column in ("subscription", "sku", "kind", "units", "days", "unit price", "gross", "discount", "amount"):
            table.add_column(column, justify="right" if column not in ("subscription", "sku", "kind") else "left")
        for line in body["lines"]:
            table.add_row(line["subscription_id"], line["sku"], line["kind"], str(line["units"]), str(line["days"]),
                          line["unit_price"], line["gross"], line["discount"], line["amount"])
        totals = body["totals"]
        table.add_row("total", "", "", "", "", "", totals["gross"], totals["discount"], totals["amount"], style="bold")
        console.print(table)

    def run(self) -> None:
        self.step("1. A partner (a cloud broker) with its own clock, on 15 April 2026")
        self.partner = self.show(self.admin.post("/partners", json={"now": "2026-04-15T09:00:00Z"}), 201)
        console.print(f"  partner [bold]{self.partner['name']}[/] ({self.partner['id']}), programme {self.partner['programme']}")
        self.korm = httpx.Client(base_url=f"{self.base_url}/korm/v1",
                                 headers={"Authorization": f"Bearer {self.partner['token']}"})
        korm = self.korm
        self.show(self.admin.post(f"/partners/{self.partner['id']}/approval-codes",
                                  json={"percent": "15", "expires_on": "2026-12-31", "code": "APR-DEMO15"}), 201)

        self.step("2. Order 25 licences PAYG (KESB Select, band 20-49) with an approval code")
        products = self.show(korm.get("/products", params={"product_id": "KESB-SELECT", "billing_model": "payg"}), 200)
        console.print("  bands: " + ", ".join(f"{p['licence_min']}-{p['licence_max']} @ {p['price']}" for p in products["items"]))
        order = {"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25, "approval_code": "APR-DEMO15"}
        sub = self.show(korm.post("/subscriptions", json=order, headers={"Idempotency-Key": "demo-order-1"}), 201)
        console.print(f"  subscription {sub['id']}, activation code [bold]{sub['activation_code']}[/]")
        replay = korm.post("/subscriptions", json=order, headers={"Idempotency-Key": "demo-order-1"})
        console.print(f"  retried with the same Idempotency-Key -> {replay.status_code}, same id: {replay.json()['id'] == sub['id']}")
        self.show(korm.post("/subscriptions", json={**order, "approval_code": None, "trial": True}), 422)

        self.step("3. 10 May: reduce to 20; 20 May: out of band refused, then switch to band 50-99")
        self.advance("2026-05-10")
        self.show(korm.post(f"/subscriptions/{sub['id']}/quantity", json={"quantity": 20}), 200)
        self.advance("2026-05-20")
        self.show(korm.post(f"/subscriptions/{sub['id']}/quantity", json={"quantity": 60}), 422)
        self.show(korm.post(f"/subscriptions/{sub['id']}/switch-plan", json={"sku": "KESB-SELECT-PAYG-50-99", "quantity": 60}), 200)

        self.step("4. A Yearly subscription: increase allowed, decrease and switch refused")
        yearly = self.show(korm.post("/subscriptions", json={"customer_id": "globex", "sku": "KESB-ADV-YEARLY-20-49", "quantity": 20}), 201)
        self.show(korm.post(f"/subscriptions/{yearly['id']}/quantity", json={"quantity": 18}), 409)
        self.show(korm.post(f"/subscriptions/{yearly['id']}/switch-plan", json={"sku": "KESB-ADV-YEARLY-50-99"}), 409)
        self.advance("2026-06-01")
        self.show(korm.post(f"/subscriptions/{yearly['id']}/quantity", json={"quantity": 30}), 200)

        self.step("5. 10 June: stop; the vendor deletes it; reactivation is refused; a new order gets a new code")
        self.advance("2026-06-10")
        self.show(korm.post(f"/subscriptions/{sub['id']}/stop"), 200)
        self.show(korm.post(f"/subscriptions/{sub['id']}/reactivate"), 410)
        self.show(korm.get(f"/subscriptions/{sub['id']}"), 410)
        again = self.show(korm.post("/subscriptions", json={"customer_id": "acme", "sku": "KESB-SELECT-PAYG-50-99", "quantity": 60}), 201)
        console.print(f"  new activation code [bold]{again['activation_code']}[/] (was {sub['activation_code']})")

        self.step("6. The vendor's statements")
        for period in ("2026-04", "2026-05", "2026-06"):
            self.statement(period)
        entries = self.show(self.admin.get(f"/partners/{self.partner['id']}/audit", params={"limit": 1000}), 200)
        console.print(f"  audit log: {entries['total']} changes recorded, e.g. "
                      f"{entries['items'][0]['actor']} {entries['items'][0]['action']} at {entries['items'][0]['at']}")


def run_demo(settings: Settings, *, fresh_database: bool) -> int:
    if fresh_database:
        db = Path(".ksim/demo.db")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        settings = settings.replace(database_url=f"sqlite:///{db}")
    with InProcessServer(create_app(settings)) as server:
        console.print(f"ksim serving on [bold]{server.url}[/] (database {settings.database_url})")
        Walkthrough(server.url, settings.admin_token).run()
    console.print("[green bold]demo finished: every answer was the vendor's[/]")
    return 0
