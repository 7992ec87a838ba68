"""A small broker for the runner's tests: it talks to the real simulator (KORM over httpx, KSS over zeep) the
way a correct broker does, and bills its customers from the vendor's own statements (so it is right by
construction). ``defects`` switches on deliberate mistakes, to see the runner catch them."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from decimal import Decimal
from typing import Any

import httpx

from ksimkit.scenarios.brokers.base import Charge, StepResult, TenantSetup, UnsupportedBroker

KSS = "{http://schemas.kaspersky.com/services/subscription/2.0/}"
EXT = "{http://ksim.dev/kss/3.0/ext}"
UTC = dt.UTC


class ScriptedBroker(UnsupportedBroker):
    def __init__(self, defects: frozenset[str] = frozenset(), *, kss: bool = True) -> None:
        self.defects = defects
        self.kss_enabled = kss
        self.tenant: TenantSetup | None = None
        self.now: dt.datetime | None = None
        self.subs: dict[str, dict[str, Any]] = {}  # ref -> {vendor_id, code, customer}
        self.korm: httpx.Client | None = None
        self._soap: Any = None
        self._units = itertools.count(1)

    # -- tenant --

    def start(self, tenant: TenantSetup) -> None:
        self.tenant = tenant
        self.now = tenant.now
        self.korm = httpx.Client(
            base_url=tenant.korm_url, headers={"Authorization": f"Bearer {tenant.korm_token}"}, timeout=10
        )
        for legacy in tenant.legacy:
            self.subs[legacy.ref] = {
                "vendor_id": legacy.vendor_id,
                "code": legacy.activation_code,
                "customer": legacy.customer,
            }

    def stop_tenant(self) -> None:
        if self.korm is not None:
            self.korm.close()

    def advance_clock(self, to: dt.datetime) -> None:
        self.now = to

    def activation_code(self, ref: str) -> str | None:
        sub = self.subs.get(ref)
        return sub["code"] if sub else None

    # -- KORM --

    def _korm(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        assert self.korm is not None
        headers = {"Idempotency-Key": str(uuid.uuid4())} if method == "POST" else {}
        response = self.korm.request(method, path, json=body, headers=headers)
        if response.status_code >= 500:  # a lost answer: retry once with the same key
            if "retry_without_key" in self.defects:
                headers = {"Idempotency-Key": str(uuid.uuid4())}
            response = self.korm.request(method, path, json=body, headers=headers)
        return response

    @staticmethod
    def _refused(response: httpx.Response) -> StepResult:
        body = response.json()
        return StepResult("refused", code=body.get("code"), message=body.get("detail"))

    def order(self, ref: str, customer: str, sku: str, quantity: int, approval_code: str | None = None) -> StepResult:
        body: dict[str, Any] = {"customer_id": customer, "sku": sku, "quantity": quantity}
        if approval_code:
            body["approval_code"] = approval_code
        response = self._korm("POST", "/subscriptions", body)
        if response.is_error:
            return self._refused(response)
        sub = response.json()
        self.subs[ref] = {"vendor_id": sub["id"], "code": sub["activation_code"], "customer": customer}
        return StepResult("done", activation_code=sub["activation_code"])

    def change_quantity(self, ref: str, quantity: int) -> StepResult:
        response = self._korm("POST", f"/subscriptions/{self.subs[ref]['vendor_id']}/quantity", {"quantity": quantity})
        return self._refused(response) if response.is_error else StepResult("done")

    def switch_plan(self, ref: str, sku: str, quantity: int | None = None) -> StepResult:
        body: dict[str, Any] = {"sku": sku}
        if quantity is not None:
            body["quantity"] = quantity
        response = self._korm("POST", f"/subscriptions/{self.subs[ref]['vendor_id']}/switch-plan", body)
        return self._refused(response) if response.is_error else StepResult("done")

    def stop(self, ref: str) -> StepResult:
        response = self._korm("POST", f"/subscriptions/{self.subs[ref]['vendor_id']}/stop")
        return self._refused(response) if response.is_error else StepResult("done")

    def reactivate(self, ref: str) -> StepResult:
        if self.tenant is not None and self.subs[ref].get("kss"):
            return self._kss(ref, "Renew", EndTime="indefinite")
        response = self._korm("POST", f"/subscriptions/{self.subs[ref]['vendor_id']}/reactivate")
        if response.is_error and "reactivate_done" in self.defects:
            return StepResult("done")
        return self._refused(response) if response.is_error else StepResult("done")

    def migrate(self) -> StepResult:
        response = self._korm("POST", "/migrations", {})
        return self._refused(response) if response.is_error else StepResult("done")

    # -- KSS --

    def _client(self) -> Any:
        if not self.kss_enabled:
            raise NotImplementedError("this broker speaks KORM only")
        if self._soap is None:
            import zeep

            assert self.tenant is not None
            self._soap = zeep.Client(self.tenant.kss_wsdl_url)
            self._access = self._soap.get_element(KSS + "AccessInfo")(
                UserName=self.tenant.kss_username, Password=self.tenant.kss_password
            )
        return self._soap

    def _kss(self, ref: str, kind: str, **attrs: Any) -> StepResult:
        client = self._client()
        factory = (
            client.get_element(EXT + kind)
            if kind.startswith("Change")
            else client.get_type(f"{KSS}SubscriptionRequest{kind}Item")
        )
        items = client.get_type(KSS + "SubscriptionRequestItemCollection")(
            _value_1=[{kind: factory(UnitId=next(self._units), SubscriberId=self.subs[ref]["vendor_id"], **attrs)}]
        )
        answer = client.service.SubscriptionRequest(
            Timestamp=self.now, TransactionId=str(uuid.uuid4()), SubscriptionRequest=items, _soapheaders=[self._access]
        )
        if answer.TransactionError is not None:
            return StepResult(
                "refused", code=str(answer.TransactionError.ErrorCode), message=answer.TransactionError.ErrorMessage
            )
        if answer.SubscriptionError is not None:
            ((_, [error]),) = answer.SubscriptionError._value_1[0].items()
            return StepResult("refused", code=str(error.ErrorCode), message=error.ErrorMessage)
        ((_, result),) = answer.SubscriptionResponse._value_1[0].items()
        result = result[0] if isinstance(result, list) else result
        return StepResult("done", activation_code=getattr(result, "ActivationCode", None))

    def activate(self, ref: str, customer: str, product: str, count: int, trial_days: int = 0) -> StepResult:
        self._client()
        self.subs[ref] = {"vendor_id": f"{customer}-{ref}", "code": None, "customer": customer, "kss": True}
        attrs: dict[str, Any] = {
            "StartTime": self.now,
            "EndTime": "indefinite",
            "LicenseCount": count,
            "ProductId": product,
            "CustomerId": customer,
        }
        if trial_days:
            attrs["TrialDays"] = trial_days
        result = self._kss(ref, "Activate", **attrs)
        if result.outcome == "done":
            self.subs[ref]["code"] = result.activation_code
        else:
            del self.subs[ref]
        return result

    def change_count(self, ref: str, count: int) -> StepResult:
        return self._kss(ref, "ChangeLicenseCount", LicenseCount=count)

    def change_product(self, ref: str, product: str) -> StepResult:
        return self._kss(ref, "ChangeProduct", ProductId=product)

    def pause(self, ref: str, until: dt.datetime | None = None) -> StepResult:
        attrs: dict[str, Any] = {"PauseTime": self.now}
        if until is not None:
            attrs["ResumeTime"] = until
        return self._kss(ref, "Pause", **attrs)

    def resume(self, ref: str) -> StepResult:
        return self._kss(ref, "Resume")

    def cancel_at_month_end(self, ref: str, month: str) -> StepResult:
        year, mon = (int(x) for x in month.split("-"))
        end = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
        return self._kss(ref, "SoftCancel", EndTime=end)

    def hard_cancel(self, ref: str) -> StepResult:
        return self._kss(ref, "HardCancel", EndTime=self.now)

    # -- billing: the vendor's statement, line by line --

    def charges(self, period: str) -> list[Charge]:
        assert self.tenant is not None and self.korm is not None
        by_vendor_id = {sub["vendor_id"]: (ref, sub) for ref, sub in self.subs.items()}
        if any(sub.get("kss") for sub in self.subs.values()):
            base = self.tenant.korm_url.rsplit("/korm/", 1)[0]
            with httpx.Client(
                base_url=base + "/kss/v1", headers={"Authorization": f"Bearer {self.tenant.korm_token}"}, timeout=10
            ) as rest:
                lines = rest.get(f"/bills/{period}").json()["lines"]
            id_key, units_key = "subscriber_id", "charged_count"
        else:
            lines = self.korm.get(f"/billing/{period}").json()["lines"]
            id_key, units_key = "subscription_id", "units"
        out = []
        for line in lines:
            if line[id_key] not in by_vendor_id:
                continue
            ref, sub = by_vendor_id[line[id_key]]
            units = int(line[units_key]) + (1 if "extra_unit" in self.defects else 0)
            out.append(
                Charge(
                    period=period,
                    customer=sub["customer"],
                    ref=ref,
                    units=units,
                    amount=Decimal(line["gross"]),
                    vendor_cost=Decimal(line["amount"]),
                )
            )
        return out


class KormOnlyBroker(ScriptedBroker):
    def __init__(self, defects: frozenset[str] = frozenset()) -> None:
        super().__init__(defects, kss=False)
