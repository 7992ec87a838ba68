"""Parsing what a scenario expects: of a step (``expect`` under it) and at the end (``expect``: the vendor's
state, the broker's charges, the reconciliation)."""

from __future__ import annotations

from typing import Any

import yaml

from ksimkit.scenarios.model import ChargeExpectation, CodeCheck, Expectations, StepExpectation, VendorCheck
from ksimkit.scenarios.yaml_reader import YamlReader

__all__ = ["parse_code_check", "parse_expect", "parse_step_expect"]

OUTCOMES = ("done", "refused", "any")
_STEP_EXPECT_KEYS = {"outcome", "code", "activation_code", "rule"}
_EXPECT_KEYS = {"vendor", "charges", "reconcile"}
_VENDOR_REF_KEYS = {"ref", "status", "quantity", "count", "sku", "product", "activation_code", "exists", "rule"}
_VENDOR_CUSTOMER_KEYS = {"customer", "subscriptions", "active_subscriptions", "rule"}
_CHARGE_KEYS = {"period", "ref", "units", "amount", "vendor_cost", "customer", "rule"}


def parse_code_check(
    r: YamlReader, node: yaml.Node, what: str, pending_refs: list[tuple[str, yaml.Node]]
) -> CodeCheck | None:
    if isinstance(node, yaml.ScalarNode):
        value = r.scalar(node)
        if value == "unchanged":
            return CodeCheck("unchanged")
        r.err(node, f"{what} must be {{same_as: REF}}, {{different_from: REF}} or unchanged, not {r.kind(node)}")
        return None
    m = r.mapping(node, what, {"same_as", "different_from", "unchanged"})
    if m is None:
        return None
    if len(m) != 1:
        r.err(node, f"{what} takes exactly one of same_as, different_from, unchanged")
        return None
    ((key, (_, value_node)),) = m.items()
    if key == "unchanged":
        flag = r.boolean(value_node, f"{what}.unchanged")
        if flag is not True:
            if flag is False:
                r.err(value_node, f"{what}.unchanged: only `unchanged: true` is meaningful")
            return None
        return CodeCheck("unchanged")
    ref = r.string(value_node, f"{what}.{key}")
    if ref is None:
        return None
    pending_refs.append((ref, value_node))
    return CodeCheck(key, ref)


def parse_step_expect(
    r: YamlReader, node: yaml.Node, what: str, pending_refs: list[tuple[str, yaml.Node]]
) -> StepExpectation | None:
    m = r.mapping(node, f"{what}: expect", _STEP_EXPECT_KEYS)
    if m is None:
        return None
    outcome = "done"
    ok = True
    if "outcome" in m:
        value = r.string(m["outcome"][1], f"{what}: expect.outcome")
        if value not in OUTCOMES:
            if value is not None:
                r.err(m["outcome"][1], f"{what}: expect.outcome must be one of {', '.join(OUTCOMES)}, not {value!r}")
            ok = False
        else:
            outcome = value
    code = None
    if "code" in m:
        code = r.code(m["code"][1], f"{what}: expect.code")
        ok &= code is not None
        if code is not None and "outcome" not in m:
            outcome = "refused"  # a code is what a refusal carries
    check = None
    if "activation_code" in m:
        check = parse_code_check(r, m["activation_code"][1], f"{what}: expect.activation_code", pending_refs)
        ok &= check is not None
    rule = r.string(m["rule"][1], f"{what}: expect.rule") if "rule" in m else None
    if not ok or ("rule" in m and rule is None):
        return None
    return StepExpectation(outcome=outcome, code=code, activation_code=check, line=r.line(node), rule=rule)


