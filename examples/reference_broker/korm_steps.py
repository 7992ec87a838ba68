"""The broker's KORM SS steps: order, quantity, plan switch, stop, reactivation (never granted), migration."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from ksimkit.examples.reference_broker.billing import PAYG, YEARLY
from ksimkit.examples.reference_broker.errors import KormRefused
from ksimkit.examples.reference_broker.outcomes import Step, done
from ksimkit.examples.reference_broker.store import changes, iso, subscriptions
from ksimkit.examples.reference_broker.tenants import Tenant, TenantDesk


class KormSteps(TenantDesk):
    """KORM SS: the vendor's answer is recorded as the local change history billing reads."""

    def order(
        self, tenant_id: str, ref: str, customer: str, sku: str, quantity: int, approval_code: str | None = None
    ) -> Step:
        def action(t: Tenant) -> Step:
            self._ref_free(t, ref)
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

    def korm_reactivate(self, tenant_id: str, ref: str) -> Step:
        """The vendor never reactivates (KORM-STOP-1), the customer hears so."""

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
