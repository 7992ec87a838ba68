"""``ksim demo``: a scripted walk-through against a real server on a socket, printed for a person to follow."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import zeep
from rich.console import Console
from rich.table import Table

from ksimkit.simulators.app import create_app
from ksimkit.simulators.core.settings import Settings
from ksimkit.simulators.server import InProcessServer

console = Console(width=None if Console().is_terminal else 130)


class Walkthrough:
    def __init__(self, base_url: str, admin_token: str) -> None:
        self.admin = httpx.Client(base_url=f"{base_url}/_sim", headers={"Authorization": f"Bearer {admin_token}"})
        self.base_url = base_url
        self.partner: dict[str, Any] = {}
        self.korm: httpx.Client | None = None

    def step(self, title: str) -> None:
        console.rule(f"[bold]{title}")

    def show(self, response: httpx.Response, expect: int, rule: str | None = None) -> dict[str, Any]:
        """Print the answer; stop unless it has the expected status (and, for a refusal, the expected rule)."""
        body = response.json()
        ok = response.status_code == expect and (rule is None or body.get("rule") == rule)
        colour = "green" if ok else "red"
        request = response.request
        summary = " ".join(str(x) for x in (body.get("code") or body.get("status"), body.get("rule")) if x)
        console.print(f"  {request.method} {request.url.path} -> [{colour}]{response.status_code}[/] {summary}")
        if body.get("detail"):
            console.print(f"    [dim]{body['detail']}[/]")
        if not ok:
            raise SystemExit(
                f"demo: expected {expect}{' ' + rule if rule else ''}, got {response.status_code}: {response.text}"
            )
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
            table.add_row(
                line["subscription_id"],
                line["sku"],
                line["kind"],
                str(line["units"]),
                str(line["days"]),
                line["unit_price"],
                line["gross"],
                line["discount"],
                line["amount"],
            )
        totals = body["totals"]
        table.add_row("total", "", "", "", "", "", totals["gross"], totals["discount"], totals["amount"], style="bold")
        console.print(table)

    def run(self) -> None:
        self.step("1. A partner (a cloud broker) with its own clock, on 15 April 2026")
        self.partner = self.show(self.admin.post("/partners", json={"now": "2026-04-15T09:00:00Z"}), 201)
        console.print(
            f"  partner [bold]{self.partner['name']}[/] ({self.partner['id']}), programme {self.partner['programme']}"
        )
        self.korm = httpx.Client(
            base_url=f"{self.base_url}/korm/v1", headers={"Authorization": f"Bearer {self.partner['token']}"}
        )
        korm = self.korm
        self.show(
            self.admin.post(
                f"/partners/{self.partner['id']}/approval-codes",
                json={"percent": "15", "expires_on": "2026-12-31", "code": "APR-DEMO15"},
            ),
            201,
        )

        self.step("2. Order 25 licences PAYG (KESB Select, band 20-49) with an approval code")
        products = self.show(korm.get("/products", params={"product_id": "KESB-SELECT", "billing_model": "payg"}), 200)
        console.print(
            "  bands: " + ", ".join(f"{p['licence_min']}-{p['licence_max']} @ {p['price']}" for p in products["items"])
        )
        order = {"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25, "approval_code": "APR-DEMO15"}
        sub = self.show(korm.post("/subscriptions", json=order, headers={"Idempotency-Key": "demo-order-1"}), 201)
        console.print(f"  subscription {sub['id']}, activation code [bold]{sub['activation_code']}[/]")
        replay = korm.post("/subscriptions", json=order, headers={"Idempotency-Key": "demo-order-1"})
        console.print(
            f"  retried with the same Idempotency-Key -> {replay.status_code}, "
            f"same id: {replay.json()['id'] == sub['id']}"
        )
        trial = {k: v for k, v in order.items() if k != "approval_code"} | {"trial": True}
        self.show(korm.post("/subscriptions", json=trial), 422, rule="KORM-TRIAL-1")

        self.step("3. 10 May: reduce to 20; 20 May: out of band refused, then switch to band 50-99")
        self.advance("2026-05-10")
        self.show(korm.post(f"/subscriptions/{sub['id']}/quantity", json={"quantity": 20}), 200)
        self.advance("2026-05-20")
        self.show(korm.post(f"/subscriptions/{sub['id']}/quantity", json={"quantity": 60}), 422)
        self.show(
            korm.post(
                f"/subscriptions/{sub['id']}/switch-plan", json={"sku": "KESB-SELECT-PAYG-50-99", "quantity": 60}
            ),
            200,
        )

        self.step("4. A Yearly subscription: increase allowed, decrease and switch refused")
        yearly = self.show(
            korm.post("/subscriptions", json={"customer_id": "globex", "sku": "KESB-ADV-YEARLY-20-49", "quantity": 20}),
            201,
        )
        self.show(korm.post(f"/subscriptions/{yearly['id']}/quantity", json={"quantity": 18}), 409)
        self.show(korm.post(f"/subscriptions/{yearly['id']}/switch-plan", json={"sku": "KESB-ADV-YEARLY-50-99"}), 409)
        self.advance("2026-06-01")
        self.show(korm.post(f"/subscriptions/{yearly['id']}/quantity", json={"quantity": 30}), 200)

        self.step("5. 10 June: stop; the vendor deletes it; reactivation is refused; a new order gets a new code")
        self.advance("2026-06-10")
        self.show(korm.post(f"/subscriptions/{sub['id']}/stop"), 200)
        self.show(korm.post(f"/subscriptions/{sub['id']}/reactivate"), 410)
        self.show(korm.get(f"/subscriptions/{sub['id']}"), 410)
        again = self.show(
            korm.post("/subscriptions", json={"customer_id": "acme", "sku": "KESB-SELECT-PAYG-50-99", "quantity": 60}),
            201,
        )
        console.print(f"  new activation code [bold]{again['activation_code']}[/] (was {sub['activation_code']})")

        self.step("6. The vendor's statements")
        for period in ("2026-04", "2026-05", "2026-06"):
            self.statement(period)
        entries = self.show(self.admin.get(f"/partners/{self.partner['id']}/audit", params={"limit": 1000}), 200)
        console.print(
            f"  audit log: {entries['total']} changes recorded, e.g. "
            f"{entries['items'][0]['actor']} {entries['items'][0]['action']} at {entries['items'][0]['at']}"
        )


KSS = "{http://schemas.kaspersky.com/services/subscription/2.0/}"
EXT = "{http://ksim.dev/kss/3.0/ext}"


class KssWalkthrough(Walkthrough):
    """A service provider's subscriber: trial, paid months, a licence change, pause, soft cancel, reactivation."""

    def send(self, kind: str, **attrs: Any) -> Any:
        """One unit in one container, over SOAP with zeep, as a provider's client sends it."""
        self.units += 1
        factory = (
            self.soap.get_element(EXT + kind)
            if kind.startswith("Change")
            else self.soap.get_type(f"{KSS}SubscriptionRequest{kind}Item")
        )
        items = self.soap.get_type(KSS + "SubscriptionRequestItemCollection")(
            _value_1=[{kind: factory(UnitId=self.units, SubscriberId="home-42", **attrs)}]
        )
        clock = self.admin.get(f"/partners/{self.partner['id']}/clock").json()
        answer = self.soap.service.SubscriptionRequest(
            Timestamp=dt.datetime.fromisoformat(clock["now"].replace("Z", "+00:00")),
            TransactionId=f"demo-{self.units}",
            SubscriptionRequest=items,
            _soapheaders=[self.access],
        )
        if answer.SubscriptionError is not None:
            ((name, [error]),) = answer.SubscriptionError._value_1[0].items()
            console.print(f"  {kind} -> [red]{name} {error.ErrorCode}[/] {error.ErrorMessage}")
            raise SystemExit(f"demo: {kind} was refused")
        ((name, result),) = answer.SubscriptionResponse._value_1[0].items()
        result = result[0] if isinstance(result, list) else result
        console.print(f"  {kind} -> [green]{name}[/]")
        return result

    def info(self) -> None:
        sub = self.send("GetInfo", InfoSection="Subscription").Subscription[0]
        console.print(
            f"    status [bold]{sub.Status}[/], {sub.LicenseCount} licences of {sub.ProductId}, "
            f"code [bold]{sub.ActivationCode}[/]"
        )
        self.codes.add(sub.ActivationCode)

    def bills(self, periods: list[str]) -> None:
        kss_rest = httpx.Client(
            base_url=f"{self.base_url}/kss/v1", headers={"Authorization": f"Bearer {self.partner['token']}"}
        )
        table = Table(title="KSS monthly bills (KSS-BILL-0: each month at its maximum paid count)")
        for column in ("month", "paid days", "charged count", "unit price", "amount"):
            table.add_column(column, justify="right")
        for period in periods:
            bill = kss_rest.get(f"/bills/{period}").json()
            for line in bill["lines"] or [{"paid_days": 0, "charged_count": 0, "unit_price": "-", "amount": "0.00"}]:
                table.add_row(
                    period, str(line["paid_days"]), str(line["charged_count"]), line["unit_price"], line["amount"]
                )
        console.print(table)

    def run(self) -> None:
        self.step("KSS 1. A service provider (xsp programme) on 1 March 2026")
        self.partner = self.show(
            self.admin.post("/partners", json={"programme": "xsp", "now": "2026-03-01T09:00:00Z"}), 201
        )
        self.soap = zeep.Client(f"{self.base_url}/kss/soap/upi?wsdl")
        self.access = self.soap.get_element(KSS + "AccessInfo")(
            UserName=self.partner["kss"]["username"], Password=self.partner["kss"]["password"]
        )
        self.units, self.codes = 0, set[str]()
        self.step("KSS 2. Activate 3 licences of Internet Security with a 30-day trial (KSS-TRIAL-1)")
        self.send(
            "Activate",
            StartTime=dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC),
            EndTime="indefinite",
            LicenseCount=3,
            ProductId="KIS",
            TrialDays=30,
        )
        self.info()
        self.step("KSS 3. 10 April: 5 licences, same activation code (KSS-QTY-1, KSS-CODE-1)")
        self.advance("2026-04-10")
        self.send("ChangeLicenseCount", LicenseCount=5)
        self.info()
        self.step("KSS 4. 3 May: pause until 1 July; it resumes by itself (KSS-PAUSE-1)")
        self.advance("2026-05-03")
        self.send(
            "Pause",
            PauseTime=dt.datetime(2026, 5, 3, tzinfo=dt.UTC),
            ResumeTime=dt.datetime(2026, 7, 1, tzinfo=dt.UTC),
        )
        self.info()
        self.advance("2026-07-02")
        self.info()
        self.step("KSS 5. Soft cancel at the end of July; reactivate in August with the same code (KSS-STOP-1)")
        self.send("SoftCancel", EndTime=dt.datetime(2026, 8, 1, tzinfo=dt.UTC))
        self.advance("2026-08-05")
        self.info()
        self.send("Renew", EndTime="indefinite")
        self.info()
        console.print(f"  activation codes seen: {len(self.codes)} (one for life)")
        self.step("KSS 6. The vendor's bills")
        self.advance("2026-09-01")
        self.bills(["2026-03", "2026-04", "2026-05", "2026-06", "2026-07", "2026-08"])


def run_demo(settings: Settings, *, fresh_database: bool) -> int:
    if fresh_database:
        db = Path(".ksim/demo.db")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        settings = settings.replace(database_url=f"sqlite:///{db}")
    with InProcessServer(create_app(settings)) as server:
        console.print(f"ksim serving on [bold]{server.url}[/] (database {settings.database_url})")
        Walkthrough(server.url, settings.admin_token).run()
        KssWalkthrough(server.url, settings.admin_token).run()
    console.print("[green bold]demo finished: every answer was the vendor's[/]")
    return 0
