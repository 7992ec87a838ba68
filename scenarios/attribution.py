"""Which rule each check of a scenario belongs to, and a rule's verdict in a scenario from its own checks.

A scenario names the rules it checks (``rules:``); each of its checks belongs to exactly one of them, or,
for what the broker charges its own customers, to the broker's declared billing policy (``POLICY``), which
is not a vendor rule. A check's rule is either written beside it (``rule: KORM-STOP-1``) or derived from
what it checks: a refusal's vendor code is the refusal of one rule; an activation-code relation is
KSS-CODE-1 / KORM-STOP-2; a vendor-state field, a step kind and a bill each have the rules that govern them,
most specific first. The first of those the scenario names wins, else the scenario's first rule.

A rule's verdict in a scenario (``rule_verdicts``): **failed** when one of its own checks failed at the scenario's
first point of failure (a step, the vendor's state at the end, or the bills, in that order); **not_reached** when
its checks come after a failure of another rule (or its own later failures follow from an earlier one), so
they ran on a state already wrong; **passed** otherwise. A named rule with no check of its own is checked by the
scenario as a whole: passed when nothing failed, not reached otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BILLS",
    "CODE_RULE",
    "END",
    "NOT_REACHED",
    "POLICY",
    "POLICY_TITLE",
    "Finding",
    "bill_events",
    "billing_rule",
    "code_rule",
    "follows_fault",
    "planned_positions",
    "reconcile_rule",
    "rule_verdicts",
    "scenario_checks",
    "step_rule",
    "vendor_check_rule",
    "vendor_fields",
]

POLICY = "BROKER-POLICY"
POLICY_TITLE = (
    "The broker bills its own customers by its declared billing policy (its prices, the vendor's "
    "units and periods); not a vendor rule"
)
NOT_REACHED = "not_reached"
CODE_RULE = "KSS-CODE-1"  # checked by the runner at every KSS step, whether the scenario names it or not
END = 10**6  # the position of the vendor-state checks at the end: after every step
BILLS = END + 1  # the bills (charges, reconciliation): computed from that state, so after it

# A vendor refusal code -> the rules whose refusal it is (KORM problem codes, KSS error codes).
_CODE_RULES: Mapping[str, tuple[str, ...]] = {
    "SUBSCRIPTION_DELETED": ("KORM-STOP-1",),
    "SUBSCRIPTION_ACTIVE": ("KORM-STOP-1",),
    "OUT_OF_RANGE": ("KORM-RANGE-1",),
    "NOT_YET_ACTIVE": ("KORM-ACT-1",),
    "INVALID_APPROVAL_CODE": ("KORM-APPR-1",),
    "APPROVAL_CODE_EXPIRED": ("KORM-APPR-1",),
    "APPROVAL_CODE_USED": ("KORM-APPR-1",),
    "DECREASE_NOT_ALLOWED": ("KORM-YEAR-1",),
    "SWITCH_NOT_ALLOWED": ("KORM-YEAR-2", "KORM-PAYG-3"),
    "SAME_PLAN": ("KORM-PAYG-3",),
    "SWITCH_TO_OTHER_PRODUCT": ("KORM-PAYG-3",),
    "MIGRATION_NOT_ALLOWED": ("KORM-MIG-1",),
    "UNKNOWN_SKU": ("KORM-PLAN-1", "SIM-ERR-1"),
    "TRIAL_NOT_AVAILABLE": ("KORM-TRIAL-1",),
    "4": ("KSS-STOP-1",),
    "9": ("KSS-PROD-1",),
    "705": ("KSS-PROD-1",),
    "704": ("KSS-MSP-2",),
    "703": ("KSS-PREPAID-1",),
    "701": ("KSS-TRIAL-1",),
    "702": ("KSS-TRIAL-2",),
    "706": ("KSS-PAUSE-1",),
    "707": ("KSS-QTY-1", "KSS-CODE-1"),
    "303": ("KSS-PAUSE-1", "KSS-STOP-1"),
    "402": ("KSS-PAUSE-1",),
    "501": ("KSS-PAUSE-1",),
}
_CODE_RELATION_RULES = ("KSS-CODE-1", "KORM-STOP-2", "KORM-MIG-1")
# A vendor-state check -> the rules that decide that field.
_VENDOR_FIELD_RULES: Mapping[str, tuple[str, ...]] = {
    "activation_code": _CODE_RELATION_RULES,
    "subscriptions": ("SIM-IDEM-1", "KSS-CODE-1", "KORM-STOP-2", "SIM-AUTH-1"),
    "active_subscriptions": ("SIM-IDEM-1", "KSS-CODE-1", "KORM-STOP-2", "SIM-AUTH-1"),
    "status": ("KORM-STOP-1", "KSS-STOP-1", "KSS-PAUSE-1", "KSS-RENEW-1", "KORM-MIG-1", "KORM-ACT-1"),
    "quantity": ("KORM-YEAR-1", "KORM-PAYG-1", "KORM-RANGE-1", "KORM-YEAR-3", "KSS-QTY-1", "KORM-MIG-1"),
    "sku": ("KORM-PAYG-3", "KORM-YEAR-2", "KORM-MIG-1", "KORM-RANGE-1"),
    "product": ("KSS-CODE-1", "KSS-TRIAL-2", "KSS-PREPAID-1"),
    "exists": ("KORM-STOP-1", "KSS-PROD-1", "KSS-PREPAID-1", "KSS-MSP-2", "SIM-ERR-1"),
}
# What the vendor bills: the rules of the vendor's bill, for a scenario that names none of the step's own.
_BILLING_RULES = frozenset(
    {
        "KORM-PAYG-2",
        "KORM-PAYG-3",
        "KORM-YEAR-3",
        "KORM-YEAR-4",
        "KORM-STOP-1",
        "KORM-APPR-1",
        "KORM-LEG-1",
        "KORM-LEG-2",
        "KORM-MIG-1",
        "KSS-BILL-0",
        "KSS-QTY-2",
        "KSS-QTY-3",
        "KSS-FREE-1",
        "KSS-TRIAL-2",
        "KSS-PAUSE-1",
        "KSS-STOP-1",
        "KSS-MSP-1",
        "KSS-PERIOD-1",
        "KSS-BILL-1",
        "KSS-RENEW-1",
    }
)


def _first(candidates: Iterable[str], rules: Sequence[str]) -> str | None:
    return next((rule for rule in candidates if rule in rules), None)


def code_rule(code: str, rules: Sequence[str]) -> str:
    """The rule a relayed vendor refusal ``code`` checks: the code's own rule, else SIM-ERR-1, else the first."""
    return _first(_CODE_RULES.get(str(code), ()), rules) or _first(("SIM-ERR-1",), rules) or rules[0]


