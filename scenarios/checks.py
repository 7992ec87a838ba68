"""The checks of a scenario's end as pure functions of data: the vendor's state against ``expect.vendor``, the
broker's charges against ``expect.charges``, and the reconciliation of what the broker expects the vendor to bill
with the vendor's bill. Each gives the report's rows and an :class:`Outcome` per check, in the order they are made
(the runner records them: a failure, or a passed check attributed to its rule)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ksimkit.scenarios import attribution
from ksimkit.scenarios.attribution import BILLS, END
from ksimkit.scenarios.brokers.base import Charge, StepResult
from ksimkit.scenarios.model import CodeCheck, Scenario, StepExpectation
from ksimkit.scenarios.results import ChargeRow, CheckRecord, ReconRow, money
from ksimkit.scenarios.vendor_views import Bill, VendorSubscription

__all__ = [
    "Outcome",
    "by_ref",
    "check_charges",
    "check_step",
    "check_vendor",
    "code_relation",
    "not_checked",
    "reconcile",
    "split",
    "vendor_code_problem",
]

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Outcome:
    """One check made: ``ok``, what it says, the rule it is attributed to, its position (a step's index, or
    ``attribution.END`` / ``attribution.BILLS``) and where it points (``ref``, ``period``, ``line``)."""

    ok: bool
    text: str
    rule: str
    position: int
    where: dict[str, Any] = field(default_factory=dict)


def code_relation(
    codes: Mapping[str, Sequence[str]], ref: str | None, check: CodeCheck, current: str | None = None
) -> str | None:
    """None when the activation-code relation holds, else what is wrong (``codes``: every code seen per ref)."""
    if ref is None:
        return "an activation-code check needs a ref"
    mine = current or (codes[ref][-1] if codes.get(ref) else None)
    if check.relation == "unchanged":
        seen = list(dict.fromkeys(codes.get(ref, [])))
        if not seen:
            return f"the broker never gave an activation code for {ref}"
        if len(seen) > 1:
            return f"{ref}'s activation code changed: {' -> '.join(seen)}"
        return None
    other_ref = check.ref or ""
    other = codes[other_ref][-1] if codes.get(other_ref) else None
    if mine is None or other is None:
        missing = ref if mine is None else other_ref
        return f"the broker holds no activation code for {missing}"
    if check.relation == "same_as" and mine != other:
        return f"{ref}'s activation code {mine} differs from {other_ref}'s {other}"
    if check.relation == "different_from" and mine == other:
        return f"{ref} has the same activation code as {other_ref} ({mine}); the vendor issues a new one"
    return None


# -- the end --


def check_step(
    expect: StepExpectation,
    result: StepResult,
    codes: Mapping[str, Sequence[str]],
    ref: str | None,
    journal_codes: Callable[[], Sequence[str] | None],
) -> tuple[list[str], bool]:
    """What is wrong with a broker step's ``result`` against its ``expect`` (``journal_codes``: the vendor's error
    codes during the step, read only when the broker relayed another code; None without a journal), and whether the
    expected code was found in the journal instead of relayed."""
    problems: list[str] = []
    from_journal = False
    if expect.outcome != "any" and result.outcome != expect.outcome:
        said = result.outcome + (f" ({result.code})" if result.code else "")
        if result.message and result.outcome == "refused":
            said += f": {result.message}"
        problems.append(f"expected {expect.describe()}, the broker told its customer {said}")
    elif expect.code is not None and (result.code or "") != expect.code:
        problem = vendor_code_problem(expect.code, journal_codes(), result.code)
        if problem is None:
            from_journal = True
        else:
            problems.append(problem)
    if expect.activation_code is not None and not problems:
        problem = code_relation(codes, ref, expect.activation_code, result.activation_code)
        if problem:
            problems.append(problem)
    return problems, from_journal


def vendor_code_problem(expected: str, seen: Sequence[str] | None, relayed: str | None) -> str | None:
    """None when the vendor answered the broker ``expected`` during the step (``seen``: the codes in ksim's journal;
    the broker need not relay it), else what is wrong. Without a journal (None), the relayed code decides."""
    if seen is not None:
        if expected in seen:
            return None
        said = ", ".join(dict.fromkeys(seen)) or "no error code"
        return f"expected the vendor to refuse with {expected}; ksim's journal shows the vendor answered {said}" + (
            f" (the broker told its customer {relayed})" if relayed else ""
        )
    return (
        f"expected the vendor's code {expected} to be relayed, the broker relayed {relayed or 'no code'} "
        "(ksim's journal could not be read)"
    )


def check_vendor(
    scenario: Scenario,
    vendor: Sequence[VendorSubscription],
    matches: Mapping[str, VendorSubscription],
    final_codes: Mapping[str, str | None],
    codes: Mapping[str, Sequence[str]],
    alias: Callable[[str], str],
) -> tuple[list[CheckRecord], list[Outcome]]:
    """The scenario's ``expect.vendor`` items against the vendor's state at the end. ``matches``: ref -> the vendor's
    subscription; ``final_codes``: the broker's activation code per ref at the end; ``codes``: every code seen."""
    records: list[CheckRecord] = []
    outcomes: list[Outcome] = []

    def record(line: int, subject: str, expected: str, actual: str, ok: bool, explanation: str | None) -> None:
        records.append(
            CheckRecord(
                line=line, subject=subject, expected=expected, actual=actual, ok=ok, explanation=explanation, rule=rule
            )
        )
        ref = subject[4:] if subject.startswith("ref ") else None
        where = {"ref": ref, "line": line}
        if not ok:
            outcomes.append(Outcome(False, f"vendor check (line {line}) {subject}: {explanation}", rule, END, where))
        else:
            outcomes.append(Outcome(True, f"vendor check (line {line}) {subject}: {expected}", rule, END, where))

    for check in scenario.expect.vendor:
        rule = attribution.vendor_check_rule(attribution.vendor_fields(check), scenario.rules, explicit=check.rule)
        if check.ref is not None:
            ref = check.ref
            sub = matches.get(ref)
            code = final_codes.get(ref)
            if check.exists is not None:
                ok = (sub is not None) == check.exists
                record(
                    check.line,
                    f"ref {ref}",
                    "exists" if check.exists else "does not exist",
                    f"vendor subscription {sub.id}" if sub else "none",
                    ok,
                    None
                    if ok
                    else (
                        f"the vendor holds {sub.id} for {ref}" if sub else f"the vendor holds no subscription for {ref}"
                    ),
                )
            wants = [
                (name, getattr(check, name))
                for name in ("status", "quantity", "sku", "product")
                if getattr(check, name) is not None
            ]
            if wants and sub is None:
                why = (
                    f"the broker's activation code for {ref} ({code}) is not one the vendor issued"
                    if code
                    else f"the broker holds no activation code for {ref}, and no vendor subscription matches it"
                )
                record(check.line, f"ref {ref}", ", ".join(f"{k} {v}" for k, v in wants), "not found", False, why)
            for name, wanted in wants if sub is not None else []:
                assert sub is not None
                actual: Any = {
                    "status": sub.status,
                    "quantity": sub.quantity,
                    "sku": sub.sku,
                    "product": sub.product,
                }[name]
                ok = str(actual).lower() == str(wanted).lower() if name == "status" else actual == wanted
                record(
                    check.line,
                    f"ref {ref}",
                    f"{name} {wanted}",
                    f"{name} {actual}",
                    ok,
                    None
                    if ok
                    else f"the vendor's subscription {sub.id} for {ref} has {name} {actual}, expected {wanted}",
                )
            if check.activation_code is not None:
                problem = code_relation(codes, ref, check.activation_code, code)
                if problem is None and code and sub is None:
                    problem = f"the broker's activation code for {ref} ({code}) is not one the vendor issued"
                if (
                    problem is None
                    and check.activation_code.relation == "unchanged"
                    and sub is not None
                    and sub.activation_code != code
                ):
                    problem = f"the vendor's code for {ref} is {sub.activation_code}, the broker holds {code}"
                record(
                    check.line,
                    f"ref {ref}",
                    f"activation code {check.activation_code.describe()}",
                    code or "none",
                    problem is None,
                    problem,
                )
        else:
            customer = check.customer
            theirs = [v for v in vendor if v.customer == alias(customer or "")]
            if check.subscriptions is not None:
                ok = len(theirs) == check.subscriptions
                record(
                    check.line,
                    f"customer {customer}",
                    f"{check.subscriptions} subscription(s) at the vendor",
                    f"{len(theirs)}",
                    ok,
                    None
                    if ok
                    else f"the vendor holds {len(theirs)} subscription(s) for {customer} "
                    f"({', '.join(v.id for v in theirs) or 'none'}), expected "
                    f"{check.subscriptions}",
                )
            if check.active_subscriptions is not None:
                active = [v for v in theirs if v.active]
                ok = len(active) == check.active_subscriptions
                record(
                    check.line,
                    f"customer {customer}",
                    f"{check.active_subscriptions} active subscription(s) at the vendor",
                    f"{len(active)}",
                    ok,
                    None
                    if ok
                    else f"the vendor holds {len(active)} active subscription(s) for "
                    f"{customer}, expected {check.active_subscriptions}",
                )
    return records, outcomes