def parse_expect(r: YamlReader, node: yaml.Node, defined: dict[str, int]) -> Expectations:
    if isinstance(node, yaml.ScalarNode) and r.scalar(node) is None:
        return Expectations()
    m = r.mapping(node, "expect", _EXPECT_KEYS)
    if m is None:
        return Expectations()
    pending_refs: list[tuple[str, yaml.Node]] = []

    def need_ref(value_node: yaml.Node, what: str) -> str | None:
        ref = r.string(value_node, what)
        if ref is not None:
            pending_refs.append((ref, value_node))
        return ref

    vendor: list[VendorCheck] = []
    if "vendor" in m:
        for item in r.sequence(m["vendor"][1], "expect.vendor") or []:
            im = r.mapping(item, "expect.vendor item", _VENDOR_REF_KEYS | _VENDOR_CUSTOMER_KEYS)
            if im is None:
                continue
            if ("ref" in im) == ("customer" in im):
                r.err(item, "expect.vendor item: name exactly one of ref (a subscription) or customer")
                continue
            allowed = _VENDOR_REF_KEYS if "ref" in im else _VENDOR_CUSTOMER_KEYS
            bad = [key for key in im if key not in allowed]
            for key in bad:
                r.err(
                    im[key][0],
                    f"expect.vendor item: {key!r} does not go with "
                    f"{'ref' if 'ref' in im else 'customer'} (allowed: {', '.join(sorted(allowed))})",
                )
            if bad:
                continue
            if len(set(im) - {"rule"}) == 1:
                r.err(item, "expect.vendor item: nothing to check")
                continue
            values: dict[str, Any] = {"line": r.line(item)}
            good = True
            for key, (_, value_node) in im.items():
                what = f"expect.vendor {key}"
                if key == "ref":
                    value: Any = need_ref(value_node, what)
                elif key in ("customer", "status", "sku", "product", "rule"):
                    value = r.string(value_node, what)
                elif key in ("quantity", "count"):
                    value = r.integer(value_node, what, minimum=0)
                    key = "quantity"
                elif key in ("subscriptions", "active_subscriptions"):
                    value = r.integer(value_node, what, minimum=0)
                elif key == "exists":
                    value = r.boolean(value_node, what)
                else:  # activation_code
                    value = parse_code_check(r, value_node, "expect.vendor activation_code", pending_refs)
                if value is None:
                    good = False
                values[key] = value
            if good:
                vendor.append(VendorCheck(**values))

    charges: list[ChargeExpectation] = []
    if "charges" in m:
        seen: dict[tuple[str, str, str | None], int] = {}
        for item in r.sequence(m["charges"][1], "expect.charges") or []:
            im = r.mapping(item, "expect.charges item", _CHARGE_KEYS, ("period", "ref"))
            if im is None or "period" not in im or "ref" not in im:
                continue
            if not {"units", "amount", "vendor_cost"} & set(im):
                r.err(item, "expect.charges item: give at least one of units, amount, vendor_cost")
                continue
            period = r.period(im["period"][1], "expect.charges period")
            ref = need_ref(im["ref"][1], "expect.charges ref")
            units = r.integer(im["units"][1], "expect.charges units", minimum=0) if "units" in im else None
            amount = r.money(im["amount"][1], "expect.charges amount") if "amount" in im else None
            cost = r.money(im["vendor_cost"][1], "expect.charges vendor_cost") if "vendor_cost" in im else None
            customer = r.string(im["customer"][1], "expect.charges customer") if "customer" in im else None
            rule = r.string(im["rule"][1], "expect.charges rule") if "rule" in im else None
            if (
                None in (period, ref)
                or ("units" in im and units is None)
                or ("amount" in im and amount is None)
                or ("vendor_cost" in im and cost is None)
                or ("customer" in im and customer is None)
                or ("rule" in im and rule is None)
            ):
                continue
            assert period is not None and ref is not None
            line_key = (period, ref, customer)
            if line_key in seen:
                r.err(
                    item,
                    f"expect.charges: {period} {ref} is already expected at line {seen[line_key]}; "
                    "give one line per period and ref (the sum of the broker's lines is compared)",
                )
                continue
            seen[line_key] = r.line(item)
            charges.append(
                ChargeExpectation(
                    period=period,
                    ref=ref,
                    units=units,
                    amount=amount,
                    vendor_cost=cost,
                    customer=customer,
                    line=r.line(item),
                    rule=rule,
                )
            )

    reconcile: list[str] = []
    reconcile_rules: list[tuple[str, str]] = []
    if "reconcile" in m:
        for item in r.sequence(m["reconcile"][1], "expect.reconcile") or []:
            if isinstance(item, yaml.MappingNode):  # {period: 2026-04, rule: KSS-QTY-3}
                pm = r.mapping(item, "expect.reconcile item", {"period", "rule"}, ("period", "rule"))
                if pm is None or "period" not in pm or "rule" not in pm:
                    continue
                period = r.period(pm["period"][1], "expect.reconcile period")
                rule = r.string(pm["rule"][1], "expect.reconcile rule")
                if period is not None and rule is not None:
                    reconcile_rules.append((period, rule))
                item = pm["period"][1]
            else:
                period = r.period(item, "expect.reconcile period")
            if period is not None:
                if period in reconcile:
                    r.err(item, f"expect.reconcile: {period} is listed twice")
                else:
                    reconcile.append(period)

    for ref, ref_node in pending_refs:
        if ref not in defined:
            r.err(ref_node, f"undefined ref {ref!r} (no order, activate or setup.legacy defines it)")
    return Expectations(
        vendor=tuple(vendor),
        charges=tuple(charges),
        reconcile=tuple(reconcile),
        line=r.line(node),
        reconcile_rules=tuple(reconcile_rules),
    )
