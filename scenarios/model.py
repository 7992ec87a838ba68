"""The scenario file format: YAML in, validated dataclasses out, every error naming ``file:line``.

```python
from ksimkit.scenarios.model import load_scenario, load_suite, ScenarioFileError

scenario = load_scenario("scenarios/suites/korm/korm-payg-reduction-mid-month.yaml")
scenarios = load_suite(["scenarios/suites/korm"])      # files and directories, *.yaml / *.yml
```

A file that does not validate raises :class:`ScenarioFileError`, whose ``issues`` each carry ``file``,
``line`` and ``message``; ``str(error)`` lists them one a line as ``file:line: message``. The format is
documented key by key in ``docs/scenario-format.md``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from ksimkit.scenarios import rules as rule_catalog

__all__ = [
    "ApprovalCodeSeed",
    "ChargeExpectation",
    "CodeCheck",
    "Expectations",
    "Issue",
    "KORM_STEPS",
    "KSS_STEPS",
    "LegacySeed",
    "PrepaidSeed",
    "Scenario",
    "ScenarioFileError",
    "Setup",
    "STEP_KINDS",
    "Step",
    "StepExpectation",
    "VendorCheck",
    "discover",
    "first_of_next_month",
    "load_scenario",
    "load_suite",
    "parse_scenario",
    "to_instant",
]

UTC = dt.UTC
PERIOD_RE = re.compile(r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$")
MONEY_RE = re.compile(r"^-?\d+(\.\d+)?$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

PROGRAMMES = ("xsp", "reseller", "msp")
BILLING_PERIODS = ("calendar_month", "30_days")
SERVICES = ("korm", "kss")
OUTCOMES = ("done", "refused", "any")


# -- errors -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    """One thing wrong with a scenario file."""

    file: str
    line: int  # 1-based; 0 when unknown
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class ScenarioFileError(ValueError):
    """A scenario file (or a suite) that does not validate; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


