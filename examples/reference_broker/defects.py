"""The seeded defects: names, what each gets wrong, the vendor rule it breaks.

A defect is a setting: per tenant (``defects`` when the tenant is created), or for the whole process
(``create_app(defects=...)``, ``--defects a,b``, or the environment variable ``REFERENCE_BROKER_DEFECTS``).
A tenant runs with the union of its own and the process's. Each defect is one small deviation, made in
the place a real team would make it; ``grep -n "defect(" examples/reference_broker/*.py`` finds them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ENV = "REFERENCE_BROKER_DEFECTS"


@dataclass(frozen=True)
class Defect:
    name: str
    wrong: str  # what the broker does wrong
    rule: str  # the vendor rule it breaks (docs/rules.md)
    # What a certification must turn red with this defect alone, besides the broker's own billing policy
    # (BROKER-POLICY: a wrong customer invoice) where the defect changes what the customer pays: the rule, and
    # any other rule whose own checks the defect genuinely breaks (tests/scenarios/test_defects_caught.py).
    red: tuple[str, ...] = ()

    @property
    def red_rules(self) -> tuple[str, ...]:
        return self.red or (self.rule,)

    @property
    def service(self) -> str:
        return "kss" if self.name.startswith("kss_") else "korm"


DEFECTS: Mapping[str, Defect] = {
    d.name: d
    for d in (
        Defect(
            "korm_reactivate_after_stop",
            'ignores the vendor\'s 410 on a reactivation of a stopped subscription: tells the customer "done", '
            "marks it active again and bills it from that day",
            "KORM-STOP-1",
        ),
        Defect(
            "payg_reduction_whole_month",
            "bills a PAYG reduction from the 1st of its month instead of the day it took effect",
            "KORM-PAYG-2",
        ),
        Defect(
            "yearly_decrease_locally",
            "does not send a Yearly reduction to the vendor: lowers the count on its own books, tells the customer "
            '"done" and bills the next anniversary at the lower count',
            "KORM-YEAR-1",
        ),
        Defect(
            "yearly_increase_full_year",
            "charges a Yearly increase for a full year instead of pro rata for the days left in the current year",
            "KORM-YEAR-3",
        ),
        Defect(
            "stop_day_billed",
            "counts the day a PAYG subscription stops (a closed interval instead of a half-open one)",
            "KORM-STOP-1",
        ),
        Defect(
            "approval_discount_to_customer",
            "passes the approval-code discount on to the customer instead of charging list price",
            "KORM-APPR-1",
            # the vendor's side stays right (the discount reaches the vendor's bill and the broker's books of it):
            # only the customer's invoice is wrong, against the broker's declared policy (list price)
            red=("BROKER-POLICY",),
        ),
        Defect(
            "double_order_after_lost_answer",
            "sends orders without an Idempotency-Key and re-orders after a 5xx or a timeout, so a lost answer "
            "makes two subscriptions",
            "SIM-IDEM-1",
        ),
        Defect(
            "kss_reduction_current_period",
            "charges the current period at the reduced count (the count on its last day) instead of its maximum",
            "KSS-QTY-3",
        ),
        Defect("kss_trial_days_charged", "ignores the trial when billing: trial days are charged", "KSS-TRIAL-2"),
        Defect(
            "kss_second_trial_after_product_change",
            "starts a new trial of the original length on its books after a product change, so the customer is "
            "not charged for it while the vendor bills it",
            "KSS-TRIAL-2",
        ),
        Defect(
            "kss_free_month_charged",
            "charges a reseller/msp subscription in the calendar month it was created",
            "KSS-FREE-1",
            # counting a free month as charged also lifts the MSP volume tier of that month for the others
            red=("KSS-FREE-1", "KSS-MSP-1"),
        ),
        Defect(
            "kss_last_month_dropped_after_soft_cancel",
            "stops billing at the start of the month a soft cancel ends, so that last month is not charged",
            "KSS-STOP-1",
        ),
        Defect(
            "kss_msp_tier_ignored",
            "expects the vendor to bill MSP subscriptions at list price (vendor_cost without the volume tier)",
            "KSS-MSP-1",
        ),
        Defect(
            "kss_new_code_after_licence_change",
            "changes a licence count by HardCancel + Activate under a NEW SubscriberId, so the customer gets a new "
            "activation code and the vendor holds two subscriptions",
            "KSS-CODE-1",
            # a cancel-and-activate goes round the vendor's refusals of a change (707 same count, 4 hard-cancelled)
            red=("KSS-CODE-1", "KSS-QTY-1", "KSS-STOP-1"),
        ),
        Defect(
            "korm_malformed_answer_crashes",
            "fails with an error on a KORM answer it cannot parse instead of reading it as an unknown outcome and "
            "retrying with the same Idempotency-Key",
            "SIM-IDEM-1",
        ),
        Defect(
            "kss_soap_fault_not_retried",
            "relays a SOAP Server fault (the service's own transient failure) to the customer as a refusal "
            "instead of retrying it",
            "SIM-IDEM-1",
        ),
    )
}


def parse(names: Iterable[str] | str | None) -> frozenset[str]:
    """A set of defect names from a list or a comma-separated string; an unknown name is a ValueError."""
    if names is None:
        return frozenset()
    if isinstance(names, str):
        names = names.split(",")
    found = frozenset(n.strip() for n in names if n and n.strip())
    unknown = sorted(found - DEFECTS.keys())
    if unknown:
        raise ValueError(f"unknown defect(s) {', '.join(unknown)}; known: {', '.join(sorted(DEFECTS))}")
    return found


def from_env(env: Mapping[str, str] | None = None) -> frozenset[str]:
    return parse((os.environ if env is None else env).get(ENV))