def by_ref(charges: Iterable[Charge]) -> dict[str, dict[str, Any]]:
    """The broker's lines of one period summed per ref (units or vendor cost None: not on its invoice)."""
    out: dict[str, dict[str, Any]] = {}
    for charge in charges:
        entry = out.setdefault(
            charge.ref, {"units": 0, "amount": ZERO, "vendor_cost": ZERO, "lines": 0, "customers": []}
        )
        if charge.units is None or entry["units"] is None:
            entry["units"] = None  # not on the broker's invoice: the checks that need it are not done
        else:
            entry["units"] += int(charge.units)
        entry["amount"] += Decimal(charge.amount)
        if charge.vendor_cost is None or entry["vendor_cost"] is None:
            entry["vendor_cost"] = None
        else:
            entry["vendor_cost"] += Decimal(charge.vendor_cost)
        entry["lines"] += 1
        if charge.customer and charge.customer not in entry["customers"]:
            entry["customers"].append(charge.customer)
    return out


def split(charges: Iterable[Charge], ref: str) -> list[dict[str, Any]]:
    """The broker's own lines of one ref in one period, for the per-line and per-SKU tables (units and vendor cost
    ``None`` where the broker's invoices do not show them)."""
    return [
        {
            "sku": c.sku or "",
            "kind": c.kind or "",
            "units": None if c.units is None else int(c.units),
            "amount": money(Decimal(c.amount)),
            "vendor_cost": money(c.vendor_cost),
            "customer": c.customer,
        }
        for c in charges
        if c.ref == ref
    ]