def step_rule(
    kind_rules: Sequence[str],
    rules: Sequence[str],
    *,
    code: str | None = None,
    code_relation: bool = False,
    explicit: str | None = None,
    after_fault: bool = False,
) -> str:
    """The rule of a broker step's expectation. A step right after a ``fault`` step checks how the broker
    settles a failed call: SIM-IDEM-1 (done once), or for a relayed refusal its code's rule / SIM-ERR-1.
    ``kind_rules``: the rules a "done" of the step's kind checks (``StepKind.rules``)."""
    if explicit:
        return explicit
    if code is not None:
        return code_rule(code, rules)
    if after_fault and "SIM-IDEM-1" in rules:
        return "SIM-IDEM-1"
    if code_relation:
        found = _first(_CODE_RELATION_RULES, rules)
        if found:
            return found
    return _first(kind_rules, rules) or rules[0]


def vendor_check_rule(fields: Iterable[str], rules: Sequence[str], *, explicit: str | None = None) -> str:
    """The rule of an ``expect.vendor`` item, from the fields it checks (the first field that names a rule)."""
    if explicit:
        return explicit
    for name in fields:
        found = _first(_VENDOR_FIELD_RULES.get(name, ()), rules)
        if found:
            return found
    return rules[0]


def billing_rule(rules: Sequence[str], *, explicit: str | None = None) -> str:
    """The vendor rule of a bill line (a charge's ``vendor_cost``, a reconciliation row): the scenario's first
    rule about the vendor's bill, else its first rule."""
    if explicit:
        return explicit
    return _first(rules, _BILLING_RULES) or rules[0]  # type: ignore[arg-type]


@dataclass(frozen=True)
class Finding:
    """One check's outcome, attributed: its rule, where it stands in the run, whether it held."""

    rule: str
    position: int  # a step's index, END (vendor state) or BILLS (charges, reconciliation)
    ok: bool
    text: str = ""
    ref: str | None = None  # the subscription it is about, when one
    period: str | None = None  # the month of a bill check
    line: int = 0  # the scenario file's line of the expectation


