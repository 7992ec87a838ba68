"""What the broker does for its customers: tenants, KORM and KSS subscriptions, the test clock, invoices.

Every customer-facing step answers a :class:`Step`: ``done`` or ``refused`` with the vendor's code (the broker
tells its customer the truth), and the activation code as the broker knows it. The broker's own refusals
(unknown tenant or subscription, a bad request) are :class:`BrokerError`.

One lock per tenant serialises its steps: read the local state, call the vendor (no database transaction is held
open meanwhile), record what the vendor accepted in the local change history.
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
from ksimkit.examples.reference_broker.billing import HARD, KSS, LEGACY, PAUSED, PAYG, SOFT, STARTED, YEARLY, Snapshot
from ksimkit.examples.reference_broker.korm import KormClient, KormRefused, KormUnavailable, default_tls
from ksimkit.examples.reference_broker.kss import KssClient, KssTransactionRefused, KssUnavailable, Unit, UnitResult
from ksimkit.examples.reference_broker.store import (
    Store,
    changes,
    invoice_lines,
    invoices,
    iso,
    parse_instant,
    subscriptions,
    tenants,
)

UTC = dt.UTC
ACTOR = "reference-broker"


class BrokerError(Exception):
    """The broker's own refusal of a request (not the vendor's)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Step:
    outcome: str  # done | refused
    code: str | None = None
    message: str | None = None
    activation_code: str | None = None
    status: int = 200  # the broker's HTTP status for it

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "code": self.code,
            "message": self.message,
            "activation_code": self.activation_code,
        }


def done(activation_code: str | None = None, message: str | None = None) -> Step:
    return Step("done", None, message, activation_code)


def refused(code: str, message: str, activation_code: str | None = None, status: int = 200) -> Step:
    return Step("refused", code, message, activation_code, status)


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
class _Locks:
    guard: threading.Lock = field(default_factory=threading.Lock)
    by_tenant: dict[str, threading.Lock] = field(default_factory=dict)

    def __call__(self, tenant_id: str) -> threading.Lock:
        with self.guard:
            return self.by_tenant.setdefault(tenant_id, threading.Lock())


def _decimal(value: Any, what: str) -> Decimal:
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