# -- the model ----------------------------------------------------------------------------------------


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
    """One step: ``kind`` (a broker method, ``advance`` or ``fault``) and its fields in ``args``.

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


# -- step kinds ---------------------------------------------------------------------------------------

# field -> (type, required). Types: ref, str, posint, int0, instant, month, map.
_STEP_FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    # KORM SS
    "order": {
        "ref": ("newref", True),
        "customer": ("str", True),
        "sku": ("str", True),
        "quantity": ("posint", True),
        "approval_code": ("str", False),
    },
    "change_quantity": {"ref": ("ref", True), "quantity": ("posint", True)},
    "switch_plan": {"ref": ("ref", True), "sku": ("str", True), "quantity": ("posint", False)},
    "stop": {"ref": ("ref", True)},
    "reactivate": {"ref": ("ref", True)},
    "migrate": {},
    # KSS
    "activate": {
        "ref": ("newref", True),
        "customer": ("str", True),
        "product": ("str", True),
        "count": ("posint", True),
        "trial_days": ("int0", False),
    },
    "change_count": {"ref": ("ref", True), "count": ("posint", True)},
    "change_product": {"ref": ("ref", True), "product": ("str", True)},
    "pause": {"ref": ("ref", True), "until": ("instant", False)},
    "resume": {"ref": ("ref", True)},
    "cancel_at_month_end": {"ref": ("ref", True), "month": ("month", True)},
    "hard_cancel": {"ref": ("ref", True)},
}
KORM_STEPS = frozenset({"order", "change_quantity", "switch_plan", "stop", "reactivate", "migrate"})
KSS_STEPS = frozenset(
    {
        "activate",
        "change_count",
        "change_product",
        "pause",
        "resume",
        "cancel_at_month_end",
        "hard_cancel",
        "reactivate",
    }
)
STEP_KINDS = tuple(_STEP_FIELDS) + ("advance", "fault")
FAULT_REQUIRED = ("kind",)
# The simulator's fault-rule fields (docs/harness.md); ``count`` is the scenario's name for ``times`` (default 1).
FAULT_KNOWN = (
    "kind",
    "operation",
    "service",
    "when",
    "count",
    "times",
    "probability",
    "seed",
    "delay_ms",
    "delay_max_ms",
    "status",
    "code",
    "message",
    "retry_after",
    "fault_code",
    "error_code",
)
FAULT_KINDS = ("delay", "status", "soap_fault", "transaction_error", "unit_error", "malformed", "truncated", "drop")

_TOP_KEYS = {"id", "title", "rules", "service", "setup", "steps", "expect", "description"}
_TOP_REQUIRED = ("id", "title", "rules", "service", "setup", "steps")
_SETUP_KEYS = {
    "start",
    "programme",
    "msp_registered",
    "billing_period",
    "timezone",
    "prices",
    "approval_codes",
    "legacy",
    "prepaid",
}
_STEP_EXPECT_KEYS = {"outcome", "code", "activation_code", "rule"}
_EXPECT_KEYS = {"vendor", "charges", "reconcile"}
_VENDOR_REF_KEYS = {"ref", "status", "quantity", "count", "sku", "product", "activation_code", "exists", "rule"}
_VENDOR_CUSTOMER_KEYS = {"customer", "subscriptions", "active_subscriptions", "rule"}
_CHARGE_KEYS = {"period", "ref", "units", "amount", "vendor_cost", "customer", "rule"}


# -- helpers -----------------------------------------------------------------------------------------


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


class _Reader:
    """Walks the composed YAML node tree, converting values and recording issues with line numbers."""

    def __init__(self, file: str, loader: yaml.SafeLoader) -> None:
        self.file = file
        self.loader = loader
        self.issues: list[Issue] = []

    def err(self, node: yaml.Node | int | None, message: str) -> None:
        line = node if isinstance(node, int) else (node.start_mark.line + 1 if node is not None else 0)
        self.issues.append(Issue(self.file, line, message))

    @staticmethod
    def line(node: yaml.Node | None) -> int:
        return node.start_mark.line + 1 if node is not None else 0

    def scalar(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def mapping(
        self, node: yaml.Node, what: str, allowed: set[str] | None = None, required: Iterable[str] = ()
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.err(node, f"{what} must be a mapping, not {self.kind(node)}")
            return None
        result: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.err(key_node, f"{what}: merge keys (<<) are not supported")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.err(key_node, f"{what}: keys must be plain names")
                continue
            key = str(self.scalar(key_node))
            if key in result:
                self.err(key_node, f"{what}: key {key!r} appears twice")
                continue
            if allowed is not None and key not in allowed:
                self.err(key_node, f"{what}: unknown key {key!r} (known: {', '.join(sorted(allowed))})")
                continue
            result[key] = (key_node, value_node)
        for key in required:
            if key not in result:
                self.err(node, f"{what}: missing required key {key!r}")
        return result

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.err(node, f"{what} must be a list, not {self.kind(node)}")
            return None
        return list(node.value)

    def kind(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        value = self.scalar(node)
        if value is None:
            return "empty"
        return f"{type(value).__name__} {value!r}"

    # -- typed values --

    def _plain(self, node: yaml.Node, what: str) -> tuple[bool, Any]:
        if not isinstance(node, yaml.ScalarNode):
            self.err(node, f"{what} must be a single value, not {self.kind(node)}")
            return False, None
        return True, self.scalar(node)

    def string(self, node: yaml.Node, what: str) -> str | None:
        ok, value = self._plain(node, what)
        if not ok:
            return None
        if isinstance(value, (dict, list)) or value is None or isinstance(value, bool):
            self.err(node, f"{what} must be a string, not {self.kind(node)}")
            return None
        if isinstance(value, (dt.date, dt.datetime, float)):
            self.err(node, f"{what} must be a string, not {self.kind(node)} (quote it)")
            return None
        text = str(value)
        if not text.strip():
            self.err(node, f"{what} must not be empty")
            return None
        return text

    def code(self, node: yaml.Node, what: str) -> str | None:
        ok, value = self._plain(node, what)
        if not ok:
            return None
        if isinstance(value, bool) or value is None or not isinstance(value, (str, int)):
            self.err(
                node, f"{what} must be an error code (a string such as SUBSCRIPTION_DELETED, or a number such as 702)"
            )
            return None
        return str(value)

    def integer(self, node: yaml.Node, what: str, minimum: int | None = None) -> int | None:
        ok, value = self._plain(node, what)
        if not ok:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(node, f"{what} must be a whole number, not {self.kind(node)}")
            return None
        if minimum is not None and value < minimum:
            self.err(node, f"{what} must be at least {minimum}, not {value}")
            return None
        return value

    def boolean(self, node: yaml.Node, what: str) -> bool | None:
        ok, value = self._plain(node, what)
        if not ok:
            return None
        if not isinstance(value, bool):
            self.err(node, f"{what} must be true or false, not {self.kind(node)}")
            return None
        return value

    def date(self, node: yaml.Node, what: str) -> dt.date | None:
        ok, value = self._plain(node, what)
        if not ok:
            return None
        if isinstance(value, dt.datetime):
            self.err(node, f"{what} must be a date (YYYY-MM-DD), not a date-time")
            return None
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        self.err(node, f"{what} must be a date (YYYY-MM-DD), not {self.kind(node)}")
        return None

    def moment(self, node: yaml.Node, what: str) -> dt.date | dt.datetime | None:
        """A date (00:00 in the partner's zone) or a date-time (with Z or an offset; naive = partner's zone)."""
        ok, value = self._plain(node, what)
        if not ok:
            return None
        if isinstance(value, (dt.date, dt.datetime)):
            return value
        if isinstance(value, str):
            for parse in (dt.date.fromisoformat, lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))):
                try:
                    return parse(value)  # type: ignore[no-any-return]
                except ValueError:
                    continue
        self.err(
            node, f"{what} must be a date (2026-05-10) or a date-time (2026-05-10T09:00:00Z), not {self.kind(node)}"
        )
        return None

    def period(self, node: yaml.Node, what: str) -> str | None:
        ok, value = self._plain(node, what)
        if not ok:
            return None
        if isinstance(value, str) and PERIOD_RE.match(value):
            return value
        hint = " (a month, YYYY-MM: write 2026-04, not a date)" if isinstance(value, dt.date) else " (YYYY-MM)"
        self.err(node, f"{what} must be a month{hint}, not {self.kind(node)}")
        return None

    def money(self, node: yaml.Node, what: str, places: int = 2, positive: bool = False) -> Decimal | None:
        ok, value = self._plain(node, what)
        if not ok:
            return None
        text: str | None = None
        if isinstance(value, bool) or value is None:
            text = None
        elif isinstance(value, (int, float, str)):
            text = repr(value) if isinstance(value, float) else str(value)
        if text is None or not MONEY_RE.match(text.strip()):
            self.err(node, f'{what} must be an amount such as "37.60", not {self.kind(node)}')
            return None
        try:
            amount = Decimal(text.strip())
        except InvalidOperation:  # pragma: no cover - the pattern already rules it out
            self.err(node, f"{what} is not a number: {text!r}")
            return None
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            self.err(node, f"{what} {text} has more than {places} decimals")
            return None
        if positive and amount <= 0:
            self.err(node, f"{what} must be more than 0, not {text}")
            return None
        return amount


# -- parsing ------------------------------------------------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file; :class:`ScenarioFileError` lists every problem with ``file:line``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioFileError([Issue(str(path), 0, f"cannot read the file: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise ScenarioFileError([Issue(str(path), 0, f"not UTF-8 text: {exc}")]) from exc
    return parse_scenario(text, path=path)


def parse_scenario(text: str, *, path: str | Path | None = None, file: str | None = None) -> Scenario:
    """Validate scenario YAML ``text``. ``path`` (if given) is where it came from: its stem must equal ``id``."""
    path = Path(path) if path is not None else None
    name = file or (str(path) if path is not None else "<scenario>")
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 0
            problem = " ".join(part for part in (exc.context, exc.problem) if part)
            raise ScenarioFileError([Issue(name, line, f"not valid YAML: {problem}")]) from None
        except yaml.YAMLError as exc:
            raise ScenarioFileError([Issue(name, 0, f"not valid YAML: {exc}")]) from None
        if root is None:
            raise ScenarioFileError([Issue(name, 0, "the file is empty")])
        reader = _Reader(name, loader)
        scenario = _parse(reader, root, path)
    finally:
        loader.dispose()
    if reader.issues or scenario is None:
        raise ScenarioFileError(reader.issues or [Issue(name, 0, "not a scenario")])
    return scenario


def _parse(r: _Reader, root: yaml.Node, path: Path | None) -> Scenario | None:
    top = r.mapping(root, "the scenario", _TOP_KEYS, _TOP_REQUIRED)
    if top is None:
        return None

    scenario_id = r.string(top["id"][1], "id") if "id" in top else None
    if scenario_id is not None:
        if not ID_RE.match(scenario_id):
            r.err(top["id"][1], f"id {scenario_id!r} may hold only letters, digits, '-', '_' and '.'")
        elif path is not None and path.stem != scenario_id:
            r.err(top["id"][1], f"id {scenario_id!r} must equal the file name's stem {path.stem!r}")
    title = r.string(top["title"][1], "title") if "title" in top else None
    description = r.string(top["description"][1], "description") if "description" in top else None

    service = None
    if "service" in top:
        service = r.string(top["service"][1], "service")
        if service is not None and service not in SERVICES:
            r.err(top["service"][1], f"service must be one of {', '.join(SERVICES)}, not {service!r}")
            service = None

    rules: list[str] = []
    if "rules" in top:
        items = r.sequence(top["rules"][1], "rules")
        if items is not None:
            if not items:
                r.err(top["rules"][1], "rules must name at least one rule ID")
            for item in items:
                rule_id = r.string(item, "a rule ID")
                if rule_id is None:
                    continue
                if not rule_catalog.is_known(rule_id):
                    r.err(item, f"unknown rule ID {rule_id!r} (not in the rules catalog, scenarios/rules.yaml)")
                elif rule_id in rules:
                    r.err(item, f"rule {rule_id} is listed twice")
                else:
                    rules.append(rule_id)

    setup = _parse_setup(r, top["setup"][1], service) if "setup" in top else None
    defined: dict[str, int] = {seed.ref: seed.line for seed in setup.legacy} if setup else {}
    # Without a valid setup the steps are still checked, against a stand-in clock.
    steps = _parse_steps(r, top["steps"][1], service, setup or _STAND_IN_SETUP, defined) if "steps" in top else []
    expect = _parse_expect(r, top["expect"][1], defined) if "expect" in top else Expectations()
    if "expect" in top and isinstance(top["expect"][1], yaml.ScalarNode) and r.scalar(top["expect"][1]) is None:
        expect = Expectations()

    _check_check_rules(r, rules, steps, expect)
    if r.issues or None in (scenario_id, title, service, setup):
        return None
    assert scenario_id is not None and title is not None and service is not None and setup is not None
    return Scenario(
        id=scenario_id,
        title=title,
        rules=tuple(rules),
        service=service,
        setup=setup,
        steps=tuple(steps),
        expect=expect,
        description=description,
        path=path,
    )


def _check_check_rules(r: _Reader, rules: list[str], steps: Sequence[Step], expect: Expectations) -> None:
    """A check's ``rule`` must be one the scenario names (what the broker charges its customers is the broker's
    policy, never a check's ``rule``)."""
    given: list[tuple[int, str]] = [(s.expect.line or s.line, s.expect.rule) for s in steps if s.expect.rule]
    given += [(c.line, c.rule) for c in expect.vendor if c.rule]
    given += [(c.line, c.rule) for c in expect.charges if c.rule]
    given += [(expect.line, rule) for _, rule in expect.reconcile_rules]
    for line, rule in given:
        if rule not in rules:
            r.err(line, f"rule {rule!r} of a check is not one of the scenario's rules ({', '.join(rules)})")