def rule_verdicts(
    rules: Sequence[str], findings: Sequence[Finding], planned: Mapping[str, int], *, stopped_at: int | None = None
) -> dict[str, str]:
    """rule -> passed | failed | not_reached for one scenario that ran (see the module doc).

    ``planned``: rule -> the position of its last check in the scenario (``planned_positions``), so that a
    rule whose checks never ran (the run stopped before them) is not reached, not passed. ``stopped_at``:
    the position where the run stopped (a broker error). The broker's policy is included when it has a check.
    """
    failed_at = min((f.position for f in findings if not f.ok), default=None)
    if stopped_at is not None:
        failed_at = stopped_at if failed_at is None else min(failed_at, stopped_at)
    # the named rules, the broker's policy, and a rule the runner checks of itself (KSS-CODE-1) when it failed
    names = list(
        dict.fromkeys(
            list(rules)
            + [r for r in planned if r == POLICY]
            + [f.rule for f in findings if f.rule == POLICY or not f.ok]
        )
    )
    out: dict[str, str] = {}
    for rule in names:
        own = [f for f in findings if f.rule == rule]
        last = max([f.position for f in own] + [planned.get(rule, -1)])
        if any(not f.ok and f.position <= failed_at for f in own):  # type: ignore[operator]
            out[rule] = "failed"  # it failed first (with whatever failed at the same point)
        elif failed_at is None:
            out[rule] = "passed"
        elif last < 0 or last > failed_at:
            out[rule] = NOT_REACHED  # no check of its own, or its checks ran on a state already wrong
        else:
            out[rule] = "passed"  # every check of its own held before anything went wrong
    return out


# -- a scenario's checks ---------------------------------------------------------------------------------

_VENDOR_FIELDS = (
    "activation_code",
    "subscriptions",
    "active_subscriptions",
    "status",
    "quantity",
    "sku",
    "product",
    "exists",
)


def vendor_fields(check: Any) -> list[str]:
    """The fields an ``expect.vendor`` item checks, in the order that picks its rule."""
    return [name for name in _VENDOR_FIELDS if getattr(check, name, None) is not None]


def reconcile_rule(scenario: Any, period: str, ref: str | None) -> str:
    """The vendor rule of one ref's bill in one period (a reconciliation row, a charge's vendor cost): the
    ``rule`` of the charge line of that period and ref, else of the ``reconcile`` item, else derived from what
    happened to the ref by the end of that period (``bill_events``), else the scenario's first billing rule.
    A vendor line no ref claims is a subscription too many: SIM-IDEM-1, KSS-CODE-1 or KORM-STOP-2."""
    expect = scenario.expect
    for charge in expect.charges:
        if charge.period == period and charge.ref == ref and charge.rule:
            return str(charge.rule)
    explicit = dict(expect.reconcile_rules).get(period)
    if explicit:
        return explicit
    if ref is None:
        return _first(("SIM-IDEM-1", "KSS-CODE-1", "KORM-STOP-2"), scenario.rules) or billing_rule(scenario.rules)
    events = bill_events(scenario, period, ref)
    return events[0] if events else billing_rule(scenario.rules)


def _month(moment: Any, zone: Any) -> str:
    return moment.astimezone(zone).strftime("%Y-%m")


