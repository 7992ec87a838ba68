"""The tenant's test clock and month-end billing: each month that is over is closed once, its invoice kept as
issued; an open month's invoice is computed afresh from the local change history."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.examples.reference_broker import billing
from ksimkit.examples.reference_broker.billing import Snapshot
from ksimkit.examples.reference_broker.errors import BrokerError
from ksimkit.examples.reference_broker.store import (
    changes,
    invoice_lines,
    invoices,
    iso,
    parse_instant,
    subscriptions,
    tenants,
)
from ksimkit.examples.reference_broker.tenants import Tenant, TenantDesk, parse_moment


class Invoicing(TenantDesk):
    """The test clock and the invoices."""

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
