"""The broker's tenants, and what every step stands on: a tenant's lock, its vendor clients, its local records.

One lock per tenant serialises its steps: read the local state, call the vendor (no database transaction is held
open meanwhile), record what the vendor accepted in the local change history. A vendor's refusal becomes the step's
``refused`` answer; the broker's own refusals are :class:`BrokerError`.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.examples.reference_broker import billing
from ksimkit.examples.reference_broker import defects as defect_list
from ksimkit.examples.reference_broker.billing import LEGACY, PAYG, Snapshot
from ksimkit.examples.reference_broker.errors import BrokerError, VendorRefused, VendorUnavailable
from ksimkit.examples.reference_broker.korm import KormClient, default_tls
from ksimkit.examples.reference_broker.kss import KssClient
from ksimkit.examples.reference_broker.outcomes import Step, refused
from ksimkit.examples.reference_broker.store import Store, changes, iso, parse_instant, subscriptions, tenants

UTC = dt.UTC
ACTOR = "reference-broker"


@dataclass
class Tenant:
    id: str
    row: Any
    defects: frozenset[str]
    now: dt.datetime
    zone: ZoneInfo
    prices: billing.Prices

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.zone).date()

    def defect(self, name: str) -> bool:
        assert name in defect_list.DEFECTS, name
        return name in self.defects


@dataclass
class TenantLocks:
    """One lock per tenant, made on first use."""

    guard: threading.Lock = field(default_factory=threading.Lock)
    by_tenant: dict[str, threading.Lock] = field(default_factory=dict)

    def __call__(self, tenant_id: str) -> threading.Lock:
        with self.guard:
            return self.by_tenant.setdefault(tenant_id, threading.Lock())


def _parse_price(value: Any, what: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise BrokerError(422, "VALIDATION_ERROR", f"{what}: {value!r} is not a number") from None
    if not result.is_finite() or result < 0:
        raise BrokerError(422, "VALIDATION_ERROR", f"{what}: {value!r} is not a price")
    return result


def parse_moment(value: Any, zone: ZoneInfo, what: str) -> dt.datetime:
    """RFC 3339 with Z or an offset; a zone-less time or a bare date (00:00) in the tenant's zone."""
    if not isinstance(value, str) or not value:
        raise BrokerError(422, "VALIDATION_ERROR", f"{what}: a date or date-time string is required")
    try:
        if len(value) == 10:
            return billing.local_midnight(dt.date.fromisoformat(value), zone)
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BrokerError(422, "VALIDATION_ERROR", f"{what}: {value!r} is not a date or date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


class TenantDesk:
    """Tenants (create, read, stop), their vendor clients, and the local records the steps read and write; the
    steps (``korm_steps``, ``kss_steps``) and invoicing build on it."""

    def __init__(self, store: Store, defects: frozenset[str] = frozenset()) -> None:
        self.store = store
        self.defects = defect_list.parse(defects)
        self._lock = TenantLocks()
        self._korm: dict[str, KormClient] = {}
        self._korm_guard = threading.Lock()

    # ================================================================== tenants

    def create_tenant(self, body: dict[str, Any]) -> dict[str, Any]:
        required = ("korm_url", "korm_token", "kss_wsdl_url", "kss_username", "kss_password", "now")
        missing = [name for name in required if not isinstance(body.get(name), str) or not body[name]]
        if missing:
            raise BrokerError(422, "VALIDATION_ERROR", f"missing or not a string: {', '.join(missing)}")
        timezone = body.get("timezone") or "UTC"
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise BrokerError(422, "VALIDATION_ERROR", f"timezone: unknown zone {timezone!r}") from None
        now = parse_moment(body["now"], zone, "now")
        prices = body.get("prices") or {}
        if not isinstance(prices, dict):
            raise BrokerError(422, "VALIDATION_ERROR", "prices: an object of SKU or product -> price is required")
        prices = {str(k): str(_parse_price(v, f"prices.{k}")) for k, v in prices.items()}
        try:
            own_defects = sorted(defect_list.parse(body.get("defects") or []))
        except ValueError as exc:
            raise BrokerError(422, "UNKNOWN_DEFECT", str(exc)) from None
        programme, billing_period = body.get("programme"), body.get("billing_period")
        if programme not in (None, "xsp", "reseller", "msp"):
            raise BrokerError(422, "VALIDATION_ERROR", "programme: xsp, reseller or msp")
        if billing_period not in (None, billing.CALENDAR_MONTH, billing.THIRTY_DAYS):
            raise BrokerError(422, "VALIDATION_ERROR", "billing_period: calendar_month or 30_days")
        kss_rest_url = body.get("kss_rest_url") or _kss_rest_url(body["kss_wsdl_url"])
        tenant_id = "tnt_" + secrets.token_hex(8)
        korm = KormClient(body["korm_url"], body["korm_token"], actor=ACTOR)
        try:
            catalog = {
                p["sku"]: {"price": p["price"], "billing_model": p["billing_model"], "product_id": p["product_id"]}
                for p in korm.products()
            }
            if programme is None or billing_period is None:  # what the vendor has on file for us
                answer = httpx.get(
                    f"{kss_rest_url}/bills/{billing.period_of(now.astimezone(zone).date())}",
                    headers={"Authorization": f"Bearer {body['korm_token']}"},
                    timeout=10,
                    verify=default_tls(),
                )
                answer.raise_for_status()
                programme = programme or answer.json()["programme"]
                billing_period = billing_period or answer.json()["billing_period"]
            vendor_subs = korm.subscriptions(include_deleted=True)
        except (VendorRefused, VendorUnavailable, httpx.HTTPError) as exc:
            raise BrokerError(
                502, "VENDOR_UNAVAILABLE", f"could not read the vendor's catalog or settings: {exc}"
            ) from None
        finally:
            korm.close()
        with self.store.begin() as conn:
            conn.execute(
                sa.insert(tenants).values(
                    id=tenant_id,
                    scenario_id=str(body.get("scenario_id") or ""),
                    korm_url=body["korm_url"],
                    korm_token=body["korm_token"],
                    kss_wsdl_url=body["kss_wsdl_url"],
                    kss_username=body["kss_username"],
                    kss_password=body["kss_password"],
                    kss_rest_url=kss_rest_url,
                    now=iso(now),
                    timezone=timezone,
                    prices=prices,
                    korm_catalog=catalog,
                    programme=programme,
                    billing_period=billing_period,
                    defects=own_defects,
                    closed_through=None,
                    stopped=False,
                    created_at=iso(now),
                )
            )
            names = body.get("legacy") or []
            for vendor_sub in vendor_subs:  # subscriptions made before the broker took over (legacy ones)
                self._import_korm(conn, tenant_id, vendor_sub, names, now)
        return self.tenant_json(tenant_id)

    def _import_korm(
        self, conn: Connection, tenant_id: str, sub: dict[str, Any], names: list[dict[str, Any]], now: dt.datetime
    ) -> str:
        """Take over a subscription the vendor already holds; named by the ``legacy`` list when it matches."""
        ref = sub.get("external_ref") or sub["id"]
        for entry in names:
            if entry.get("vendor_id") == sub["id"] or (
                entry.get("vendor_id") is None
                and entry.get("customer") == sub["customer_id"]
                and entry.get("sku") == sub["sku"]
                and str(entry.get("activation_date")) == sub["activation_date"]
                and entry.get("_taken") is None
            ):
                entry["_taken"] = True
                ref = str(entry["ref"])
                break
        model = LEGACY if sub["history"] and sub["history"][0]["change"] == "legacy_order" else sub["billing_model"]
        conn.execute(
            sa.insert(subscriptions).values(
                tenant_id=tenant_id,
                ref=ref,
                service="korm",
                customer=sub["customer_id"],
                vendor_id=sub["id"],
                activation_code=sub["activation_code"],
                plan=sub["sku"],
                billing_model=sub["billing_model"],
                quantity=sub["quantity"],
                status=sub["status"],
                activation_date=sub["activation_date"],
                discount_percent=sub["discount_percent"],
                approval_code=sub.get("approval_code"),
                trial_days=0,
                created_at=iso(now),
                updated_at=iso(now),
            )
        )
        kinds = {"legacy_order": "legacy"}
        for entry in sub["history"]:
            if entry["change"] == "migrate":
                model = PAYG
            kind = kinds.get(entry["change"], entry["change"])
            self._korm_change(
                conn,
                tenant_id,
                ref,
                now,
                dt.date.fromisoformat(entry["effective_date"]),
                kind,
                model,
                entry["sku"],
                0 if kind == "stop" else entry["quantity"],
            )
        return ref

    def tenant(self, conn: Connection, tenant_id: str) -> Tenant:
        row = conn.execute(sa.select(tenants).where(tenants.c.id == tenant_id)).first()
        if row is None:
            raise BrokerError(404, "TENANT_NOT_FOUND", f"no tenant {tenant_id!r}")
        from ksimkit.simulators.core.catalog import load_profile  # the vendor's packaged profile: KSS prices, MSP tiers

        profile = load_profile()
        prices = billing.Prices(
            korm_list={sku: Decimal(p["price"]) for sku, p in (row.korm_catalog or {}).items()},
            kss_list={pid: p.price for pid, p in profile.kss_products.items()},
            customer={k: Decimal(v) for k, v in row.prices.items()},
            msp_tiers=tuple((t.from_licences, t.percent) for t in profile.msp_tiers),
        )
        return Tenant(
            tenant_id,
            row,
            self.defects | frozenset(row.defects),
            parse_instant(row.now),
            ZoneInfo(row.timezone),
            prices,
        )

    def tenant_json(self, tenant_id: str) -> dict[str, Any]:
        with self.store.begin() as conn:
            t = self.tenant(conn, tenant_id)
        return {
            "id": t.id,
            "scenario_id": t.row.scenario_id,
            "now": t.row.now,
            "today": t.today.isoformat(),
            "timezone": t.row.timezone,
            "programme": t.row.programme,
            "billing_period": t.row.billing_period,
            "prices": t.row.prices,
            "defects": sorted(t.defects),
            "closed_through": t.row.closed_through,
            "stopped": t.row.stopped,
        }

    def stop_tenant(self, tenant_id: str) -> dict[str, Any]:
        with self._lock(tenant_id), self.store.begin() as conn:
            self.tenant(conn, tenant_id)
            conn.execute(sa.update(tenants).where(tenants.c.id == tenant_id).values(stopped=True))
        with self._korm_guard:
            client = self._korm.pop(tenant_id, None)
        if client is not None:
            client.close()
        return self.tenant_json(tenant_id)

    def _live_tenant(self, tenant_id: str) -> Tenant:
        with self.store.begin() as conn:
            t = self.tenant(conn, tenant_id)
        if t.row.stopped:
            raise BrokerError(409, "TENANT_STOPPED", f"tenant {tenant_id} was stopped")
        return t

    def korm(self, t: Tenant) -> KormClient:
        with self._korm_guard:
            client = self._korm.get(t.id)
            if client is None:
                client = self._korm[t.id] = KormClient(t.row.korm_url, t.row.korm_token, actor=ACTOR, defects=t.defects)
            return client

    def kss(self, t: Tenant) -> KssClient:
        return KssClient(
            t.row.kss_wsdl_url,
            t.row.kss_username,
            t.row.kss_password,
            actor=ACTOR,
            transaction_prefix=f"rb-{t.id}",
            defects=t.defects,
        )

    # ================================================================== local records

    def _sub(self, conn: Connection, t: Tenant, ref: str, service: str | None = None) -> Any:
        row = conn.execute(
            sa.select(subscriptions).where(subscriptions.c.tenant_id == t.id, subscriptions.c.ref == ref)
        ).first()
        if row is None:
            raise BrokerError(404, "SUBSCRIPTION_NOT_FOUND", f"no subscription {ref!r} in tenant {t.id}")
        if service is not None and row.service != service:
            raise BrokerError(422, "WRONG_SERVICE", f"{ref!r} is a {row.service.upper()} subscription")
        return row

    def _snapshots(self, conn: Connection, t: Tenant, ref: str) -> list[Snapshot]:
        return [
            Snapshot.from_state(parse_instant(e.effective), e.state)
            for e in conn.execute(
                sa.select(changes).where(changes.c.tenant_id == t.id, changes.c.ref == ref).order_by(changes.c.id)
            )
        ]

    def _ref_free(self, t: Tenant, ref: str) -> None:
        """A new subscription's ref must be new in the tenant."""
        query = sa.select(subscriptions.c.ref).where(subscriptions.c.tenant_id == t.id, subscriptions.c.ref == ref)
        with self.store.begin() as conn:
            taken = conn.execute(query).first() is not None
        if taken:
            raise BrokerError(409, "REF_EXISTS", f"tenant {t.id} already has a subscription {ref!r}")

    def _korm_change(
        self,
        conn: Connection,
        tenant_id: str,
        ref: str,
        now: dt.datetime,
        day: dt.date,
        kind: str,
        model: str,
        sku: str,
        quantity: int,
    ) -> None:
        conn.execute(
            sa.insert(changes).values(
                tenant_id=tenant_id,
                ref=ref,
                at=iso(now),
                effective=day.isoformat(),
                kind=kind,
                billing_model=model,
                plan=sku,
                quantity=quantity,
            )
        )

    def _update(self, conn: Connection, t: Tenant, ref: str, **values: Any) -> None:
        conn.execute(
            sa.update(subscriptions)
            .where(subscriptions.c.tenant_id == t.id, subscriptions.c.ref == ref)
            .values(**values, updated_at=iso(t.now))
        )

    def _step(self, tenant_id: str, action: Callable[[Tenant], Step]) -> Step:
        """One customer-facing step under the tenant's lock; the vendor's refusal or absence is its answer."""
        with self._lock(tenant_id):
            t = self._live_tenant(tenant_id)
            try:
                return action(t)
            except VendorRefused as exc:
                return refused(exc.code, exc.message)
            except VendorUnavailable as exc:
                return refused("VENDOR_UNAVAILABLE", str(exc), status=502)


def _kss_rest_url(wsdl_url: str) -> str:
    """<sim>/kss/soap/upi?wsdl -> <sim>/kss/v1 (the vendor's partner portal)."""
    base = wsdl_url.split("?", 1)[0]
    for suffix in ("/kss/soap/upi", "/soap/upi"):
        if base.endswith(suffix):
            return base[: -len(suffix)] + "/kss/v1"
    return base.rsplit("/kss/", 1)[0] + "/kss/v1"