def bill_events(scenario: Any, period: str, ref: str) -> list[str]:
    """The vendor rules that decide ref's bill for ``period``, from what the steps did to it, most specific
    first: the free creation month, trial days, a stop or cancel, a pause, a reduction, an increase, a plan
    switch, an approval code, the legacy and yearly rules, the MSP tier, then the plain price rule."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(scenario.setup.timezone)
    mine = [s for s in scenario.steps if s.ref == ref and s.expect.outcome != "refused"]  # a refusal changes nothing
    before = [s for s in mine if _month(s.at, zone) <= period]
    within = [s for s in mine if _month(s.at, zone) == period]
    kinds_within = {s.kind for s in within}
    out: list[str] = []
    if scenario.service == "kss":
        created = next((s for s in mine if s.kind == "activate"), None)
        programme = scenario.setup.programme
        if created is not None and programme in ("reseller", "msp") and _month(created.at, zone) == period:
            out.append("KSS-FREE-1")
        trial = dt.timedelta(days=int(created.args.get("trial_days") or 0)) if created is not None else None
        if created is not None and trial:
            # the trial itself, and as long again after a product change (a broker must not restart it)
            starts = [created.at] + [s.at for s in mine if s.kind == "change_product"]
            if any(_month(start, zone) <= period <= _month(start + trial, zone) for start in starts):
                out.append("KSS-TRIAL-2")
        if any(s.kind in ("cancel_at_month_end", "hard_cancel", "reactivate") for s in before):
            out.append("KSS-STOP-1")
        if any(s.kind in ("pause", "resume") for s in before):
            out.append("KSS-PAUSE-1")
        counts = [s for s in within if s.kind == "change_count"]
        previous = [s for s in mine if s.kind == "change_count" and _month(s.at, zone) < period]
        if counts or previous:
            out += ["KSS-QTY-3", "KSS-QTY-2"]
        if programme == "msp":
            out.append("KSS-MSP-1")
        if scenario.setup.billing_period == "30_days":
            out.append("KSS-PERIOD-1")
        out += ["KSS-BILL-0", "KSS-BILL-1"]
    else:
        seed = next((seed for seed in scenario.setup.legacy if seed.ref == ref), None)
        migrations = [s for s in scenario.steps if s.kind == "migrate" and s.expect.outcome != "refused"]
        legacy_now = seed is not None and not any(_month(s.at, zone) <= period for s in migrations)
        order = next((s for s in mine if s.kind == "order"), None)
        yearly = "YEARLY" in str(order.args.get("sku", "")) if order is not None else False
        if any(s.kind == "stop" for s in before):
            out.append("KORM-STOP-1")
        if legacy_now:  # a legacy month: free in the activation month, else charged at its maximum count
            assert seed is not None
            out.append("KORM-LEG-1" if seed.activation_date.strftime("%Y-%m") == period else "KORM-LEG-2")
        else:
            if "switch_plan" in kinds_within:
                out.append("KORM-PAYG-3")
            if "change_quantity" in kinds_within or (yearly and "change_quantity" in {s.kind for s in before}):
                out.append("KORM-YEAR-3" if yearly else "KORM-PAYG-2")
            if seed is not None and any(_month(s.at, zone) == period for s in migrations):
                out.append("KORM-MIG-1")
            if order is not None and order.args.get("approval_code"):
                out.append("KORM-APPR-1")
            out.append("KORM-YEAR-4" if yearly else "KORM-PAYG-2")
    return out


def scenario_checks(scenario: Any) -> list[tuple[str, int, str]]:
    """Every check a scenario makes, as (rule, position, what): the steps' expectations, then at END the
    vendor items, the charges (the customer's side to ``POLICY``, ``vendor_cost`` to a vendor rule) and the
    reconciliation."""
    rules = scenario.rules
    out: list[tuple[str, int, str]] = []
    for step in scenario.steps:
        if step.spec is None:  # advance, fault: nothing to expect
            continue
        rule = step_rule(
            step.spec.rules,
            rules,
            code=step.expect.code,
            code_relation=step.expect.activation_code is not None,
            explicit=step.expect.rule,
            after_fault=follows_fault(scenario, step),
        )
        out.append((rule, step.index, f"step {step.index} ({step.label()}): {step.expect.describe()}"))
    for check in scenario.expect.vendor:
        out.append(
            (
                vendor_check_rule(vendor_fields(check), rules, explicit=check.rule),
                END,
                f"vendor (line {check.line}) {check.describe()}",
            )
        )
    for charge in scenario.expect.charges:
        if charge.units is not None or charge.amount is not None or charge.customer is not None:
            out.append(
                (POLICY, BILLS, f"charge {charge.period} {charge.ref} (line {charge.line}): the customer's invoice")
            )
        if charge.vendor_cost is not None:
            out.append(
                (
                    reconcile_rule(scenario, charge.period, charge.ref),
                    BILLS,
                    f"charge {charge.period} {charge.ref} (line {charge.line}): vendor cost",
                )
            )
    refs = scenario.refs
    for period in scenario.expect.reconcile:
        for ref in refs:
            out.append((reconcile_rule(scenario, period, ref), BILLS, f"reconciliation {period} {ref}"))
    return out


def follows_fault(scenario: Any, step: Any) -> bool:
    """Whether the step right before ``step`` arms a fault (so ``step`` meets it)."""
    before = [s for s in scenario.steps if s.index == step.index - 1]
    return bool(before) and before[0].kind == "fault"


def planned_positions(scenario: Any) -> dict[str, int]:
    """rule -> the position of its last check in the scenario."""
    out: dict[str, int] = {}
    for rule, position, _ in scenario_checks(scenario):
        out[rule] = max(out.get(rule, -1), position)
    return out
