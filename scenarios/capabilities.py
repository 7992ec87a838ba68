"""What a broker may or may not support, and what each scenario needs: the vocabulary, declared once.

An adapter file declares its broker's capabilities (``capabilities: {legacy: false, yearly: true}``); a scenario
that needs one the broker does not declare is *not applicable*, never failed. Without a ``capabilities`` key every
capability is assumed (what the adapter's methods allow decides, as before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the model imports nothing from here
    from ksimkit.scenarios.model import Scenario

__all__ = ["CAPABILITIES", "required_capabilities", "unsupported"]

# name -> what a scenario does that needs it
CAPABILITIES: dict[str, str] = {
    "legacy": "takes over the partner's KORM legacy (pre-2021) subscriptions",
    "migration": "migrates KORM legacy subscriptions to PAYG",
    "yearly": "sells KORM Yearly plans",
    "plan_switch": "switches a KORM subscription to another band or plan",
    "approval_codes": "orders with a KORM approval (discount) code",
    "kss_trial": "activates KSS subscriptions with a trial",
    "kss_pause": "pauses and resumes KSS subscriptions",
    "kss_product_change": "changes a KSS subscription's product",
    "kss_soft_cancel": "cancels a KSS subscription at a month's end",
    "kss_hard_cancel": "cancels a KSS subscription at once",
    "kss_renew": "renews a cancelled KSS subscription",
    "kss_prepaid": "works with customers who hold prepaid KSS licences",
    "kss_xsp": "is in the KSS xSP programme",
    "kss_reseller": "is in the KSS reseller programme",
    "kss_msp": "is in the KSS MSP programme",
    "thirty_day_periods": "bills KSS by 30-day periods (not calendar months)",
}


def required_capabilities(scenario: Scenario) -> set[str]:
    """Every capability the scenario needs, from its setup and its steps."""
    setup = scenario.setup
    needs: set[str] = set()
    if setup.legacy:
        needs.add("legacy")
    if setup.approval_codes:
        needs.add("approval_codes")
    if setup.prepaid:
        needs.add("kss_prepaid")
    if scenario.service == "kss":
        needs.add(f"kss_{setup.programme}")
        if setup.billing_period == "30_days":
            needs.add("thirty_day_periods")
    for step in scenario.steps:
        if step.spec is not None and step.spec.capability:  # the step's own (scenarios/steps.py)
            needs.add(step.spec.capability)
        if step.kind == "reactivate" and scenario.service == "kss":
            needs.add("kss_renew")
        if step.kind == "activate" and step.args.get("trial_days"):
            needs.add("kss_trial")
        if step.kind == "order" and step.args.get("approval_code"):
            needs.add("approval_codes")
        if "YEARLY" in str(step.args.get("sku") or "").upper():
            needs.add("yearly")
    return needs


def unsupported(scenario: Scenario, declared: frozenset[str] | None) -> list[str]:
    """The capabilities the scenario needs that ``declared`` lacks (none when nothing is declared)."""
    if declared is None:
        return []
    return sorted(required_capabilities(scenario) - declared)