_STAND_IN_SETUP = Setup(start=dt.datetime(1970, 1, 1, tzinfo=UTC))


def _parse_setup(r: _Reader, node: yaml.Node, service: str | None) -> Setup | None:
    m = r.mapping(node, "setup", _SETUP_KEYS, ("start",))
    if m is None:
        return None
    values: dict[str, Any] = {"line": r.line(node)}
    ok = True

    timezone = "UTC"
    if "timezone" in m:
        tz = r.string(m["timezone"][1], "setup.timezone")
        try:
            if tz is None:
                raise ZoneInfoNotFoundError
            ZoneInfo(tz)
            timezone = tz
        except (ZoneInfoNotFoundError, ValueError):
            if tz is not None:
                r.err(m["timezone"][1], f"setup.timezone {tz!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)")
            ok = False
    values["timezone"] = timezone

    if "start" in m:
        start = r.moment(m["start"][1], "setup.start")
        if start is None:
            ok = False
        else:
            values["start"] = to_instant(start, timezone)
    else:
        ok = False

    if "programme" in m:
        programme = r.string(m["programme"][1], "setup.programme")
        if programme not in PROGRAMMES:
            if programme is not None:
                r.err(m["programme"][1], f"setup.programme must be one of {', '.join(PROGRAMMES)}, not {programme!r}")
            ok = False
        else:
            values["programme"] = programme
    if "msp_registered" in m:
        registered = r.boolean(m["msp_registered"][1], "setup.msp_registered")
        ok &= registered is not None
        values["msp_registered"] = registered
    if "billing_period" in m:
        period = r.string(m["billing_period"][1], "setup.billing_period")
        if period not in BILLING_PERIODS:
            if period is not None:
                r.err(
                    m["billing_period"][1],
                    f"setup.billing_period must be one of {', '.join(BILLING_PERIODS)}, not {period!r}",
                )
            ok = False
        else:
            values["billing_period"] = period

    if "prices" in m:
        prices_node = m["prices"][1]
        pm = r.mapping(prices_node, "setup.prices")
        prices: dict[str, Decimal] = {}
        if pm is None:
            ok = False
        else:
            for key, (_, value_node) in pm.items():
                price = r.money(value_node, f"setup.prices.{key}", places=6)
                if price is None or price < 0:
                    if price is not None:
                        r.err(value_node, f"setup.prices.{key} must not be negative")
                    ok = False
                else:
                    prices[key] = price
        values["prices"] = prices

    if "approval_codes" in m:
        node_ac = m["approval_codes"][1]
        if service == "kss":
            r.err(node_ac, "setup.approval_codes are KORM test data; this scenario's service is kss")
        seeds_ac = []
        for item in r.sequence(node_ac, "setup.approval_codes") or []:
            im = r.mapping(item, "an approval code", {"code", "percent", "expires_on"}, ("percent", "expires_on"))
            if im is None:
                ok = False
                continue
            code = r.string(im["code"][1], "approval code: code") if "code" in im else None
            percent = (
                r.money(im["percent"][1], "approval code: percent", places=2, positive=True)
                if "percent" in im
                else None
            )
            if percent is not None and percent > 100:
                r.err(im["percent"][1], "approval code: percent must be at most 100")
                percent = None
            expires = r.date(im["expires_on"][1], "approval code: expires_on") if "expires_on" in im else None
            if percent is None or expires is None or ("code" in im and code is None):
                ok = False
                continue
            seeds_ac.append(ApprovalCodeSeed(percent=percent, expires_on=expires, code=code, line=r.line(item)))
        values["approval_codes"] = tuple(seeds_ac)

    if "legacy" in m:
        node_l = m["legacy"][1]
        if service == "kss":
            r.err(node_l, "setup.legacy holds KORM legacy subscriptions; this scenario's service is kss")
        seeds_l: list[LegacySeed] = []
        keys = {"ref", "customer", "sku", "quantity", "activation_date"}
        for item in r.sequence(node_l, "setup.legacy") or []:
            im = r.mapping(item, "a legacy subscription", keys, sorted(keys))
            if im is None or not keys <= set(im):
                ok = False
                continue
            ref = r.string(im["ref"][1], "legacy: ref")
            customer = r.string(im["customer"][1], "legacy: customer")
            sku = r.string(im["sku"][1], "legacy: sku")
            quantity = r.integer(im["quantity"][1], "legacy: quantity", minimum=1)
            activation = r.date(im["activation_date"][1], "legacy: activation_date")
            if None in (ref, customer, sku, quantity, activation):
                ok = False
                continue
            if any(seed.ref == ref for seed in seeds_l):
                r.err(im["ref"][1], f"ref {ref!r} is already defined by another legacy subscription")
                ok = False
                continue
            seeds_l.append(
                LegacySeed(
                    ref=ref,
                    customer=customer,
                    sku=sku,
                    quantity=quantity,  # type: ignore[arg-type]
                    activation_date=activation,
                    line=r.line(item),
                )
            )  # type: ignore[arg-type]
        values["legacy"] = tuple(seeds_l)

    if "prepaid" in m:
        node_p = m["prepaid"][1]
        if service == "korm":
            r.err(node_p, "setup.prepaid holds KSS prepaid licences; this scenario's service is korm")
        seeds_p: list[PrepaidSeed] = []
        keys = {"customer", "product", "licence_count", "expires_on"}
        for item in r.sequence(node_p, "setup.prepaid") or []:
            im = r.mapping(item, "a prepaid licence", keys, sorted(keys))
            if im is None or not keys <= set(im):
                ok = False
                continue
            customer = r.string(im["customer"][1], "prepaid: customer")
            product = r.string(im["product"][1], "prepaid: product")
            count = r.integer(im["licence_count"][1], "prepaid: licence_count", minimum=1)
            expires = r.date(im["expires_on"][1], "prepaid: expires_on")
            if None in (customer, product, count, expires):
                ok = False
                continue
            seeds_p.append(
                PrepaidSeed(
                    customer=customer,
                    product=product,
                    licence_count=count,  # type: ignore[arg-type]
                    expires_on=expires,
                    line=r.line(item),
                )
            )  # type: ignore[arg-type]
        values["prepaid"] = tuple(seeds_p)

    if not ok or "start" not in values:
        return None
    return Setup(**values)