def check_charges(
    scenario: Scenario, broker_charges: Mapping[str, Sequence[Charge]]
) -> tuple[list[ChargeRow], list[Outcome]]:
    """The broker's charges per period and ref against ``expect.charges``: the customer's side (units, amount,
    customer: the broker's policy) and the vendor cost (the line's vendor rule); a line nobody expects fails."""
    rows: list[ChargeRow] = []
    outcomes: list[Outcome] = []
    expect = scenario.expect
    for period in expect.charge_periods:
        actual = by_ref(broker_charges.get(period, []))
        wanted = [c for c in expect.charges if c.period == period]
        for exp in wanted:
            got = actual.get(exp.ref, {"units": 0, "amount": ZERO, "vendor_cost": ZERO, "lines": 0, "customers": []})
            row = ChargeRow(
                period=period,
                ref=exp.ref,
                expected=True,
                expected_units=exp.units,
                expected_amount=money(exp.amount),
                expected_vendor_cost=money(exp.vendor_cost),
                units=got["units"] if got["units"] is not None else 0,
                amount=money(got["amount"]) or "0.00",
                vendor_cost=money(got["vendor_cost"]) or "0.00",
                lines=got["lines"],
                customers=list(got["customers"]),
                line=exp.line,
            )
            row.vendor_rule = attribution.reconcile_rule(scenario, period, exp.ref)
            row.split = split(broker_charges.get(period, []), exp.ref)
            problems = []  # the customer's side: the broker's policy (units None: not on its invoices)
            if exp.units is not None and got["units"] is not None and got["units"] != exp.units:
                problems.append(f"units {got['units']}, expected {exp.units}")
            if exp.amount is not None and got["amount"] != exp.amount:
                problems.append(f"amount {row.amount}, expected {money(exp.amount)}")
            if exp.customer is not None and got["lines"] and got["customers"] != [exp.customer]:
                problems.append(f"billed to {', '.join(got['customers']) or 'nobody'}, expected {exp.customer}")
            cost_problem = None  # the vendor's side: the line's vendor rule
            if exp.vendor_cost is not None and got["vendor_cost"] is not None and got["vendor_cost"] != exp.vendor_cost:
                cost_problem = f"vendor cost {row.vendor_cost}, expected {money(exp.vendor_cost)}"
            what = "no line" if not got["lines"] else f"{got['lines']} line(s)"
            where = f"charge {period} {exp.ref} (line {exp.line})"
            bills = attribution.BILLS
            at = {"ref": exp.ref, "period": period, "line": exp.line}
            if problems:
                outcomes.append(
                    Outcome(False, f"{where}: the broker billed {what}: " + "; ".join(problems), row.rule, bills, at)
                )
            elif exp.units is not None or exp.amount is not None or exp.customer is not None:
                outcomes.append(Outcome(True, f"{where}: the customer's invoice", row.rule, bills, at))
            if cost_problem:
                outcomes.append(
                    Outcome(False, f"{where}: the broker billed {what}: {cost_problem}", row.vendor_rule, bills, at)
                )
            elif exp.vendor_cost is not None:
                outcomes.append(Outcome(True, f"{where}: vendor cost", row.vendor_rule, bills, at))
            if problems or cost_problem:
                row.ok = False
                row.explanation = f"the broker billed {what}: " + "; ".join(problems + [cost_problem or ""]).strip("; ")
            rows.append(row)
        named = {c.ref for c in wanted}
        for ref, got in actual.items():
            if ref in named or (not got["units"] and got["amount"] == 0):
                continue
            row = ChargeRow(
                period=period,
                ref=ref,
                expected=False,
                units=got["units"] or 0,
                amount=money(got["amount"]) or "0.00",
                vendor_cost=money(got["vendor_cost"]) or "0.00",
                lines=got["lines"],
                customers=list(got["customers"]),
                ok=False,
                explanation=f"the broker billed {ref} in {period} ({got['units']} units, "
                f"{money(got['amount'])}); the scenario expects no charge",
                split=split(broker_charges.get(period, []), ref),
            )
            unexpected = {"ref": ref, "period": period}
            outcomes.append(Outcome(False, f"charge {period} {ref}: {row.explanation}", row.rule, BILLS, unexpected))
            rows.append(row)
    return rows, outcomes


