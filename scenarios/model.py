"""The scenario model: what a validated scenario file holds (``scenarios/loader.py`` reads the files).

```python
from ksimkit.scenarios.loader import load_scenario, load_suite

scenario = load_scenario("scenarios/suites/korm/korm-payg-reduction-mid-month.yaml")
scenario.steps[0].kind, scenario.steps[0].args, scenario.expect.charges
```

The format is documented key by key in ``docs/scenario-format.md``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from ksimkit.scenarios.steps import StepKind

__all__ = [
    "ApprovalCodeSeed",
    "ChargeExpectation",
    "CodeCheck",
    "Expectations",
    "LegacySeed",
    "PrepaidSeed",
    "Scenario",
    "Setup",
    "Step",
    "StepExpectation",
    "VendorCheck",
    "first_of_next_month",
    "to_instant",
]

UTC = dt.UTC


@dataclass(frozen=True)
class ApprovalCodeSeed:
    percent: Decimal
    expires_on: dt.date
    code: str | None = None
    line: int = 0


@dataclass(frozen=True)
class LegacySeed:
    ref: str
    customer: str
    sku: str
    quantity: int
    activation_date: dt.date
    line: int = 0


@dataclass(frozen=True)
class PrepaidSeed:
    customer: str
    product: str
    licence_count: int
    expires_on: dt.date
    line: int = 0


@dataclass(frozen=True)
class Setup:
    start: dt.datetime  # aware, UTC
    programme: str = "reseller"
    msp_registered: bool | None = None
    billing_period: str = "calendar_month"
    timezone: str = "UTC"
    prices: dict[str, Decimal] = field(default_factory=dict)
    approval_codes: tuple[ApprovalCodeSeed, ...] = ()
    legacy: tuple[LegacySeed, ...] = ()
    prepaid: tuple[PrepaidSeed, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class CodeCheck:
    """An activation-code relation: ``same_as`` / ``different_from`` another ref, or ``unchanged`` over the run."""

    relation: str  # same_as | different_from | unchanged
    ref: str | None = None

    def describe(self) -> str:
        return (
            "unchanged for life" if self.relation == "unchanged" else f"{self.relation.replace('_', ' ')} {self.ref}'s"
        )


@dataclass(frozen=True)
class StepExpectation:
    outcome: str = "done"  # done | refused | any
    code: str | None = None
    activation_code: CodeCheck | None = None
    line: int = 0
    rule: str | None = None  # the rule this expectation checks (scenarios/attribution.py derives it when None)

    def describe(self) -> str:
        if self.outcome == "any":
            text = "done or refused"
        else:
            text = self.outcome
        if self.code:
            text += f" ({self.code})"
        if self.activation_code:
            text += f", code {self.activation_code.describe()}"
        return text


@dataclass(frozen=True)
class Step:
    """One step: ``kind`` (a broker step of ``scenarios/steps.py``, ``advance`` or ``fault``), its fields in ``args``.

    ``at`` is the simulator clock when the step runs (UTC). For ``advance``, ``args["to"]`` is the
    resolved target instant (UTC); for ``pause``, ``args["until"]`` is an instant or ``None``.
    """

    index: int  # 1-based position in the file
    kind: str
    args: dict[str, Any]
    expect: StepExpectation
    at: dt.datetime
    line: int = 0
    note: str | None = None
    spec: StepKind | None = field(default=None, repr=False, compare=False)  # its declaration; None: advance, fault

    @property
    def ref(self) -> str | None:
        ref = self.args.get("ref")
        return str(ref) if ref is not None else None

    def label(self) -> str:
        """A short human form: ``change_quantity s1 quantity=20``."""
        if self.kind == "advance":
            return f"advance to {self.args['to'].isoformat().replace('+00:00', 'Z')}"
        parts = [self.kind]
        if self.ref:
            parts.append(self.ref)
        for key, value in self.args.items():
            if key == "ref" or value is None:
                continue
            if isinstance(value, dt.datetime):
                value = value.isoformat().replace("+00:00", "Z")
            parts.append(f"{key}={value}")
        return " ".join(parts)


@dataclass(frozen=True)
class VendorCheck:
    """A check of the simulator's state at the end: about one ``ref``, or about one ``customer``."""

    ref: str | None = None
    customer: str | None = None
    status: str | None = None
    quantity: int | None = None
    sku: str | None = None
    product: str | None = None
    activation_code: CodeCheck | None = None
    exists: bool | None = None
    subscriptions: int | None = None
    active_subscriptions: int | None = None
    line: int = 0
    rule: str | None = None  # the rule this item checks (derived when None)

    def describe(self) -> str:
        subject = f"ref {self.ref}" if self.ref else f"customer {self.customer}"
        wants = []
        for name in ("exists", "status", "quantity", "sku", "product", "subscriptions", "active_subscriptions"):
            value = getattr(self, name)
            if value is not None:
                wants.append(f"{name} {value}")
        if self.activation_code:
            wants.append(f"activation code {self.activation_code.describe()}")
        return f"{subject}: " + ", ".join(wants)


@dataclass(frozen=True)
class ChargeExpectation:
    period: str
    ref: str
    units: int | None = None
    amount: Decimal | None = None
    vendor_cost: Decimal | None = None
    customer: str | None = None
    line: int = 0
    rule: str | None = None  # the vendor rule of this line's vendor cost and reconciliation (derived when None)


@dataclass(frozen=True)
class Expectations:
    vendor: tuple[VendorCheck, ...] = ()
    charges: tuple[ChargeExpectation, ...] = ()
    reconcile: tuple[str, ...] = ()
    line: int = 0
    reconcile_rules: tuple[tuple[str, str], ...] = ()  # (period, rule) given as {period: ..., rule: ...}

    @property
    def charge_periods(self) -> list[str]:
        return sorted({c.period for c in self.charges})

    @property
    def billed_periods(self) -> list[str]:
        """Every period whose charges the runner reads: the charged and the reconciled ones."""
        return sorted({c.period for c in self.charges} | set(self.reconcile))


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    rules: tuple[str, ...]
    service: str
    setup: Setup
    steps: tuple[Step, ...]
    expect: Expectations
    description: str | None = None
    path: Path | None = None

    @property
    def source(self) -> str:
        return str(self.path) if self.path else f"<{self.id}>"

    @property
    def refs(self) -> list[str]:
        """Every ref the scenario names, in order of first appearance."""
        seen: dict[str, None] = {seed.ref: None for seed in self.setup.legacy}
        for step in self.steps:
            if step.ref:
                seen.setdefault(step.ref, None)
        return list(seen)

    @property
    def end(self) -> dt.datetime:
        """The simulator clock after the last step (before the runner's own final advance)."""
        clock = self.setup.start
        for step in self.steps:
            if step.kind == "advance":
                clock = step.args["to"]
        return clock


def to_instant(value: dt.date | dt.datetime, timezone: str) -> dt.datetime:
    """A date means 00:00 of that day in ``timezone``; a naive datetime is read in ``timezone``; result in UTC."""
    zone = ZoneInfo(timezone)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        return value.astimezone(UTC)
    return dt.datetime.combine(value, dt.time(0, 0), zone).astimezone(UTC)


def first_of_next_month(period: str) -> dt.date:
    year, month = (int(part) for part in period.split("-"))
    return dt.date(year + month // 12, month % 12 + 1, 1)