def _parse_code_check(
    r: _Reader, node: yaml.Node, what: str, pending_refs: list[tuple[str, yaml.Node]]
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


def _parse_steps(r: _Reader, node: yaml.Node, service: str | None, setup: Setup, defined: dict[str, int]) -> list[Step]:
    items = r.sequence(node, "steps")
    if items is None:
        return []
    if not items:
        r.err(node, "steps must hold at least one step")
    steps: list[Step] = []
    clock = setup.start
    pending_refs: list[tuple[str, yaml.Node]] = []
    for index, item in enumerate(items, start=1):
        m = r.mapping(item, f"step {index}")
        if m is None:
            continue
        kinds = [key for key in m if key not in ("expect", "note")]
        unknown = [key for key in kinds if key not in STEP_KINDS]
        for key in unknown:
            r.err(m[key][0], f"step {index}: unknown step kind {key!r} (known: {', '.join(STEP_KINDS)})")
        kinds = [key for key in kinds if key in STEP_KINDS]
        if unknown:
            continue
        if len(kinds) != 1:
            r.err(
                item,
                f"step {index}: a step holds exactly one step kind (and optionally expect, note), "
                f"found {', '.join(kinds) or 'none'}",
            )
            continue
        kind = kinds[0]
        key_node, value_node = m[kind]
        what = f"step {index} ({kind})"
        note = r.string(m["note"][1], f"{what}: note") if "note" in m else None

        if service == "korm" and kind in _STEP_FIELDS and kind not in KORM_STEPS:
            r.err(key_node, f"{what}: {kind} is a KSS step; this scenario's service is korm")
        if service == "kss" and kind in _STEP_FIELDS and kind not in KSS_STEPS:
            r.err(key_node, f"{what}: {kind} is a KORM step; this scenario's service is kss")

        args: dict[str, Any] = {}
        ok = True
        if kind == "advance":
            target = _parse_advance(r, value_node, what, clock, setup.timezone)
            if target is None:
                ok = False
            else:
                if target <= clock:
                    r.err(
                        value_node,
                        f"{what}: the clock only moves forward: {target.isoformat()} is not after {clock.isoformat()}",
                    )
                    ok = False
                args["to"] = target
        elif kind == "fault":
            fm = r.mapping(value_node, what, set(FAULT_KNOWN), FAULT_REQUIRED)
            if fm is None or "kind" not in fm:
                ok = False
            else:
                types: dict[str, tuple[type, ...]] = {
                    "kind": (str,),
                    "operation": (str,),
                    "service": (str,),
                    "when": (str,),
                    "code": (str,),
                    "message": (str,),
                    "fault_code": (str,),
                    "probability": (int, float),
                }
                for key, (_, v_node) in fm.items():
                    ok_value, value = r._plain(v_node, f"{what}: {key}")
                    wanted = types.get(key, (int,))
                    if not ok_value or isinstance(value, bool) or not isinstance(value, wanted):
                        if ok_value:
                            kind_name = "a string" if wanted == (str,) else "a number"
                            r.err(v_node, f"{what}: {key} must be {kind_name}, not {r.kind(v_node)}")
                        ok = False
                        continue
                    args[key] = value
                if isinstance(args.get("kind"), str) and args["kind"] not in FAULT_KINDS:
                    r.err(fm["kind"][1], f"{what}: kind must be one of {', '.join(FAULT_KINDS)}, not {args['kind']!r}")
                    ok = False
                if isinstance(args.get("when"), str) and args["when"] not in ("before", "after"):
                    r.err(
                        fm["when"][1],
                        f"{what}: when must be before (nothing changes) or after (the answer is "
                        f"lost after the change), not {args['when']!r}",
                    )
                    ok = False
                if "count" in fm and "times" in fm:
                    r.err(fm["times"][0], f"{what}: give count or times, not both")
                    ok = False
        else:
            spec = _STEP_FIELDS[kind]
            if (
                isinstance(value_node, yaml.ScalarNode)
                and r.scalar(value_node) is None
                and not any(required for _, required in spec.values())
            ):
                fields: dict[str, tuple[yaml.Node, yaml.Node]] | None = {}
            else:
                fields = r.mapping(value_node, what, set(spec), [k for k, (_, req) in spec.items() if req])
            if fields is None:
                ok = False
            else:
                for name, (type_, required) in spec.items():
                    if name not in fields:
                        if required:
                            ok = False
                        else:
                            args[name] = None
                        continue
                    field_node = fields[name][1]
                    value = _field(r, field_node, f"{what}: {name}", type_, setup.timezone)
                    if value is None:
                        ok = False
                        continue
                    if type_ == "newref":
                        if value in defined:
                            r.err(
                                field_node,
                                f"{what}: ref {value!r} is already defined at line {defined[value]}; "
                                "each order/activate names a new ref",
                            )
                            ok = False
                        else:
                            defined[value] = r.line(field_node)
                    elif type_ == "ref" and value not in defined:
                        r.err(
                            field_node,
                            f"{what}: undefined ref {value!r} (a ref is defined by an earlier order, "
                            "activate or setup.legacy)",
                        )
                        ok = False
                    args[name] = value

        expect = StepExpectation(line=r.line(item))
        if "expect" in m:
            parsed = _parse_step_expect(r, m["expect"][1], what, pending_refs)
            if parsed is None:
                ok = False
            else:
                expect = parsed
        if kind in ("advance", "fault") and "expect" in m:
            r.err(m["expect"][0], f"{what}: an {kind} step has no outcome to expect")
            ok = False
        if ok:
            steps.append(Step(index=index, kind=kind, args=args, expect=expect, at=clock, line=r.line(item), note=note))
        if kind == "advance" and "to" in args and args["to"] > clock:
            clock = args["to"]
    for ref, ref_node in pending_refs:
        if ref not in defined:
            r.err(ref_node, f"undefined ref {ref!r}")
    return steps


def _parse_advance(r: _Reader, node: yaml.Node, what: str, clock: dt.datetime, timezone: str) -> dt.datetime | None:
    if isinstance(node, yaml.MappingNode):
        m = r.mapping(node, what, {"to", "days", "hours"})
        if m is None:
            return None
        if len(m) != 1:
            r.err(node, f"{what} takes exactly one of to, days, hours")
            return None
        ((key, (_, value_node)),) = m.items()
        if key == "to":
            moment = r.moment(value_node, f"{what}: to")
            return to_instant(moment, timezone) if moment is not None else None
        amount = r.integer(value_node, f"{what}: {key}", minimum=1)
        if amount is None:
            return None
        return clock + (dt.timedelta(days=amount) if key == "days" else dt.timedelta(hours=amount))
    moment = r.moment(node, what)
    return to_instant(moment, timezone) if moment is not None else None


def _field(r: _Reader, node: yaml.Node, what: str, type_: str, timezone: str) -> Any:
    if type_ in ("ref", "newref", "str"):
        return r.string(node, what)
    if type_ == "posint":
        return r.integer(node, what, minimum=1)
    if type_ == "int0":
        return r.integer(node, what, minimum=0)
    if type_ == "month":
        return r.period(node, what)
    if type_ == "instant":
        moment = r.moment(node, what)
        return to_instant(moment, timezone) if moment is not None else None
    raise AssertionError(type_)  # pragma: no cover


def _parse_step_expect(
    r: _Reader, node: yaml.Node, what: str, pending_refs: list[tuple[str, yaml.Node]]
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
        check = _parse_code_check(r, m["activation_code"][1], f"{what}: expect.activation_code", pending_refs)
        ok &= check is not None
    rule = r.string(m["rule"][1], f"{what}: expect.rule") if "rule" in m else None
    if not ok or ("rule" in m and rule is None):
        return None
    return StepExpectation(outcome=outcome, code=code, activation_code=check, line=r.line(node), rule=rule)


def _parse_expect(r: _Reader, node: yaml.Node, defined: dict[str, int]) -> Expectations:
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
                    value = _parse_code_check(r, value_node, "expect.vendor activation_code", pending_refs)
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
            key = (period, ref, customer)
            if key in seen:
                r.err(
                    item,
                    f"expect.charges: {period} {ref} is already expected at line {seen[key]}; "
                    "give one line per period and ref (the sum of the broker's lines is compared)",
                )
                continue
            seen[key] = r.line(item)
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


# -- suites -------------------------------------------------------------------------------------------

SUITES_DIR = Path(__file__).with_name("suites")


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Scenario files under ``paths`` (files as given; directories searched for ``*.yaml``/``*.yml``), sorted."""
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            found.append(path)
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path, None)
    return list(unique)


def load_suite(paths: Iterable[str | Path]) -> list[Scenario]:
    """Every scenario under ``paths``; all files are checked and every problem of every file is raised at once."""
    scenarios: list[Scenario] = []
    issues: list[Issue] = []
    files = discover(paths)
    for path in files:
        try:
            scenarios.append(load_scenario(path))
        except ScenarioFileError as exc:
            issues.extend(exc.issues)
    by_id: dict[str, Scenario] = {}
    for scenario in scenarios:
        if scenario.id in by_id:
            issues.append(
                Issue(scenario.source, 1, f"scenario id {scenario.id!r} is also used by {by_id[scenario.id].source}")
            )
        by_id[scenario.id] = scenario
    if issues:
        raise ScenarioFileError(issues)
    return scenarios
