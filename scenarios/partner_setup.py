"""A scenario's simulator partner before the broker starts: a new partner (or a pooled one, reset to the scenario's
start with its settings), the setup's test data seeded at the vendor, and the ``TenantSetup`` the broker is given."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ksimkit.scenarios.brokers.base import LegacySubscription, TenantSetup
from ksimkit.scenarios.model import Scenario, Setup
from ksimkit.scenarios.vendor_views import sim_call
from ksimkit.simulators.client import KsimAdmin, PartnerHandle

__all__ = ["new_partner", "pooled_partner", "seed", "tenant_setup"]


def new_partner(admin: KsimAdmin, scenario: Scenario) -> PartnerHandle:
    """A fresh partner with the scenario's settings, its clock at the scenario's start."""
    s = scenario.setup
    partner: PartnerHandle = sim_call(
        "create a partner",
        admin.create_partner,
        name=scenario.id[:200],
        programme=s.programme,
        msp_registered=s.msp_registered,
        timezone=s.timezone,
        billing_period=s.billing_period,
        now=s.start,
    )
    return partner


def pooled_partner(admin: KsimAdmin, pool: Any, member: Any, s: Setup) -> PartnerHandle:
    """The borrowed pooled partner (``pool``: a scenarios.pool.PartnerPool), reset to the scenario's start with the
    scenario's settings."""
    handle: PartnerHandle = sim_call("read the pooled partner", pool.handle, admin, member)
    sim_call("reset the pooled partner", handle.reset, now=s.start)
    wanted = {
        "programme": s.programme,
        "timezone": s.timezone,
        "billing_period": s.billing_period,
        "msp_registered": s.programme == "msp" if s.msp_registered is None else s.msp_registered,
    }
    changes = {k: v for k, v in wanted.items() if getattr(handle, k) != v}
    if "programme" in changes:  # the server derives msp_registered from a new programme unless it is sent
        changes["msp_registered"] = wanted["msp_registered"]
    if changes:
        handle = sim_call("set the pooled partner's settings", handle.update, **changes)
    return handle


def seed(partner: PartnerHandle, s: Setup, alias: Callable[[str], str]) -> list[LegacySubscription]:
    """Seed the setup's approval codes, legacy subscriptions and prepaid licences at the vendor (customers and refs
    through ``alias``); the legacy subscriptions as the broker is told of them."""
    for code in s.approval_codes:
        sim_call(
            f"seed approval code (line {code.line})",
            partner.create_approval_code,
            code.percent,
            code.expires_on,
            code.code,
        )
    legacy: list[LegacySubscription] = []
    for old in s.legacy:
        created = sim_call(
            f"seed legacy subscription {old.ref} (line {old.line})",
            partner.seed_legacy_subscription,
            alias(old.customer),
            old.sku,
            old.quantity,
            old.activation_date,
        )
        legacy.append(
            LegacySubscription(
                ref=alias(old.ref),
                customer=alias(old.customer),
                sku=old.sku,
                quantity=old.quantity,
                activation_date=old.activation_date,
                activation_code=created["activation_code"],
                vendor_id=created["id"],
            )
        )
    for prepaid in s.prepaid:
        sim_call(
            f"seed prepaid licences (line {prepaid.line})",
            partner.seed_kss_prepaid,
            alias(prepaid.customer),
            prepaid.product,
            prepaid.licence_count,
            prepaid.expires_on,
        )
    return legacy


def tenant_setup(
    scenario: Scenario, partner: PartnerHandle, legacy: Sequence[LegacySubscription], member: Any
) -> TenantSetup:
    """What the broker is told when the scenario starts (``member``: the pooled partner, or None)."""
    s = scenario.setup
    return TenantSetup(
        scenario_id=scenario.id,
        korm_url=partner.korm_url,
        korm_token=partner.token,
        kss_wsdl_url=partner.kss_soap_url + "?wsdl",
        kss_username=partner.kss_username,
        kss_password=partner.kss_password,
        now=s.start,
        timezone=s.timezone,
        prices=dict(s.prices),
        legacy=tuple(legacy),
        programme=partner.programme,
        billing_period=partner.billing_period,
        msp_registered=partner.msp_registered,
        terms=sim_call("read the partner's terms", partner.terms),
        partner_id=partner.id,
        pooled=member is not None,
        broker_tenant=(member.tenant or "") if member is not None else "",
    )