def reconcile(
    scenario: Scenario,
    broker_charges: Mapping[str, Sequence[Charge]],
    vendor_bills: Mapping[str, Bill],
    matches: Mapping[str, VendorSubscription],
    vendor: Sequence[VendorSubscription],
    final_codes: Mapping[str, str | None],
) -> tuple[list[ReconRow], list[Outcome]]:
    """Each reconciled period: what the broker expects the vendor to bill per ref against the vendor's bill; a
    vendor line no ref of the broker accounts for fails."""
    rows: list[ReconRow] = []
    outcomes: list[Outcome] = []
    codes = {v.id: v.activation_code for v in vendor}
    for period in scenario.expect.reconcile:
        ours = by_ref(broker_charges.get(period, []))
        theirs = vendor_bills.get(period, {})
        claimed: set[str] = set()
        refs = list(dict.fromkeys(list(ours) + [r for r, v in matches.items() if v.id in theirs]))
        for ref in refs:
            mine: dict[str, Any] = ours.get(ref, {"units": 0, "vendor_cost": ZERO, "lines": 0})
            sub = matches.get(ref)
            nothing: dict[str, Any] = {"units": 0, "amount": ZERO}
            bill: dict[str, Any] = theirs.get(sub.id, nothing) if sub else nothing
            if sub:
                claimed.add(sub.id)
            row = ReconRow(
                period=period,
                ref=ref,
                vendor_id=sub.id if sub else None,
                broker_units=mine["units"] or 0,
                vendor_units=bill["units"],
                broker_cost=money(mine["vendor_cost"]) or "0.00",
                vendor_amount=money(bill["amount"]) or "0.00",
                rule=attribution.reconcile_rule(scenario, period, ref),
            )
            problems = []
            unexposed = mine["units"] is None and mine["vendor_cost"] is None  # only its amounts: judge by them
            if sub is None and (mine["units"] or mine["vendor_cost"] or (unexposed and mine.get("amount"))):
                code = final_codes.get(ref)
                problems.append(
                    f"the broker bills {ref} but the vendor holds no subscription with its activation "
                    f"code ({code or 'none stored'})"
                )
            else:
                if mine["units"] is not None and mine["units"] != bill["units"]:
                    problems.append(f"the broker counts {mine['units']} units, the vendor bills {bill['units']}")
                if mine["vendor_cost"] is not None and mine["vendor_cost"] != bill["amount"]:
                    problems.append(
                        f"the broker expects a vendor cost of {row.broker_cost}, the vendor bills {row.vendor_amount}"
                    )
            where = {"ref": ref, "period": period}
            if problems:
                row.ok = False
                row.explanation = "; ".join(problems)
                outcomes.append(
                    Outcome(False, f"reconciliation {period} {ref}: {row.explanation}", row.rule, BILLS, where)
                )
            else:
                outcomes.append(Outcome(True, f"reconciliation {period} {ref}", row.rule, BILLS, where))
            rows.append(row)
        for vendor_id, bill in theirs.items():
            if vendor_id in claimed or (bill["units"] == 0 and bill["amount"] == 0):
                continue
            row = ReconRow(
                period=period,
                ref=None,
                vendor_id=vendor_id,
                vendor_units=bill["units"],
                vendor_amount=money(bill["amount"]) or "0.00",
                ok=False,
                rule=attribution.reconcile_rule(scenario, period, None),
                explanation=f"the vendor bills subscription {vendor_id} (code "
                f"{codes.get(vendor_id) or '?'}, customer {bill.get('customer')}) "
                f"that no ref of the broker accounts for",
            )
            where = {"period": period}
            outcomes.append(Outcome(False, f"reconciliation {period}: {row.explanation}", row.rule, BILLS, where))
            rows.append(row)

    # -- timeline --
    return rows, outcomes


def not_checked(scenario: Scenario, billing: Any, broker_charges: Mapping[str, Sequence[Charge]]) -> list[str]:
    """Which invoice checks the broker's data or declared policy (``billing``: a BillingPolicy, or None) leaves out:
    they are skipped, not passed."""
    out: list[str] = []
    expect = scenario.expect
    lines = [c for charges in broker_charges.values() for c in charges]
    if billing is not None and billing.policy == "own" and expect.charges:
        out.append(
            "customer charges (amounts, units): the broker bills its customers by its "
            "own policy; the reconciliation against the vendor's bill is checked"
        )
    if billing is not None and billing.units != "vendor" and (expect.charges or expect.reconcile):
        out.append(
            f"units: the broker reports {billing.units.replace('_', '-')}, the "
            "scenarios count the vendor's units (licence-days for PAYG, licences)"
        )
    elif any(c.units is None for c in lines):
        out.append("units: the broker's invoice lines carry none")
    if expect.reconcile and any(c.vendor_cost is None for c in lines):
        out.append("reconciliation of costs: the broker's invoice lines carry no vendor cost (what it expects to pay)")
    return out