class BrokerService:
    def __init__(self, store: Store, defects: frozenset[str] = frozenset()) -> None:
        self.store = store
        self.defects = defect_list.parse(defects)
        self._lock = _Locks()
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
        prices = {str(k): str(_decimal(v, f"prices.{k}")) for k, v in prices.items()}
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
        except (KormRefused, KormUnavailable, httpx.HTTPError) as exc:
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

    # ================================================================== the test clock and month-end billing

    def set_clock(self, tenant_id: str, value: Any) -> dict[str, Any]:
        with self._lock(tenant_id):
            t = self._live_tenant(tenant_id)
            now = parse_moment(value, t.zone, "now")
            if now < t.now:
                raise BrokerError(409, "CLOCK_BACKWARDS", f"the clock is at {iso(t.now)}; it only moves forward")
            with self.store.begin() as conn:
                conn.execute(sa.update(tenants).where(tenants.c.id == tenant_id).values(now=iso(now)))
                t = self.tenant(conn, tenant_id)
                closed = self._month_end(conn, t)
        return {**self.tenant_json(tenant_id), "closed": closed}

    def _month_end(self, conn: Connection, t: Tenant) -> list[str]:
        """Close every month that is over: its invoice is computed once and kept as issued."""
        closed = []
        period = (
            billing.period_of(billing.next_month(billing.month_bounds(t.row.closed_through)[0]))
            if t.row.closed_through
            else billing.period_of(parse_instant(t.row.created_at).astimezone(t.zone).date())
        )
        while billing.month_bounds(period)[1] <= t.today:
            lines = self._lines(conn, t, period)
            if any(line.end > t.today for line in lines):  # a 30-day period still running: not final yet
                break
            conn.execute(sa.insert(invoices).values(tenant_id=t.id, period=period, closed_at=iso(t.now)))
            for line in lines:
                conn.execute(sa.insert(invoice_lines).values(tenant_id=t.id, period=period, line=line.to_json()))
            conn.execute(sa.update(tenants).where(tenants.c.id == t.id).values(closed_through=period))
            closed.append(period)
            period = billing.period_of(billing.next_month(billing.month_bounds(period)[0]))
        return closed

    def _lines(self, conn: Connection, t: Tenant, period: str) -> list[billing.Line]:
        rows = conn.execute(
            sa.select(subscriptions)
            .where(subscriptions.c.tenant_id == t.id)
            .order_by(subscriptions.c.customer, subscriptions.c.ref)
        ).all()
        history: dict[str, list[Any]] = {}
        for change in conn.execute(sa.select(changes).where(changes.c.tenant_id == t.id).order_by(changes.c.id)):
            history.setdefault(change.ref, []).append(change)
        lines: list[billing.Line] = []
        kss_subs = []
        for row in rows:
            entries = history.get(row.ref, [])
            if row.service == "korm":
                sub = billing.KormSub(
                    row.ref,
                    row.customer,
                    dt.date.fromisoformat(row.activation_date),
                    Decimal(row.discount_percent),
                    tuple(
                        billing.KormChange(
                            dt.date.fromisoformat(e.effective), e.kind, e.billing_model, e.plan, e.quantity
                        )
                        for e in entries
                    ),
                )
                lines += billing.korm_lines(sub, period, t.prices, t.defects)
            else:
                kss_subs.append(
                    billing.KssSub(
                        row.ref,
                        row.customer,
                        parse_instant(row.created_at),
                        tuple(Snapshot.from_state(parse_instant(e.effective), e.state) for e in entries),
                    )
                )
        lines += billing.kss_lines(
            kss_subs,
            period,
            t.prices,
            programme=t.row.programme or "reseller",
            billing_period=t.row.billing_period or billing.CALENDAR_MONTH,
            zone=t.zone,
            defects=t.defects,
        )
        return lines

    def invoice(self, tenant_id: str, period: str) -> dict[str, Any]:
        try:
            billing.month_bounds(period)
            if len(period) != 7:
                raise ValueError(period)
        except ValueError:
            raise BrokerError(422, "INVALID_PERIOD", f"{period!r} is not YYYY-MM") from None
        with self.store.begin() as conn:
            t = self.tenant(conn, tenant_id)
            issued = conn.execute(
                sa.select(invoices).where(invoices.c.tenant_id == t.id, invoices.c.period == period)
            ).first()
            if issued is not None:
                lines = [
                    r.line
                    for r in conn.execute(
                        sa.select(invoice_lines)
                        .where(invoice_lines.c.tenant_id == t.id, invoice_lines.c.period == period)
                        .order_by(invoice_lines.c.id)
                    )
                ]
            else:
                lines = [line.to_json() for line in self._lines(conn, t, period)]
        total = sum((Decimal(line["amount"]) for line in lines), Decimal("0"))
        cost = sum((Decimal(line["vendor_cost"]) for line in lines), Decimal("0"))
        return {
            "tenant": t.id,
            "period": period,
            "final": issued is not None,
            "closed_at": None if issued is None else issued.closed_at,
            "lines": lines,
            "totals": {"amount": f"{total:.2f}", "vendor_cost": f"{cost:.2f}", "margin": f"{total - cost:.2f}"},
        }

    # ================================================================== subscriptions: reading

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

    def subscription(self, tenant_id: str, ref: str) -> dict[str, Any]:
        with self.store.begin() as conn:
            t = self.tenant(conn, tenant_id)
            return self._sub_json(conn, t, self._sub(conn, t, ref))

    def subscriptions(self, tenant_id: str) -> list[dict[str, Any]]:
        with self.store.begin() as conn:
            t = self.tenant(conn, tenant_id)
            rows = conn.execute(
                sa.select(subscriptions)
                .where(subscriptions.c.tenant_id == t.id)
                .order_by(subscriptions.c.created_at, subscriptions.c.ref)
            ).all()
            return [self._sub_json(conn, t, row) for row in rows]

    def _sub_json(self, conn: Connection, t: Tenant, row: Any) -> dict[str, Any]:
        status = row.status
        extra: dict[str, Any] = {}
        if row.service == "kss":
            snaps = self._snapshots(conn, t, row.ref)
            status = billing.status_at(snaps, t.now) or status
            if snaps:
                extra = {
                    "end": snaps[-1].to_state()["end"],
                    "trial_end": snaps[-1].to_state()["trial_end"],
                    "pause_until": snaps[-1].to_state()["pause_until"] if status == PAUSED else None,
                }
        else:
            extra = {
                "activation_date": row.activation_date,
                "discount_percent": row.discount_percent,
                "approval_code": row.approval_code,
            }
        return {
            "ref": row.ref,
            "service": row.service,
            "customer": row.customer,
            "vendor_id": row.vendor_id,
            "status": status,
            "activation_code": row.activation_code,
            "plan": row.plan,
            ("sku" if row.service == "korm" else "product"): row.plan,
            "billing_model": row.billing_model,
            ("quantity" if row.service == "korm" else "count"): row.quantity,
            **extra,
        }

    # ================================================================== KORM SS

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
        with self._lock(tenant_id):
            t = self._live_tenant(tenant_id)
            try:
                return action(t)
            except KormRefused as exc:
                return refused(exc.code, exc.detail)
            except KssTransactionRefused as exc:
                return refused(exc.code, exc.message)
            except (KormUnavailable, KssUnavailable) as exc:
                return refused("VENDOR_UNAVAILABLE", str(exc), status=502)

    def order(
        self, tenant_id: str, ref: str, customer: str, sku: str, quantity: int, approval_code: str | None = None
    ) -> Step:
        def action(t: Tenant) -> Step:
            with self.store.begin() as conn:
                if (
                    conn.execute(
                        sa.select(subscriptions.c.ref).where(
                            subscriptions.c.tenant_id == t.id, subscriptions.c.ref == ref
                        )
                    ).first()
                    is not None
                ):
                    raise BrokerError(409, "REF_EXISTS", f"tenant {t.id} already has a subscription {ref!r}")
            body: dict[str, Any] = {"customer_id": customer, "sku": sku, "quantity": quantity, "external_ref": ref}
            if approval_code:
                body["approval_code"] = approval_code
            if t.defect("double_order_after_lost_answer"):
                sub = self.korm(t).post("/subscriptions", body, idempotency_key=None)  # defect: no key, yet retried
            else:
                sub = self.korm(t).post("/subscriptions", body)
            with self.store.begin() as conn:
                conn.execute(
                    sa.insert(subscriptions).values(
                        tenant_id=t.id,
                        ref=ref,
                        service="korm",
                        customer=customer,
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
                        created_at=iso(t.now),
                        updated_at=iso(t.now),
                    )
                )
                self._korm_change(
                    conn,
                    t.id,
                    ref,
                    t.now,
                    dt.date.fromisoformat(sub["activation_date"]),
                    "order",
                    sub["billing_model"],
                    sub["sku"],
                    sub["quantity"],
                )
            return done(sub["activation_code"])

        return self._step(tenant_id, action)

    def change_quantity(self, tenant_id: str, ref: str, quantity: int) -> Step:
        def action(t: Tenant) -> Step:
            with self.store.begin() as conn:
                row = self._sub(conn, t, ref, "korm")
            if t.defect("yearly_decrease_locally") and row.billing_model == YEARLY and quantity < row.quantity:
                # defect: "the vendor only needs to hear about increases; we apply decreases ourselves"
                with self.store.begin() as conn:
                    self._update(conn, t, ref, quantity=quantity)
                    self._korm_change(conn, t.id, ref, t.now, t.today, "quantity", YEARLY, row.plan, quantity)
                return done(row.activation_code)
            sub = self.korm(t).post(f"/subscriptions/{row.vendor_id}/quantity", {"quantity": quantity})
            with self.store.begin() as conn:
                if sub["quantity"] != row.quantity:
                    self._update(conn, t, ref, quantity=sub["quantity"], status=sub["status"])
                    self._korm_change(
                        conn, t.id, ref, t.now, t.today, "quantity", sub["billing_model"], sub["sku"], sub["quantity"]
                    )
            return done(sub["activation_code"])

        return self._step(tenant_id, action)

    def switch_plan(self, tenant_id: str, ref: str, sku: str, quantity: int | None = None) -> Step:
        def action(t: Tenant) -> Step:
            with self.store.begin() as conn:
                row = self._sub(conn, t, ref, "korm")
            body: dict[str, Any] = {"sku": sku} if quantity is None else {"sku": sku, "quantity": quantity}
            sub = self.korm(t).post(f"/subscriptions/{row.vendor_id}/switch-plan", body)
            with self.store.begin() as conn:
                self._update(
                    conn, t, ref, plan=sub["sku"], quantity=sub["quantity"], billing_model=sub["billing_model"]
                )
                self._korm_change(
                    conn, t.id, ref, t.now, t.today, "switch", sub["billing_model"], sub["sku"], sub["quantity"]
                )
            return done(sub["activation_code"])

        return self._step(tenant_id, action)

    def stop(self, tenant_id: str, ref: str) -> Step:
        def action(t: Tenant) -> Step:
            with self.store.begin() as conn:
                row = self._sub(conn, t, ref, "korm")
            sub = self.korm(t).post(f"/subscriptions/{row.vendor_id}/stop")
            with self.store.begin() as conn:
                self._update(conn, t, ref, status="deleted")
                self._korm_change(
                    conn,
                    t.id,
                    ref,
                    t.now,
                    dt.date.fromisoformat(sub["stopped_on"]),
                    "stop",
                    row.billing_model,
                    row.plan,
                    0,
                )
            return done(row.activation_code)

        return self._step(tenant_id, action)

    def reactivate(self, tenant_id: str, ref: str) -> Step:
        """KORM: the vendor never reactivates (KORM-STOP-1), the customer hears so. KSS: see kss_reactivate."""
        with self.store.begin() as conn:
            t = self.tenant(conn, tenant_id)
            service = self._sub(conn, t, ref).service
        if service == "kss":
            return self.kss_reactivate(tenant_id, ref)

        def action(t: Tenant) -> Step:
            with self.store.begin() as conn:
                row = self._sub(conn, t, ref, "korm")
            try:
                sub = self.korm(t).post(f"/subscriptions/{row.vendor_id}/reactivate")
            except KormRefused as exc:
                if not (t.defect("korm_reactivate_after_stop") and exc.code == "SUBSCRIPTION_DELETED"):
                    raise
                # defect: "reactivation failed at the vendor, but the customer wants it back": reopen locally
                with self.store.begin() as conn:
                    last = [
                        c
                        for c in conn.execute(
                            sa.select(changes)
                            .where(changes.c.tenant_id == t.id, changes.c.ref == ref)
                            .order_by(changes.c.id)
                        )
                        if c.quantity
                    ]
                    self._update(conn, t, ref, status="active")
                    self._korm_change(
                        conn, t.id, ref, t.now, t.today, "reactivate", row.billing_model, row.plan, last[-1].quantity
                    )
                return done(row.activation_code)
            return done(sub.get("activation_code"))

        return self._step(tenant_id, action)

    def migrate(self, tenant_id: str) -> Step:
        """KORM-MIG-1: every legacy subscription to PAYG at once; codes, customers and counts are kept."""

        def action(t: Tenant) -> Step:
            answer = self.korm(t).post("/migrations")
            day = dt.date.fromisoformat(answer["migrated_on"])
            with self.store.begin() as conn:
                known = {
                    r.vendor_id: r
                    for r in conn.execute(
                        sa.select(subscriptions).where(
                            subscriptions.c.tenant_id == t.id, subscriptions.c.service == "korm"
                        )
                    )
                }
                for vendor_id in answer["subscription_ids"]:
                    row = known.get(vendor_id)
                    if row is None:
                        continue
                    self._update(conn, t, row.ref, billing_model=PAYG)
                    self._korm_change(
                        conn,
                        t.id,
                        row.ref,
                        t.now,
                        max(day, dt.date.fromisoformat(row.activation_date)),
                        "migrate",
                        PAYG,
                        row.plan,
                        row.quantity,
                    )
            return done(message=f"{len(answer['subscription_ids'])} legacy subscription(s) migrated on {day}")

        return self._step(tenant_id, action)

    # ================================================================== KSS 3.0

    def _kss_send(self, t: Tenant, units: list[Unit]) -> list[UnitResult]:
        return self.kss(t).send(units, t.now)

    def _snap(self, conn: Connection, t: Tenant, ref: str, kind: str, snap: Snapshot) -> None:
        conn.execute(
            sa.insert(changes).values(
                tenant_id=t.id,
                ref=ref,
                at=iso(t.now),
                effective=iso(snap.effective),
                kind=kind,
                billing_model=KSS,
                plan=snap.product,
                quantity=snap.count,
                state=snap.to_state(),
            )
        )
        self._update(conn, t, ref, plan=snap.product, quantity=snap.count, status=snap.status)

    def _kss_state(self, t: Tenant, ref: str) -> tuple[Any, Snapshot]:
        with self.store.begin() as conn:
            row = self._sub(conn, t, ref, "kss")
            snaps = self._snapshots(conn, t, ref)
        return row, snaps[-1]

    @staticmethod
    def _settled(result: UnitResult, already: int) -> bool:
        """After a retry, "already in that state" means our first attempt got through."""
        return result.ok or (result.retried and result.code == already)

    def activate(self, tenant_id: str, ref: str, customer: str, product: str, count: int, trial_days: int = 0) -> Step:
        def action(t: Tenant) -> Step:
            with self.store.begin() as conn:
                if (
                    conn.execute(
                        sa.select(subscriptions.c.ref).where(
                            subscriptions.c.tenant_id == t.id, subscriptions.c.ref == ref
                        )
                    ).first()
                    is not None
                ):
                    raise BrokerError(409, "REF_EXISTS", f"tenant {t.id} already has a subscription {ref!r}")
            subscriber_id = ref
            (result,) = self._kss_send(
                t,
                [
                    Unit(
                        "Activate",
                        subscriber_id,
                        {
                            "StartTime": t.now,
                            "EndTime": "indefinite",
                            "LicenseCount": count,
                            "ProductId": product,
                            "TrialDays": trial_days or None,
                            "CustomerId": customer,
                        },
                    )
                ],
            )
            code = result.activation_code
            if not result.ok and result.retried and result.code == 1:  # our lost first attempt? ask the vendor
                (info,) = self._kss_send(t, [Unit("GetInfo", subscriber_id, {"InfoSection": "Subscription"})])
                if (
                    info.ok
                    and info.info
                    and info.info["ProductId"] == product
                    and int(info.info["LicenseCount"]) == count
                ):
                    code, result = info.info["ActivationCode"], info
            if not result.ok:
                return refused(str(result.code), result.message or "")
            trial_end = _trial_end(t, t.now, trial_days) if trial_days else None
            snap = Snapshot(t.now, STARTED, count, product, t.now, None, trial_end, None, None)
            with self.store.begin() as conn:
                conn.execute(
                    sa.insert(subscriptions).values(
                        tenant_id=t.id,
                        ref=ref,
                        service="kss",
                        customer=customer,
                        vendor_id=subscriber_id,
                        activation_code=code,
                        plan=product,
                        billing_model=KSS,
                        quantity=count,
                        status=STARTED,
                        activation_date=None,
                        discount_percent="0",
                        approval_code=None,
                        trial_days=trial_days or 0,
                        created_at=iso(t.now),
                        updated_at=iso(t.now),
                    )
                )
                self._snap(conn, t, ref, "activate", snap)
            return done(code)

        return self._step(tenant_id, action)

    def change_count(self, tenant_id: str, ref: str, count: int) -> Step:
        def action(t: Tenant) -> Step:
            row, last = self._kss_state(t, ref)
            if t.defect("kss_new_code_after_licence_change"):
                return self._change_count_by_reactivation(t, row, last, count)
            (result,) = self._kss_send(t, [Unit("ChangeLicenseCount", row.vendor_id, {"LicenseCount": count})])
            if not self._settled(result, 707):
                return refused(str(result.code), result.message or "", row.activation_code)
            with self.store.begin() as conn:
                self._snap(conn, t, ref, "count", _replace(last, t.now, count=count))
            return done(result.activation_code or row.activation_code)

        return self._step(tenant_id, action)

    def _change_count_by_reactivation(self, t: Tenant, row: Any, last: Snapshot, count: int) -> Step:
        """defect: the licence change real 2.0 clients send (HardCancel + Activate), under a fresh SubscriberId."""
        with self.store.begin() as conn:
            n = conn.execute(
                sa.select(sa.func.count())
                .select_from(changes)
                .where(changes.c.tenant_id == t.id, changes.c.ref == row.ref, changes.c.kind == "count")
            ).scalar_one()
        new_id = f"{row.ref}.{n + 2}"
        _cancel, activate = self._kss_send(
            t,
            [
                Unit("HardCancel", row.vendor_id, {"EndTime": t.now}),
                Unit(
                    "Activate",
                    new_id,
                    {
                        "StartTime": t.now,
                        "EndTime": "indefinite",
                        "LicenseCount": count,
                        "ProductId": last.product,
                        "CustomerId": row.customer,
                    },
                ),
            ],
        )
        if not activate.ok:
            return refused(str(activate.code), activate.message or "", row.activation_code)
        with self.store.begin() as conn:
            self._update(conn, t, row.ref, vendor_id=new_id, activation_code=activate.activation_code)
            self._snap(conn, t, row.ref, "count", _replace(last, t.now, count=count))
        return done(activate.activation_code)

    def change_product(self, tenant_id: str, ref: str, product: str) -> Step:
        def action(t: Tenant) -> Step:
            row, last = self._kss_state(t, ref)
            (result,) = self._kss_send(t, [Unit("ChangeProduct", row.vendor_id, {"ProductId": product})])
            if not self._settled(result, 707):
                return refused(str(result.code), result.message or "", row.activation_code)
            snap = _replace(last, t.now, product=product)
            if t.defect("kss_second_trial_after_product_change") and row.trial_days:
                snap = _replace(snap, t.now, trial_end=_trial_end(t, t.now, row.trial_days))  # defect: a new trial
            with self.store.begin() as conn:
                self._snap(conn, t, ref, "product", snap)
            return done(result.activation_code or row.activation_code)

        return self._step(tenant_id, action)

    def pause(self, tenant_id: str, ref: str, until: dt.datetime | None = None) -> Step:
        def action(t: Tenant) -> Step:
            row, last = self._kss_state(t, ref)
            (result,) = self._kss_send(t, [Unit("Pause", row.vendor_id, {"PauseTime": t.now, "ResumeTime": until})])
            if not self._settled(result, 402):
                return refused(str(result.code), result.message or "", row.activation_code)
            with self.store.begin() as conn:
                self._snap(
                    conn, t, ref, "pause", _replace(last, t.now, status=PAUSED, paused_at=t.now, pause_until=until)
                )
            return done(row.activation_code)

        return self._step(tenant_id, action)

    def resume(self, tenant_id: str, ref: str) -> Step:
        def action(t: Tenant) -> Step:
            row, last = self._kss_state(t, ref)
            (result,) = self._kss_send(t, [Unit("Resume", row.vendor_id)])
            if not self._settled(result, 501):
                return refused(str(result.code), result.message or "", row.activation_code)
            with self.store.begin() as conn:
                self._snap(
                    conn, t, ref, "resume", _replace(last, t.now, status=STARTED, paused_at=None, pause_until=None)
                )
            return done(row.activation_code)

        return self._step(tenant_id, action)

    def cancel_at_month_end(self, tenant_id: str, ref: str, month: str) -> Step:
        def action(t: Tenant) -> Step:
            try:
                first = billing.month_bounds(month)[0]
            except ValueError:
                raise BrokerError(422, "VALIDATION_ERROR", f"month: {month!r} is not YYYY-MM") from None
            end = billing.local_midnight(billing.next_month(first), t.zone)
            row, last = self._kss_state(t, ref)
            (result,) = self._kss_send(t, [Unit("SoftCancel", row.vendor_id, {"EndTime": end})])
            if not self._settled(result, 105):
                return refused(str(result.code), result.message or "", row.activation_code)
            effective, end = t.now, end if last.end is None else min(end, last.end)
            if t.defect("kss_last_month_dropped_after_soft_cancel"):
                # defect: "cancelled for April" booked as "closed on 1 April": the last month is not billed
                effective = end = billing.local_midnight(first, t.zone)
            with self.store.begin() as conn:
                self._snap(conn, t, ref, "soft_cancel", _replace(last, effective, status=SOFT, end=end))
            return done(row.activation_code)

        return self._step(tenant_id, action)

    def hard_cancel(self, tenant_id: str, ref: str) -> Step:
        def action(t: Tenant) -> Step:
            row, last = self._kss_state(t, ref)
            (result,) = self._kss_send(t, [Unit("HardCancel", row.vendor_id, {"EndTime": t.now})])
            if not self._settled(result, 4):
                return refused(str(result.code), result.message or "", row.activation_code)
            with self.store.begin() as conn:
                self._snap(
                    conn,
                    t,
                    ref,
                    "hard_cancel",
                    _replace(last, t.now, status=HARD, end=t.now if last.end is None else min(t.now, last.end)),
                )
            return done(row.activation_code)

        return self._step(tenant_id, action)

    def kss_reactivate(self, tenant_id: str, ref: str) -> Step:
        """KSS-STOP-1: Renew (indefinite) a soft-cancelled subscription; Activate a hard-cancelled one again."""

        def action(t: Tenant) -> Step:
            row, last = self._kss_state(t, ref)
            with self.store.begin() as conn:
                status = billing.status_at(self._snapshots(conn, t, ref), t.now)
            if status == HARD:
                (result,) = self._kss_send(
                    t,
                    [
                        Unit(
                            "Activate",
                            row.vendor_id,
                            {
                                "StartTime": t.now,
                                "EndTime": "indefinite",
                                "LicenseCount": last.count,
                                "ProductId": last.product,
                            },
                        )
                    ],
                )
                ok = self._settled(result, 1)
                snap = _replace(last, t.now, status=STARTED, start=t.now, end=None, paused_at=None, pause_until=None)
            else:
                (result,) = self._kss_send(t, [Unit("Renew", row.vendor_id, {"EndTime": "indefinite"})])
                ok = self._settled(result, 202)
                snap = _replace(last, t.now, status=STARTED, end=None)
            if not ok:
                return refused(str(result.code), result.message or "", row.activation_code)
            with self.store.begin() as conn:
                self._snap(conn, t, ref, "reactivate", snap)
            return done(result.activation_code or row.activation_code)

        return self._step(tenant_id, action)


def _replace(snap: Snapshot, effective: dt.datetime, **changes_: Any) -> Snapshot:
    values = {**snap.__dict__, "effective": effective, **changes_}
    return Snapshot(**values)


def _trial_end(t: Tenant, start: dt.datetime, days: int) -> dt.datetime:
    """Trial days are local wall-clock days (the vendor's reading, docs/kss-wire.md)."""
    local = start.astimezone(t.zone).replace(tzinfo=None) + dt.timedelta(days=days)
    return local.replace(tzinfo=t.zone).astimezone(UTC)


def _kss_rest_url(wsdl_url: str) -> str:
    """<sim>/kss/soap/upi?wsdl -> <sim>/kss/v1 (the vendor's partner portal)."""
    base = wsdl_url.split("?", 1)[0]
    for suffix in ("/kss/soap/upi", "/soap/upi"):
        if base.endswith(suffix):
            return base[: -len(suffix)] + "/kss/v1"
    return base.rsplit("/kss/", 1)[0] + "/kss/v1"
