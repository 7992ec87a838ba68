"""The broker's KSS 3.0 steps: activate, licence count, product, pause and resume, cancellations, reactivation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.examples.reference_broker import billing
from ksimkit.examples.reference_broker.billing import HARD, KSS, PAUSED, SOFT, STARTED, Snapshot
from ksimkit.examples.reference_broker.errors import BrokerError
from ksimkit.examples.reference_broker.kss import Unit, UnitResult
from ksimkit.examples.reference_broker.outcomes import Step, done, refused
from ksimkit.examples.reference_broker.store import changes, iso, subscriptions
from ksimkit.examples.reference_broker.tenants import UTC, Tenant, TenantDesk


class KssSteps(TenantDesk):
    """KSS: each state the vendor confirmed is recorded as a snapshot billing reads."""

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
            self._ref_free(t, ref)
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
