"""What a scenario run gives: its verdict, per certification level and per rule, and every record the report
shows (steps, vendor checks, charges, reconciliation, timeline), serialisable with ``to_dict``."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from ksimkit.scenarios import attribution

__all__ = [
    "ChargeRow",
    "CheckRecord",
    "ERROR",
    "FAILED",
    "FULL",
    "LEVELS",
    "NOT_APPLICABLE",
    "NOT_CHECKED",
    "PASSED",
    "ReconRow",
    "ScenarioResult",
    "StepRecord",
    "Timeline",
    "VENDOR_SIDE",
    "iso",
    "money",
    "plain",
]

UTC = dt.UTC
PASSED, FAILED, NOT_APPLICABLE, ERROR = "passed", "failed", "not_applicable", "error"
# Certification levels: vendor-side (the broker's calls to the vendor, judged from ksim's journal and state: no
# invoice access needed) and full (vendor-side plus the customer invoices and the reconciliation).
VENDOR_SIDE, FULL = "vendor_side", "full"
LEVELS = (VENDOR_SIDE, FULL)
NOT_CHECKED = "not_checked"
# Failures about the broker's invoices (customer charges, reconciliation) start so; every other is vendor-side.
INVOICE_FAILURE_PREFIXES = ("charge ", "reconciliation ")


@dataclass
class StepRecord:
    index: int
    kind: str
    label: str
    line: int
    at: str  # the simulator clock when the step ran (RFC 3339)
    ref: str | None = None
    expected: str = ""  # human form of the expectation ("refused (SUBSCRIPTION_DELETED)"); "" for advance/fault
    outcome: str | None = None  # done | refused | error | not_applicable | skipped | ok (advance, fault)
    code: str | None = None
    message: str | None = None
    activation_code: str | None = None
    ok: bool = True
    explanation: str | None = None
    note: str | None = None
    rule: str = ""  # the rule this step's expectation checks ("" for advance and fault)


@dataclass
class CheckRecord:
    line: int
    subject: str
    expected: str
    actual: str
    ok: bool
    explanation: str | None = None
    rule: str = ""


@dataclass
class ChargeRow:
    period: str
    ref: str
    expected: bool  # False: a line the scenario does not expect
    expected_units: int | None = None
    expected_amount: str | None = None
    expected_vendor_cost: str | None = None
    units: int = 0
    amount: str = "0.00"
    vendor_cost: str = "0.00"
    lines: int = 0
    customers: list[str] = field(default_factory=list)
    ok: bool = True
    explanation: str | None = None
    line: int = 0
    rule: str = attribution.POLICY  # units, amount and customer: the broker's billing policy
    vendor_rule: str = ""  # the vendor rule of the expected vendor cost
    split: list[dict[str, Any]] = field(
        default_factory=list
    )  # the broker's lines: {sku, units, amount, vendor_cost, customer}


@dataclass
class ReconRow:
    period: str
    ref: str | None  # None: a vendor line no broker ref claims
    vendor_id: str | None
    broker_units: int = 0
    vendor_units: int = 0
    broker_cost: str = "0.00"
    vendor_amount: str = "0.00"
    ok: bool = True
    explanation: str | None = None
    rule: str = ""


@dataclass
class Timeline:
    """What the report draws: licences per day (per subscription, as the vendor holds them) and money per month."""

    start: str  # first day (date, partner zone)
    end: str  # last day
    series: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # label -> change points (day, count)
    periods: list[dict[str, Any]] = field(default_factory=list)  # {period, expected, broker, broker_cost, vendor}


@dataclass
class ScenarioResult:
    scenario_id: str
    title: str
    service: str
    rules: list[str]
    source: str
    verdict: str = PASSED
    reason: str | None = None  # why not_applicable / error
    partner_id: str | None = None
    broker: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    vendor_checks: list[CheckRecord] = field(default_factory=list)
    charges: list[ChargeRow] = field(default_factory=list)
    reconciliation: list[ReconRow] = field(default_factory=list)
    timeline: Timeline | None = None
    failures: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    description: str | None = None
    # Per certification level: passed | failed | not_checked (full, when the broker exposes no invoices).
    levels: dict[str, str] = field(default_factory=dict)
    not_checked: list[str] = field(default_factory=list)  # checks not done, and why (data the broker does not expose)
    timezone: str = "UTC"  # the partner's zone, for local times beside UTC
    broker_build: str | None = None  # what the broker reports as its build (an optional ``build()``)
    rule_results: dict[str, str] = field(default_factory=dict)  # rule -> passed | failed | not_reached
    findings: list[attribution.Finding] = field(default_factory=list)  # every check, attributed, in run order

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED

    @property
    def rule_verdicts(self) -> dict[str, str]:
        """rule -> its verdict in this scenario, from its own checks (scenarios/attribution.py); a scenario that
        could not run (not applicable, error) gives that verdict to every rule it names."""
        if self.rule_results and self.verdict in (PASSED, FAILED):
            return dict(self.rule_results)
        return {rule: self.verdict for rule in self.rules}

    @property
    def first_failure(self) -> attribution.Finding | None:
        """The earliest failed check: the one that points at the bug."""
        failed = [f for f in self.findings if not f.ok]
        # among failures at the same point, a vendor rule's says more than the broker's own policy's
        return min(failed, key=lambda f: (f.position, f.rule == attribution.POLICY)) if failed else None

    def to_dict(self) -> dict[str, Any]:
        return plain(asdict(self))


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return iso(value) if isinstance(value, dt.datetime) else value.isoformat()
    return value


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def money(value: Decimal | None) -> str | None:
    return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))
