"""What the broker does for its customers: tenants, KORM and KSS subscriptions, the test clock, invoices.

Every customer-facing step answers a :class:`Step` (``outcomes``): ``done`` or ``refused`` with the vendor's code
(the broker tells its customer the truth), and the activation code as the broker knows it. The broker's own refusals
(unknown tenant or subscription, a bad request) are :class:`BrokerError` (``errors``).

:class:`BrokerService` puts the parts together: ``tenants`` (tenants, locks, vendor clients, local records),
``korm_steps``, ``kss_steps`` and ``invoicing`` (the test clock and month-end billing); reading a tenant's
subscriptions is here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.examples.reference_broker import billing
from ksimkit.examples.reference_broker.billing import PAUSED
from ksimkit.examples.reference_broker.errors import BrokerError
from ksimkit.examples.reference_broker.invoicing import Invoicing
from ksimkit.examples.reference_broker.korm_steps import KormSteps
from ksimkit.examples.reference_broker.kss_steps import KssSteps
from ksimkit.examples.reference_broker.outcomes import Step
from ksimkit.examples.reference_broker.store import subscriptions
from ksimkit.examples.reference_broker.tenants import Tenant, parse_moment

__all__ = ["BrokerError", "BrokerService", "Step", "parse_moment"]  # what the broker apps use


class BrokerService(KormSteps, KssSteps, Invoicing):
    """The broker's engine: every step, the clock and invoices of its tenants (``BrokerService(store, defects)``)."""

    def reactivate(self, tenant_id: str, ref: str) -> Step:
        """KORM: the vendor never reactivates (KORM-STOP-1), the customer hears so. KSS: see kss_reactivate."""
        with self.store.begin() as conn:
            t = self.tenant(conn, tenant_id)
            service = self._sub(conn, t, ref).service
        if service == "kss":
            return self.kss_reactivate(tenant_id, ref)
        return self.korm_reactivate(tenant_id, ref)

    # ================================================================== subscriptions: reading

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
