"""Run scenarios against a broker and a ksim simulator; compare what happened with what the scenario expects.

```python
from ksimkit.scenarios.runner import Simulator, run_scenario, run_scenarios

sim = Simulator("http://127.0.0.1:8080", "ksim-admin")
result = run_scenario(scenario, broker_factory, sim)          # broker_factory() -> a new Broker
results = run_scenarios(scenarios, broker_factory, sim, jobs=8, on_result=print)
```

Per scenario: a fresh simulator partner (its own credentials and clock), the setup seeded through the
control plane, ``broker.start(tenant)``, every step (``advance`` moves the partner clock and then the
broker's clock; ``fault`` arms a fault on the simulator), then the runner moves both clocks to the 1st of
the month after the last period it reads, reads the vendor's state (KORM subscriptions, KSS subscriptions
through the partner portal ``/kss/v1``), the broker's invoices and the vendor's statements or bills, and
compares. A broker's ref is not the vendor's id: a ref is matched to the vendor's subscription by the
activation code the broker stored for it (``broker.activation_code(ref)``).

Brokers as they are: a scenario needing a capability the broker does not declare is not applicable; on a pool
(``Simulator(..., pool=PartnerPool)``) each scenario borrows a pooled partner with fixed credentials, reset to the
scenario's start (with fresh customer and ref names when the broker keeps its state); the vendor's refusal code is
read from ksim's request journal when the broker does not relay it; invoice data the broker does not expose (or
that its declared billing policy and units make incomparable) is reported in ``not_checked``. Each result carries
its verdict per certification level (``levels``: vendor_side, full); ``level=`` chooses the one the verdict is at.

Verdicts: ``passed``; ``failed`` (the broker did something the vendor rules or the scenario do not allow:
a wrong outcome, a wrong charge, a reconciliation difference, an error of the broker); ``not_applicable``
(the broker raised ``NotImplementedError`` for a step it does not support); ``error`` (the harness could not
run the scenario: the simulator refused the setup, was unreachable, ...).
"""

from __future__ import annotations

import calendar
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import re
import secrets
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from ksimkit.scenarios import attribution
from ksimkit.scenarios.brokers.base import Broker, Charge, LegacySubscription, StepResult, TenantSetup
from ksimkit.scenarios.brokers.http import tls_transport
from ksimkit.scenarios.capabilities import unsupported
from ksimkit.scenarios.model import CodeCheck, Scenario, Step, first_of_next_month, to_instant
from ksimkit.scenarios.provenance import display_path
from ksimkit.simulators.client import KsimAdmin, KsimError, PartnerHandle

__all__ = [
    "BrokerFactory",
    "ChargeRow",
    "CheckRecord",
    "ERROR",
    "FAILED",
    "NOT_APPLICABLE",
    "PASSED",
    "ReconRow",
    "ScenarioResult",
    "Simulator",
    "StepRecord",
    "Timeline",
    "VendorSubscription",
    "fault_rule",
    "inject_fault",
    "run_scenario",
    "run_scenarios",
]

UTC = dt.UTC
PASSED, FAILED, NOT_APPLICABLE, ERROR = "passed", "failed", "not_applicable", "error"
VERDICTS = (PASSED, FAILED, NOT_APPLICABLE, ERROR)
# Certification levels: vendor-side (the broker's calls to the vendor, judged from ksim's journal and state: no
# invoice access needed) and full (vendor-side plus the customer invoices and the reconciliation).
VENDOR_SIDE, FULL = "vendor_side", "full"
LEVELS = (VENDOR_SIDE, FULL)
NOT_CHECKED = "not_checked"
# Failures about the broker's invoices (customer charges, reconciliation) start so; every other is vendor-side.
INVOICE_FAILURE_PREFIXES = ("charge ", "reconciliation ")
ZERO = Decimal("0.00")
MAX_TIMELINE_MONTHS = 48

BrokerFactory = Callable[[], Broker]


@dataclass(frozen=True)
class Simulator:
    """Where the simulator runs: its base URL (``http://127.0.0.1:8080``) and the control plane's admin token."""

    url: str
    admin_token: str = "ksim-admin"
    timeout: float = 10.0
    pool: Any = None  # a scenarios.pool.PartnerPool: run on pooled partners (fixed credentials) instead of new ones


# -- results ------------------------------------------------------------------------------------------


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
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return _iso(value) if isinstance(value, dt.datetime) else value.isoformat()
    return value


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))


# -- vendor state -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VendorSubscription:
    """One subscription as the simulator holds it (KORM subscription, or KSS subscriber)."""

    id: str  # KORM subscription id, or KSS SubscriberId
    customer: str
    status: str
    quantity: int
    sku: str | None  # KORM
    product: str
    activation_code: str | None
    external_ref: str | None
    active: bool
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)


class _NotApplicable(Exception):
    pass


class _BrokerFailure(Exception):
    pass


class _HarnessError(Exception):
    pass


KSS_FAULT_KINDS = ("soap_fault", "transaction_error", "unit_error")


def fault_rule(fields: dict[str, Any]) -> dict[str, Any]:
    """The simulator's fault rule for a scenario's ``fault`` step: ``count`` is ``times`` (default 1, so the
    runner's own reads at the end never meet the fault), and a KSS SOAP kind gets ``service: kss``."""
    rule = dict(fields)
    if "count" in rule:
        rule["times"] = rule.pop("count")
    rule.setdefault("times", 1)
    if rule.get("kind") in KSS_FAULT_KINDS:
        rule.setdefault("service", "kss")
    return rule


def inject_fault(partner: PartnerHandle, spec: dict[str, Any]) -> Any:
    """Arm a fault on the simulator for this partner (WireMock-style): the client's method when it has one,
    else ``POST /_sim/partners/{id}/faults`` with the step's fields as the body."""
    method = getattr(partner, "inject_fault", None)
    if callable(method):
        return method(**spec)
    return partner.admin.request("POST", f"/partners/{partner.id}/faults", json=_plain(spec))


class _Run:
    def __init__(self, scenario: Scenario, broker: Broker, sim: Simulator, level: str = FULL) -> None:
        self.scenario = scenario
        self.broker = broker
        self.sim = sim
        self.level = level
        self.suffix = ""  # appended to customers and refs on a pooled partner whose broker keeps its state
        self.invoices_exposed = True
        self.member: Any = None  # the pooled partner borrowed for this run (a scenarios.pool.PoolMember)
        self.zone = ZoneInfo(scenario.setup.timezone)
        self.result = ScenarioResult(
            scenario_id=scenario.id,
            title=scenario.title,
            service=scenario.service,
            rules=list(scenario.rules),
            source=_display_path(scenario),
            description=scenario.description,
            broker=_broker_name(broker),
            timezone=scenario.setup.timezone,
        )
        self.stopped_at: int | None = None  # the step where a broker error stopped the run
        self.code_changed: set[str] = set()  # refs whose activation code changed (reported once)
        self.clock = scenario.setup.start
        self.codes: dict[str, list[str]] = defaultdict(list)  # every activation code seen for a ref, in order
        self.final_codes: dict[str, str | None] = {}
        self.legacy_vendor: dict[str, dict[str, Any]] = {}
        self.admin: KsimAdmin | None = None
        self.partner: PartnerHandle | None = None
        self.started = False

    # -- plumbing --

    def sim_call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KsimError as exc:
            raise _HarnessError(f"the simulator refused to {what}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise _HarnessError(f"the simulator did not answer ({what}): {type(exc).__name__}: {exc}") from exc

    def broker_call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NotImplementedError as exc:
            raise _NotApplicable(f"the broker does not support {what}" + (f" ({exc})" if str(exc) else "")) from exc
        except (_HarnessError, _NotApplicable):
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the broker raises is the broker's failure
            raise _BrokerFailure(f"the broker failed on {what}: {type(exc).__name__}: {exc}") from exc

    def fail(self, message: str, rule: str | None = None, position: int = attribution.END, **where: Any) -> None:
        """Record a failed check; ``where``: ``ref``, ``period``, ``line`` of the expectation (for the report)."""
        self.result.failures.append(message)
        if rule is not None:
            self.result.findings.append(attribution.Finding(rule, position, False, message, **where))

    def passed_check(self, rule: str, position: int, text: str, **where: Any) -> None:
        self.result.findings.append(attribution.Finding(rule, position, True, text, **where))

    def local_date(self, moment: dt.datetime) -> dt.date:
        return moment.astimezone(self.zone).date()

    # -- the run --

    def run(self) -> ScenarioResult:
        began = time.monotonic()
        borrowed = contextlib.ExitStack()
        try:
            missing = unsupported(self.scenario, getattr(self.broker, "capabilities", None))
            if missing:
                raise _NotApplicable(f"the broker does not declare {', '.join(missing)} (adapter capabilities)")
            # Each client its own transport (closing a client closes its transport), all one TLS context.
            self.admin = KsimAdmin(
                self.sim.url, self.sim.admin_token, timeout=self.sim.timeout, transport=tls_transport()
            )
            self.member = borrowed.enter_context(self.sim.pool.borrow()) if self.sim.pool is not None else None
            self.setup()
            self.steps()
            self.finish()
            self.result.verdict = self._levels()
        except _NotApplicable as exc:
            self.result.verdict = NOT_APPLICABLE
            self.result.reason = str(exc)
        except _BrokerFailure as exc:
            position = self.stopped_at if self.stopped_at is not None else attribution.END
            rule = getattr(exc, "rule", None) or attribution.billing_rule(self.scenario.rules)
            self.stopped_at = position
            step = next((s for s in self.scenario.steps if s.index == position), None)
            self.fail(str(exc), rule, position, ref=step.ref if step else None, line=step.line if step else 0)
            self.result.verdict = FAILED
        except _HarnessError as exc:
            self.result.verdict = ERROR
            self.result.reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug of the harness must not hide the other scenarios
            self.result.verdict = ERROR
            self.result.reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
        finally:
            if self.result.verdict == FAILED and not self.result.levels:
                self.result.levels = {VENDOR_SIDE: FAILED, FULL: FAILED}
            try:
                if self.started:
                    self.broker.stop_tenant()
                elif callable(getattr(self.broker, "close", None)):
                    self.broker.close()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - cleanup only
                pass
            if self.admin is not None:
                self.admin.close()
            if self.result.verdict in (PASSED, FAILED):
                self.result.rule_results = attribution.rule_verdicts(
                    self.scenario.rules,
                    self.result.findings,
                    attribution.planned_positions(self.scenario),
                    stopped_at=self.stopped_at,
                )
            borrowed.close()  # the pooled partner goes back only once the broker is done with it
            self.result.duration_s = round(time.monotonic() - began, 3)
        return self.result

    def _levels(self) -> str:
        """The scenario's verdict per certification level, and at the level the run certifies."""
        failures = self.result.failures
        invoice = [f for f in failures if f.startswith(INVOICE_FAILURE_PREFIXES)]
        vendor_side = FAILED if len(invoice) < len(failures) else PASSED
        if not self.invoices_exposed:
            full = NOT_CHECKED if vendor_side == PASSED else FAILED
        else:
            full = FAILED if failures else PASSED
        self.result.levels = {VENDOR_SIDE: vendor_side, FULL: full}
        if self.level == VENDOR_SIDE:
            return vendor_side
        return PASSED if full == PASSED or (full == NOT_CHECKED and vendor_side == PASSED) else FAILED

    def alias(self, name: str) -> str:
        """A customer or ref as the broker sees it (fresh per run on a pooled partner whose broker keeps its state)."""
        return name + self.suffix if self.suffix else name

    def unalias(self, name: str) -> str:
        return name[: -len(self.suffix)] if self.suffix and name.endswith(self.suffix) else name

    def _pooled_partner(self) -> PartnerHandle:
        """The borrowed pooled partner, reset to the scenario's start with the scenario's settings."""
        assert self.admin is not None and self.member is not None
        s = self.scenario.setup
        pool = self.sim.pool
        handle = self.sim_call("read the pooled partner", pool.handle, self.admin, self.member)
        self.sim_call("reset the pooled partner", handle.reset, now=s.start)
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
            handle = self.sim_call("set the pooled partner's settings", handle.update, **changes)
        if not getattr(self.broker, "resets_state", True):
            self.suffix = "-" + secrets.token_hex(3)  # the broker's state is left alone: fresh names
        return handle

    def setup(self) -> None:
        assert self.admin is not None
        s = self.scenario.setup
        if self.member is not None:
            self.partner = self._pooled_partner()
        else:
            self.partner = self.sim_call(
                "create a partner",
                self.admin.create_partner,
                name=self.scenario.id[:200],
                programme=s.programme,
                msp_registered=s.msp_registered,
                timezone=s.timezone,
                billing_period=s.billing_period,
                now=s.start,
            )
        partner = self.partner
        self.result.partner_id = partner.id
        for seed in s.approval_codes:
            self.sim_call(
                f"seed approval code (line {seed.line})",
                partner.create_approval_code,
                seed.percent,
                seed.expires_on,
                seed.code,
            )
        legacy: list[LegacySubscription] = []
        for seed in s.legacy:
            created = self.sim_call(
                f"seed legacy subscription {seed.ref} (line {seed.line})",
                partner.seed_legacy_subscription,
                self.alias(seed.customer),
                seed.sku,
                seed.quantity,
                seed.activation_date,
            )
            self.legacy_vendor[seed.ref] = created
            legacy.append(
                LegacySubscription(
                    ref=self.alias(seed.ref),
                    customer=self.alias(seed.customer),
                    sku=seed.sku,
                    quantity=seed.quantity,
                    activation_date=seed.activation_date,
                    activation_code=created["activation_code"],
                    vendor_id=created["id"],
                )
            )
            self.codes[seed.ref].append(created["activation_code"])
        for seed in s.prepaid:
            self.sim_call(
                f"seed prepaid licences (line {seed.line})",
                partner.seed_kss_prepaid,
                self.alias(seed.customer),
                seed.product,
                seed.licence_count,
                seed.expires_on,
            )
        tenant = TenantSetup(
            scenario_id=self.scenario.id,
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
            terms=self.sim_call("read the partner's terms", partner.terms),
            partner_id=partner.id,
            pooled=self.member is not None,
            broker_tenant=(self.member.tenant or "") if self.member is not None else "",
        )
        self.broker_call("start (a new tenant)", self.broker.start, tenant)
        self.started = True
        self.result.broker_build = broker_build(self.broker)

    def steps(self) -> None:
        records = self.result.steps
        steps = list(self.scenario.steps)
        for position, step in enumerate(steps):
            record = StepRecord(
                index=step.index,
                kind=step.kind,
                label=step.label(),
                line=step.line,
                at=_iso(self.clock),
                ref=step.ref,
                note=step.note,
            )
            records.append(record)
            try:
                self.step(step, record)
            except _NotApplicable as exc:
                record.outcome, record.ok, record.explanation = "not_applicable", True, str(exc)
                self._skip_rest(steps[position + 1 :])
                raise
            except _BrokerFailure as exc:
                record.outcome, record.ok, record.explanation = "error", False, str(exc)
                self._skip_rest(steps[position + 1 :])
                self.stopped_at = step.index
                failure = _BrokerFailure(f"step {step.index} ({step.label()}, line {step.line}): {exc}")
                failure.rule = record.rule or self._step_rule(step)  # type: ignore[attr-defined]
                raise failure from exc
            except _HarnessError:
                record.outcome, record.ok = "error", False
                self._skip_rest(steps[position + 1 :])
                raise

    def _skip_rest(self, rest: Sequence[Step]) -> None:
        for step in rest:
            self.result.steps.append(
                StepRecord(
                    index=step.index,
                    kind=step.kind,
                    label=step.label(),
                    line=step.line,
                    at=_iso(step.at),
                    ref=step.ref,
                    outcome="skipped",
                    note=step.note,
                )
            )

    def advance(self, to: dt.datetime) -> None:
        assert self.partner is not None
        self.sim_call(f"advance the clock to {_iso(to)}", self.partner.advance, to=to)
        self.broker_call(f"advance_clock to {_iso(to)}", self.broker.advance_clock, to)
        self.clock = to

    def step(self, step: Step, record: StepRecord) -> None:
        assert self.partner is not None
        if step.kind == "advance":
            self.advance(step.args["to"])
            record.outcome = "ok"
            return
        if step.kind == "fault":
            self.sim_call(f"arm the fault of step {step.index}", inject_fault, self.partner, fault_rule(step.args))
            record.outcome = "ok"
            return
        record.expected = step.expect.describe()
        record.rule = self._step_rule(step)
        method = getattr(self.broker, step.kind)
        args = {
            k: v
            for k, v in step.args.items()
            if not (v is None and k in ("approval_code", "quantity", "until", "trial_days"))
        }
        for key in ("ref", "customer"):
            if key in args and args[key] is not None:
                args[key] = self.alias(str(args[key]))
        mark = self._journal_mark() if step.expect.code is not None else None
        result = self.broker_call(step.label(), method, **args)
        if not isinstance(result, StepResult):
            raise _BrokerFailure(f"{step.kind} returned {result!r}, not a StepResult")
        record.outcome, record.code, record.message = result.outcome, result.code, result.message
        record.activation_code = result.activation_code
        ref = step.ref
        if ref and result.outcome == "done":
            if result.activation_code:
                self.codes[ref].append(result.activation_code)
            stored = self._broker_code(ref)
            if stored and (not self.codes[ref] or self.codes[ref][-1] != stored):
                self.codes[ref].append(stored)
            self._code_kept(step, ref)
        problems = []
        expect = step.expect
        if expect.outcome != "any" and result.outcome != expect.outcome:
            said = result.outcome + (f" ({result.code})" if result.code else "")
            if result.message and result.outcome == "refused":
                said += f": {result.message}"
            problems.append(f"expected {expect.describe()}, the broker told its customer {said}")
        elif expect.code is not None and (result.code or "") != expect.code:
            problem = self._vendor_code_problem(expect.code, mark, result.code)
            if problem is None:
                record.code = f"{expect.code} (the vendor's, from ksim's journal)"
            else:
                problems.append(problem)
        if expect.activation_code is not None and not problems:
            problem = self._code_relation(ref, expect.activation_code, result.activation_code)
            if problem:
                problems.append(problem)
        if problems:
            record.ok = False
            record.explanation = "; ".join(problems)
            self.fail(
                f"step {step.index} ({step.label()}, line {step.line}): {record.explanation}",
                record.rule,
                step.index,
                ref=step.ref,
                line=step.line,
            )
        else:
            self.passed_check(
                record.rule, step.index, f"step {step.index} ({step.label()})", ref=step.ref, line=step.line
            )

    def _code_kept(self, step: Step, ref: str) -> None:
        """KSS-CODE-1 at every KSS step, named or not: a subscription keeps one activation code for life, so a
        ref whose code changes is a new subscription (and every bill after it follows from that)."""
        seen = list(dict.fromkeys(self.codes.get(ref, [])))
        if self.scenario.service != "kss" or len(seen) < 2 or ref in self.code_changed:
            return
        self.code_changed.add(ref)
        self.fail(
            f"step {step.index} ({step.label()}, line {step.line}): {ref}'s activation code changed: "
            f"{' -> '.join(seen)} (a KSS subscription keeps one code for life)",
            attribution.CODE_RULE,
            step.index,
            ref=ref,
            line=step.line,
        )

    def _step_rule(self, step: Step) -> str:
        return attribution.step_rule(
            step.kind,
            self.scenario.rules,
            code=step.expect.code,
            code_relation=step.expect.activation_code is not None,
            explicit=step.expect.rule,
            after_fault=attribution.follows_fault(self.scenario, step),
        )

    def _journal_mark(self) -> int | None:
        """The id of the partner's latest journal entry (0: none yet), or None when the journal cannot be read."""
        assert self.partner is not None
        try:
            total = self.partner.journal(limit=1)["total"]
            if not total:
                return 0
            page = self.partner.journal(limit=1, offset=total - 1)["items"]
            return int(page[-1]["id"]) if page else 0
        except (KsimError, httpx.HTTPError, KeyError, TypeError, ValueError):
            return None

    def vendor_codes_since(self, mark: int) -> list[str]:
        """The error codes the vendor answered the broker after journal entry ``mark``: KORM problem codes, KSS
        ErrorCode attributes (TransactionError and unit errors)."""
        assert self.partner is not None
        codes: list[str] = []
        offset = 0
        while True:
            page = self.sim_call("read the request journal", self.partner.journal, limit=500, offset=offset)
            items = page["items"]
            for entry in items:
                if int(entry["id"]) <= mark or not entry.get("response"):
                    continue
                body = str(entry["response"].get("body") or "")
                codes += _KSS_ERROR_CODE.findall(body)
                codes += _KORM_PROBLEM_CODE.findall(body) if (entry.get("status") or 0) >= 400 else []
            offset += len(items)
            if not items or offset >= page["total"]:
                return codes

    def _vendor_code_problem(self, expected: str, mark: int | None, relayed: str | None) -> str | None:
        """None when the vendor answered the broker ``expected`` during the step (ksim's journal: the broker need
        not relay it), else what is wrong. Without a journal, the relayed code decides."""
        if mark is not None:
            seen = self.vendor_codes_since(mark)
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

    def _broker_code(self, ref: str) -> str | None:
        ref = self.alias(ref)
        try:
            code = self.broker.activation_code(ref)
        except NotImplementedError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise _BrokerFailure(f"the broker failed on activation_code({ref!r}): {type(exc).__name__}: {exc}") from exc
        return str(code) if code else None

    def _code_relation(self, ref: str | None, check: CodeCheck, current: str | None = None) -> str | None:
        """None when the relation holds, else what is wrong."""
        if ref is None:
            return "an activation-code check needs a ref"
        mine = current or (self.codes[ref][-1] if self.codes.get(ref) else None)
        if check.relation == "unchanged":
            seen = list(dict.fromkeys(self.codes.get(ref, [])))
            if not seen:
                return f"the broker never gave an activation code for {ref}"
            if len(seen) > 1:
                return f"{ref}'s activation code changed: {' -> '.join(seen)}"
            return None
        other_ref = check.ref or ""
        other = self.codes[other_ref][-1] if self.codes.get(other_ref) else None
        if mine is None or other is None:
            missing = ref if mine is None else other_ref
            return f"the broker holds no activation code for {missing}"
        if check.relation == "same_as" and mine != other:
            return f"{ref}'s activation code {mine} differs from {other_ref}'s {other}"
        if check.relation == "different_from" and mine == other:
            return f"{ref} has the same activation code as {other_ref} ({mine}); the vendor issues a new one"
        return None

    # -- the end --

    def finish(self) -> None:
        expect = self.scenario.expect
        periods = expect.billed_periods
        if periods:
            target = to_instant(first_of_next_month(periods[-1]), self.scenario.setup.timezone)
            if target > self.clock:
                self.advance(target)
        for ref in self.scenario.refs:
            code = self._broker_code(ref)
            self.final_codes[ref] = code
            if code and (not self.codes[ref] or self.codes[ref][-1] != code):
                self.codes[ref].append(code)
        vendor = self.read_vendor()
        matches = self.match(vendor)
        self.check_vendor(vendor, matches)
        months = self.months(periods)
        try:
            broker_charges = {p: self.broker_charges(p) for p in months if p in periods}
        except _NotApplicable:  # the broker exposes no invoices: a vendor-side certificate only
            self.invoices_exposed = False
            broker_charges = {}
            if periods:
                self.result.not_checked.append(
                    "customer charges and reconciliation: the broker exposes no invoices "
                    "(no charges method): vendor-side checks only"
                )
        vendor_bills = {p: self.vendor_bill(p) for p in months}
        if not self.invoices_exposed:
            self.result.timeline = self.timeline(vendor, matches, {}, vendor_bills, months)
            return
        self._note_not_checked(broker_charges)
        for period in months:  # for the timeline only: failures to read months nobody checks are not the broker's
            if period not in broker_charges and self.invoices_exposed:
                try:
                    broker_charges[period] = self.broker_charges(period)
                except (_BrokerFailure, _NotApplicable):
                    broker_charges[period] = []
        self.check_charges(broker_charges)
        self.reconcile(broker_charges, vendor_bills, matches, vendor)
        self.result.timeline = self.timeline(vendor, matches, broker_charges, vendor_bills, months)

    def months(self, periods: list[str]) -> list[str]:
        first = self.local_date(self.scenario.setup.start)
        last_day = self.local_date(self.clock - dt.timedelta(seconds=1))
        last = max([f"{last_day.year:04d}-{last_day.month:02d}"] + periods)
        out = []
        year, month = first.year, first.month
        while f"{year:04d}-{month:02d}" <= last and len(out) < MAX_TIMELINE_MONTHS:
            out.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return sorted(set(out) | set(periods))

    def read_vendor(self) -> list[VendorSubscription]:
        assert self.partner is not None
        now = self.clock
        if self.scenario.service == "korm":
            with self.partner.korm(actor="ksim-certify", transport=tls_transport()) as korm:
                response = self.sim_call(
                    "list KORM subscriptions", korm.get, "/subscriptions", params={"include_deleted": "true"}
                )
                if response.is_error:
                    raise _HarnessError(
                        f"GET /korm/v1/subscriptions answered {response.status_code}: {response.text[:300]}"
                    )
                items = response.json()["items"]
            return [
                VendorSubscription(
                    id=item["id"],
                    customer=item["customer_id"],
                    status=item["status"],
                    quantity=int(item["quantity"]),
                    sku=item.get("sku"),
                    product=item.get("product_id") or "",
                    activation_code=item.get("activation_code"),
                    external_ref=item.get("external_ref"),
                    active=item["status"] in ("pending", "active"),
                    raw=item,
                )
                for item in items
            ]
        subscriber_ids: dict[str, None] = {}
        offset = 0
        while True:
            page = self.sim_call("read the KSS audit log", self.partner.audit, service="kss", limit=1000, offset=offset)
            for entry in page["items"]:
                if entry.get("object_type") == "subscription" and entry.get("object_id"):
                    subscriber_ids.setdefault(entry["object_id"], None)
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                break
        subs = []
        with self.partner.kss_rest(actor="ksim-certify", transport=tls_transport()) as kss:
            for sid in subscriber_ids:
                response = self.sim_call(f"read KSS subscriber {sid}", kss.get, f"/subscriptions/{quote(sid, safe='')}")
                if response.status_code == 404:
                    continue
                if response.is_error:
                    raise _HarnessError(f"GET /kss/v1/subscriptions/{sid} answered {response.status_code}")
                item = response.json()
                end = item.get("end_time")
                status = item["status"]
                active = status in ("NotStarted", "Started", "Paused") or (
                    status == "SoftCancelled" and end is not None and _parse_ts(end) > now
                )
                subs.append(
                    VendorSubscription(
                        id=sid,
                        customer=item.get("customer_id") or sid,
                        status=status,
                        quantity=int(item.get("license_count") or 0),
                        sku=None,
                        product=item.get("product_id") or "",
                        activation_code=item.get("activation_code"),
                        external_ref=None,
                        active=active,
                        raw=item,
                    )
                )
        return subs

    def match(self, vendor: list[VendorSubscription]) -> dict[str, VendorSubscription]:
        """ref -> the vendor subscription it is: by the broker's activation code, else by the seeded legacy
        subscription, the KORM external_ref or a KSS SubscriberId equal to the ref."""
        by_code = {v.activation_code: v for v in vendor if v.activation_code}
        by_id = {v.id: v for v in vendor}
        out: dict[str, VendorSubscription] = {}
        for ref in self.scenario.refs:
            code = self.final_codes.get(ref)
            found = by_code.get(code) if code else None
            if found is None and not code:
                if ref in self.legacy_vendor:
                    found = by_id.get(self.legacy_vendor[ref]["id"])
                else:  # the broker's key at the vendor: the ref, or its own id for the ref (captured by `id:`)
                    keys = [self.alias(ref), (getattr(self.broker, "ids", None) or {}).get(self.alias(ref))]
                    for key in filter(None, keys):
                        found = (
                            next((v for v in vendor if v.external_ref == key), None)
                            if self.scenario.service == "korm"
                            else by_id.get(key)
                        )
                        if found is not None:
                            break
            if found is not None:
                out[ref] = found
        return out

    def check_vendor(self, vendor: list[VendorSubscription], matches: dict[str, VendorSubscription]) -> None:
        for check in self.scenario.expect.vendor:
            self._rule = attribution.vendor_check_rule(
                attribution.vendor_fields(check), self.scenario.rules, explicit=check.rule
            )
            if check.ref is not None:
                ref = check.ref
                sub = matches.get(ref)
                code = self.final_codes.get(ref)
                if check.exists is not None:
                    ok = (sub is not None) == check.exists
                    self._record(
                        check.line,
                        f"ref {ref}",
                        "exists" if check.exists else "does not exist",
                        f"vendor subscription {sub.id}" if sub else "none",
                        ok,
                        None
                        if ok
                        else (
                            f"the vendor holds {sub.id} for {ref}"
                            if sub
                            else f"the vendor holds no subscription for {ref}"
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
                    self._record(
                        check.line, f"ref {ref}", ", ".join(f"{k} {v}" for k, v in wants), "not found", False, why
                    )
                for name, wanted in wants if sub is not None else []:
                    assert sub is not None
                    actual: Any = {
                        "status": sub.status,
                        "quantity": sub.quantity,
                        "sku": sub.sku,
                        "product": sub.product,
                    }[name]
                    ok = str(actual).lower() == str(wanted).lower() if name == "status" else actual == wanted
                    self._record(
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
                    problem = self._code_relation(ref, check.activation_code, code)
                    if problem is None and code and sub is None:
                        problem = f"the broker's activation code for {ref} ({code}) is not one the vendor issued"
                    if (
                        problem is None
                        and check.activation_code.relation == "unchanged"
                        and sub is not None
                        and sub.activation_code != code
                    ):
                        problem = f"the vendor's code for {ref} is {sub.activation_code}, the broker holds {code}"
                    self._record(
                        check.line,
                        f"ref {ref}",
                        f"activation code {check.activation_code.describe()}",
                        code or "none",
                        problem is None,
                        problem,
                    )
            else:
                customer = check.customer
                theirs = [v for v in vendor if v.customer == self.alias(customer or "")]
                if check.subscriptions is not None:
                    ok = len(theirs) == check.subscriptions
                    self._record(
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
                    self._record(
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

    def _record(self, line: int, subject: str, expected: str, actual: str, ok: bool, explanation: str | None) -> None:
        rule = self._rule  # set by check_vendor for the item being checked
        self.result.vendor_checks.append(
            CheckRecord(
                line=line, subject=subject, expected=expected, actual=actual, ok=ok, explanation=explanation, rule=rule
            )
        )
        ref = subject[4:] if subject.startswith("ref ") else None
        if not ok:
            self.fail(f"vendor check (line {line}) {subject}: {explanation}", rule, ref=ref, line=line)
        else:
            self.passed_check(
                rule, attribution.END, f"vendor check (line {line}) {subject}: {expected}", ref=ref, line=line
            )

    def broker_charges(self, period: str) -> list[Charge]:
        charges = self.broker_call(f"charges({period})", self.broker.charges, period)
        out = []
        for charge in charges or []:
            if not isinstance(charge, Charge):
                raise _BrokerFailure(f"charges({period}) returned {charge!r}, not a Charge")
            if charge.period == period:
                out.append(self._as_checked(charge))
        return out

    def _as_checked(self, charge: Charge) -> Charge:
        """The charge under the scenario's names, without units other than the vendor's (incomparable)."""
        billing = getattr(self.broker, "billing", None)
        units = charge.units if billing is None or billing.units == "vendor" else None
        return dataclasses.replace(
            charge, ref=self.unalias(charge.ref), customer=self.unalias(charge.customer), units=units
        )

    def _note_not_checked(self, broker_charges: dict[str, list[Charge]]) -> None:
        """Say which invoice checks the broker's data or declared policy leaves out (they are skipped, not passed)."""
        billing = getattr(self.broker, "billing", None)
        expect = self.scenario.expect
        lines = [c for charges in broker_charges.values() for c in charges]
        if billing is not None and billing.policy == "own" and expect.charges:
            self.result.not_checked.append(
                "customer charges (amounts, units): the broker bills its customers by its "
                "own policy; the reconciliation against the vendor's bill is checked"
            )
        if billing is not None and billing.units != "vendor" and (expect.charges or expect.reconcile):
            self.result.not_checked.append(
                f"units: the broker reports {billing.units.replace('_', '-')}, the "
                "scenarios count the vendor's units (licence-days for PAYG, licences)"
            )
        elif any(c.units is None for c in lines):
            self.result.not_checked.append("units: the broker's invoice lines carry none")
        if expect.reconcile and any(c.vendor_cost is None for c in lines):
            self.result.not_checked.append(
                "reconciliation of costs: the broker's invoice lines carry no vendor cost (what it expects to pay)"
            )

    def vendor_bill(self, period: str) -> dict[str, dict[str, Any]]:
        """vendor id -> {units, amount, customer} summed over the vendor's lines of the period."""
        assert self.partner is not None
        if self.scenario.service == "korm":
            client, path, id_key, units_key = (
                self.partner.korm(actor="ksim-certify", transport=tls_transport()),
                f"/billing/{period}",
                "subscription_id",
                "units",
            )
        else:
            client, path, id_key, units_key = (
                self.partner.kss_rest(actor="ksim-certify", transport=tls_transport()),
                f"/bills/{period}",
                "subscriber_id",
                "charged_count",
            )
        with client:
            response = self.sim_call(f"read the vendor's bill {period}", client.get, path)
        if response.is_error:
            raise _HarnessError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
        totals: dict[str, dict[str, Any]] = {}
        for line in response.json().get("lines", []):
            entry = totals.setdefault(line[id_key], {"units": 0, "amount": ZERO, "customer": line.get("customer_id")})
            entry["units"] += int(line.get(units_key) or 0)
            entry["amount"] += Decimal(str(line.get("amount") or "0"))
        return totals

    @staticmethod
    def _by_ref(charges: Iterable[Charge]) -> dict[str, dict[str, Any]]:
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

    def check_charges(self, broker_charges: dict[str, list[Charge]]) -> None:
        billing = getattr(self.broker, "billing", None)
        if billing is not None and billing.policy == "own":
            return  # its customers' bills are the broker's own policy: noted as not checked
        expect = self.scenario.expect
        for period in expect.charge_periods:
            actual = self._by_ref(broker_charges.get(period, []))
            wanted = [c for c in expect.charges if c.period == period]
            for exp in wanted:
                got = actual.get(
                    exp.ref, {"units": 0, "amount": ZERO, "vendor_cost": ZERO, "lines": 0, "customers": []}
                )
                row = ChargeRow(
                    period=period,
                    ref=exp.ref,
                    expected=True,
                    expected_units=exp.units,
                    expected_amount=_money(exp.amount),
                    expected_vendor_cost=_money(exp.vendor_cost),
                    units=got["units"] if got["units"] is not None else 0,
                    amount=_money(got["amount"]) or "0.00",
                    vendor_cost=_money(got["vendor_cost"]) or "0.00",
                    lines=got["lines"],
                    customers=list(got["customers"]),
                    line=exp.line,
                )
                row.vendor_rule = attribution.reconcile_rule(self.scenario, period, exp.ref)
                row.split = _split(broker_charges.get(period, []), exp.ref)
                problems = []  # the customer's side: the broker's policy (units None: not on its invoices)
                if exp.units is not None and got["units"] is not None and got["units"] != exp.units:
                    problems.append(f"units {got['units']}, expected {exp.units}")
                if exp.amount is not None and got["amount"] != exp.amount:
                    problems.append(f"amount {row.amount}, expected {_money(exp.amount)}")
                if exp.customer is not None and got["lines"] and got["customers"] != [exp.customer]:
                    problems.append(f"billed to {', '.join(got['customers']) or 'nobody'}, expected {exp.customer}")
                cost_problem = None  # the vendor's side: the line's vendor rule
                if (
                    exp.vendor_cost is not None
                    and got["vendor_cost"] is not None
                    and got["vendor_cost"] != exp.vendor_cost
                ):
                    cost_problem = f"vendor cost {row.vendor_cost}, expected {_money(exp.vendor_cost)}"
                what = "no line" if not got["lines"] else f"{got['lines']} line(s)"
                where = f"charge {period} {exp.ref} (line {exp.line})"
                bills = attribution.BILLS
                at = {"ref": exp.ref, "period": period, "line": exp.line}
                if problems:
                    self.fail(f"{where}: the broker billed {what}: " + "; ".join(problems), row.rule, bills, **at)
                elif exp.units is not None or exp.amount is not None or exp.customer is not None:
                    self.passed_check(row.rule, bills, f"{where}: the customer's invoice", **at)
                if cost_problem:
                    self.fail(f"{where}: the broker billed {what}: {cost_problem}", row.vendor_rule, bills, **at)
                elif exp.vendor_cost is not None:
                    self.passed_check(row.vendor_rule, bills, f"{where}: vendor cost", **at)
                if problems or cost_problem:
                    row.ok = False
                    row.explanation = f"the broker billed {what}: " + "; ".join(problems + [cost_problem or ""]).strip(
                        "; "
                    )
                self.result.charges.append(row)
            named = {c.ref for c in wanted}
            for ref, got in actual.items():
                if ref in named or (not got["units"] and got["amount"] == 0):
                    continue
                row = ChargeRow(
                    period=period,
                    ref=ref,
                    expected=False,
                    units=got["units"] or 0,
                    amount=_money(got["amount"]) or "0.00",
                    vendor_cost=_money(got["vendor_cost"]) or "0.00",
                    lines=got["lines"],
                    customers=list(got["customers"]),
                    ok=False,
                    explanation=f"the broker billed {ref} in {period} ({got['units']} units, "
                    f"{_money(got['amount'])}); the scenario expects no charge",
                    split=_split(broker_charges.get(period, []), ref),
                )
                self.fail(
                    f"charge {period} {ref}: {row.explanation}", row.rule, attribution.BILLS, ref=ref, period=period
                )
                self.result.charges.append(row)

    def reconcile(
        self,
        broker_charges: dict[str, list[Charge]],
        vendor_bills: dict[str, dict[str, dict[str, Any]]],
        matches: dict[str, VendorSubscription],
        vendor: list[VendorSubscription],
    ) -> None:
        codes = {v.id: v.activation_code for v in vendor}
        for period in self.scenario.expect.reconcile:
            ours = self._by_ref(broker_charges.get(period, []))
            theirs = vendor_bills.get(period, {})
            claimed: set[str] = set()
            refs = list(dict.fromkeys(list(ours) + [r for r, v in matches.items() if v.id in theirs]))
            for ref in refs:
                mine = ours.get(ref, {"units": 0, "vendor_cost": ZERO, "lines": 0})
                sub = matches.get(ref)
                bill = theirs.get(sub.id, {"units": 0, "amount": ZERO}) if sub else {"units": 0, "amount": ZERO}
                if sub:
                    claimed.add(sub.id)
                row = ReconRow(
                    period=period,
                    ref=ref,
                    vendor_id=sub.id if sub else None,
                    broker_units=mine["units"] or 0,
                    vendor_units=bill["units"],
                    broker_cost=_money(mine["vendor_cost"]) or "0.00",
                    vendor_amount=_money(bill["amount"]) or "0.00",
                    rule=attribution.reconcile_rule(self.scenario, period, ref),
                )
                problems = []
                unexposed = mine["units"] is None and mine["vendor_cost"] is None  # only its amounts: judge by them
                if sub is None and (mine["units"] or mine["vendor_cost"] or (unexposed and mine.get("amount"))):
                    code = self.final_codes.get(ref)
                    problems.append(
                        f"the broker bills {ref} but the vendor holds no subscription with its activation "
                        f"code ({code or 'none stored'})"
                    )
                else:
                    if mine["units"] is not None and mine["units"] != bill["units"]:
                        problems.append(f"the broker counts {mine['units']} units, the vendor bills {bill['units']}")
                    if mine["vendor_cost"] is not None and mine["vendor_cost"] != bill["amount"]:
                        problems.append(
                            f"the broker expects a vendor cost of {row.broker_cost}, the vendor bills "
                            f"{row.vendor_amount}"
                        )
                if problems:
                    row.ok = False
                    row.explanation = "; ".join(problems)
                    self.fail(
                        f"reconciliation {period} {ref}: {row.explanation}",
                        row.rule,
                        attribution.BILLS,
                        ref=ref,
                        period=period,
                    )
                else:
                    self.passed_check(
                        row.rule, attribution.BILLS, f"reconciliation {period} {ref}", ref=ref, period=period
                    )
                self.result.reconciliation.append(row)
            for vendor_id, bill in theirs.items():
                if vendor_id in claimed or (bill["units"] == 0 and bill["amount"] == 0):
                    continue
                row = ReconRow(
                    period=period,
                    ref=None,
                    vendor_id=vendor_id,
                    vendor_units=bill["units"],
                    vendor_amount=_money(bill["amount"]) or "0.00",
                    ok=False,
                    rule=attribution.reconcile_rule(self.scenario, period, None),
                    explanation=f"the vendor bills subscription {vendor_id} (code "
                    f"{codes.get(vendor_id) or '?'}, customer {bill.get('customer')}) "
                    f"that no ref of the broker accounts for",
                )
                self.fail(f"reconciliation {period}: {row.explanation}", row.rule, attribution.BILLS, period=period)
                self.result.reconciliation.append(row)

    # -- timeline --

    def timeline(
        self,
        vendor: list[VendorSubscription],
        matches: dict[str, VendorSubscription],
        broker_charges: dict[str, list[Charge]],
        vendor_bills: dict[str, dict[str, dict[str, Any]]],
        months: list[str],
    ) -> Timeline:
        first = self.local_date(self.scenario.setup.start)
        last = self.local_date(self.clock - dt.timedelta(seconds=1))
        if last < first:
            last = first
        labels = {v.id: ref for ref, v in matches.items()}
        series: dict[str, list[tuple[str, int]]] = {}
        for sub in vendor:
            label = labels.get(sub.id) or f"vendor {sub.id} (no ref)"
            points: list[tuple[str, int]] = []
            day = first
            previous = None
            while day <= last:
                count = self._count_on(sub, day)
                if count != previous:
                    points.append((day.isoformat(), count))
                    previous = count
                day += dt.timedelta(days=1)
            series[label] = points
        expected_by_period: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for charge in self.scenario.expect.charges:
            if charge.amount is not None:
                expected_by_period[charge.period] += charge.amount
        periods = []
        for period in months:
            charges = broker_charges.get(period, [])
            periods.append(
                {
                    "period": period,
                    "expected": _money(expected_by_period[period])
                    if period in self.scenario.expect.charge_periods
                    else None,
                    "broker": _money(sum((Decimal(c.amount) for c in charges), ZERO)),
                    "broker_cost": _money(
                        sum((Decimal(c.vendor_cost) for c in charges if c.vendor_cost is not None), ZERO)
                    ),
                    "vendor": _money(sum((b["amount"] for b in vendor_bills.get(period, {}).values()), ZERO)),
                }
            )
        return Timeline(start=first.isoformat(), end=last.isoformat(), series=series, periods=periods)

    def _count_on(self, sub: VendorSubscription, day: dt.date) -> int:
        """Licences in force at the end of ``day`` (partner zone), from the vendor's history."""
        history = sub.raw.get("history") or []
        if self.scenario.service == "korm":
            state = None
            for entry in history:
                effective = dt.date.fromisoformat(entry["effective_date"])
                if effective <= day:
                    state = entry
            if state is None or state.get("change") == "stop":
                return 0
            return int(state.get("quantity") or 0)
        end_of_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), self.zone).astimezone(
            UTC
        ) - dt.timedelta(seconds=1)
        state = None
        for entry in history:
            if _parse_ts(entry["effective"]) <= end_of_day:
                state = entry
        if state is None:
            return 0
        status = state.get("status")
        end = state.get("end_time")
        if status in ("Started", "SoftCancelled") and (end is None or _parse_ts(end) > end_of_day):
            return int(state.get("license_count") or 0)
        return 0


_KSS_ERROR_CODE = re.compile(r'ErrorCode="(\d+)"')
_KORM_PROBLEM_CODE = re.compile(r'"code"\s*:\s*"([A-Z][A-Z0-9_]*)"')


def _split(charges: Iterable[Charge], ref: str) -> list[dict[str, Any]]:
    """The broker's own lines of one ref in one period, for the per-line and per-SKU tables (units and vendor cost
    ``None`` where the broker's invoices do not show them)."""
    return [
        {
            "sku": c.sku or "",
            "kind": c.kind or "",
            "units": None if c.units is None else int(c.units),
            "amount": _money(Decimal(c.amount)),
            "vendor_cost": _money(c.vendor_cost),
            "customer": c.customer,
        }
        for c in charges
        if c.ref == ref
    ]


def _parse_ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _display_path(scenario: Scenario) -> str:
    """The scenario file, relative (scenarios/provenance.py): never an absolute site-packages path."""
    return display_path(scenario.path, scenario.source)


def broker_build(broker: Any) -> str | None:
    """The broker's own build (version, commit), when it reports one (an optional ``build()`` method; the HTTP
    adapter's ``build`` method). A broker that cannot say is not at fault: ``None``."""
    method = getattr(broker, "build", None)
    if not callable(method):
        return None
    try:
        value = method()
    except Exception:  # noqa: BLE001 - provenance only; never a verdict
        return None
    return str(value)[:200] if value else None


def _broker_name(broker: Any) -> str:
    adapter = getattr(broker, "adapter", None)
    if adapter is not None and getattr(adapter, "name", None):
        return str(adapter.name)
    return type(broker).__name__


# -- entry points -------------------------------------------------------------------------------------


def run_scenario(
    scenario: Scenario, broker: Broker | BrokerFactory, sim: Simulator, *, level: str = FULL
) -> ScenarioResult:
    """Run one scenario. ``broker`` is a Broker, or a factory called once to make one. ``level``: the certification
    level the verdict is at (``full``, or ``vendor_side``: the broker's invoices do not decide it)."""
    if level not in LEVELS:
        raise ValueError(f"level is one of {', '.join(LEVELS)}, not {level!r}")
    instance = broker if _is_broker(broker) else broker()  # type: ignore[operator]
    return _Run(scenario, instance, sim, level).run()  # type: ignore[arg-type]


def _is_broker(candidate: Any) -> bool:
    return hasattr(candidate, "start") and hasattr(candidate, "charges")


def run_scenarios(
    scenarios: Sequence[Scenario],
    broker_factory: BrokerFactory,
    sim: Simulator,
    *,
    jobs: int = 4,
    on_result: Callable[[ScenarioResult], None] | None = None,
    level: str = FULL,
) -> list[ScenarioResult]:
    """Run every scenario, ``jobs`` at a time (each with its own partner and tenant; on a pool, at most one per
    pooled partner); results in input order."""
    if sim.pool is not None:
        jobs = min(jobs, len(sim.pool))
    results: list[ScenarioResult | None] = [None] * len(scenarios)

    def one(index: int) -> None:
        scenario = scenarios[index]
        try:
            broker = broker_factory()
        except Exception as exc:  # noqa: BLE001
            result = ScenarioResult(
                scenario_id=scenario.id,
                title=scenario.title,
                service=scenario.service,
                rules=list(scenario.rules),
                source=_display_path(scenario),
                verdict=ERROR,
                reason=f"could not make a broker: {type(exc).__name__}: {exc}",
            )
        else:
            result = run_scenario(scenario, broker, sim, level=level)
        results[index] = result
        if on_result is not None:
            on_result(result)

    if jobs <= 1:
        for index in range(len(scenarios)):
            one(index)
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="scenario") as pool:
            for future in [pool.submit(one, i) for i in range(len(scenarios))]:
                future.result()
    return [r for r in results if r is not None]


def days_in_month(period: str) -> int:
    year, month = (int(x) for x in period.split("-"))
    return calendar.monthrange(year, month)[1]
