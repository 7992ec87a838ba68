"""Run scenarios against a broker and a ksim simulator; compare what happened with what the scenario expects.

```python
from ksimkit.scenarios.simulator import Simulator
from ksimkit.scenarios.runner import run_scenario, run_scenarios

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

Parts: ``vendor_views`` (what the simulator holds, per service), ``checks`` (the end's checks, pure functions of
data), ``results`` (what a run gives); this module runs the steps and puts them together.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import secrets
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from ksimkit.scenarios import attribution, checks, partner_setup
from ksimkit.scenarios.brokers.base import Broker, Charge, StepResult
from ksimkit.scenarios.brokers.http import tls_transport
from ksimkit.scenarios.capabilities import unsupported
from ksimkit.scenarios.errors import BrokerFailure, HarnessError, NotApplicable
from ksimkit.scenarios.model import Scenario, Step, first_of_next_month, to_instant
from ksimkit.scenarios.provenance import broker_build, broker_name, display_path
from ksimkit.scenarios.results import (
    ERROR,
    FAILED,
    FULL,
    INVOICE_FAILURE_PREFIXES,
    LEVELS,
    NOT_APPLICABLE,
    NOT_CHECKED,
    PASSED,
    VENDOR_SIDE,
    ScenarioResult,
    StepRecord,
    iso,
)
from ksimkit.scenarios.simulator import Simulator, fault_rule, inject_fault
from ksimkit.scenarios.vendor_views import (
    VIEWS,
    VendorSubscription,
    journal_mark,
    match_refs,
    run_months,
    sim_call,
    timeline,
    vendor_codes_since,
)
from ksimkit.simulators.client import KsimAdmin, PartnerHandle

__all__ = ["BrokerFactory", "run_scenario", "run_scenarios"]

BrokerFactory = Callable[[], Broker]


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
            source=display_path(scenario.path, scenario.source),
            description=scenario.description,
            broker=broker_name(broker),
            timezone=scenario.setup.timezone,
        )
        self.stopped_at: int | None = None  # the step where a broker error stopped the run
        self.code_changed: set[str] = set()  # refs whose activation code changed (reported once)
        self.clock = scenario.setup.start
        self.codes: dict[str, list[str]] = defaultdict(list)  # every activation code seen for a ref, in order
        self.final_codes: dict[str, str | None] = {}
        self.legacy_vendor: dict[str, str] = {}  # ref -> the vendor id of the legacy subscription seeded
        self.admin: KsimAdmin | None = None
        self.partner: PartnerHandle | None = None
        self.started = False
        self.view = VIEWS[scenario.service]

    # -- plumbing --

    # -- plumbing --

    def broker_call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NotImplementedError as exc:
            raise NotApplicable(f"the broker does not support {what}" + (f" ({exc})" if str(exc) else "")) from exc
        except (HarnessError, NotApplicable):
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the broker raises is the broker's failure
            raise BrokerFailure(f"the broker failed on {what}: {type(exc).__name__}: {exc}") from exc

    def fail(self, message: str, rule: str | None = None, position: int = attribution.END, **where: Any) -> None:
        """Record a failed check; ``where``: ``ref``, ``period``, ``line`` of the expectation (for the report)."""
        self.result.failures.append(message)
        if rule is not None:
            self.result.findings.append(attribution.Finding(rule, position, False, message, **where))

    def passed_check(self, rule: str, position: int, text: str, **where: Any) -> None:
        self.result.findings.append(attribution.Finding(rule, position, True, text, **where))

    def local_date(self, moment: dt.datetime) -> dt.date:
        return moment.astimezone(self.zone).date()

    def record(self, outcomes: Sequence[checks.Outcome]) -> None:
        """Record the checks made, in order: each a failure or a passed check of its rule."""
        for outcome in outcomes:
            if outcome.ok:
                self.passed_check(outcome.rule, outcome.position, outcome.text, **outcome.where)
            else:
                self.fail(outcome.text, outcome.rule, outcome.position, **outcome.where)

    # -- the run --

    def run(self) -> ScenarioResult:
        began = time.monotonic()
        borrowed = contextlib.ExitStack()
        try:
            missing = unsupported(self.scenario, getattr(self.broker, "capabilities", None))
            if missing:
                raise NotApplicable(f"the broker does not declare {', '.join(missing)} (adapter capabilities)")
            # Each client its own transport (closing a client closes its transport), all one TLS context.
            self.admin = KsimAdmin(
                self.sim.url, self.sim.admin_token, timeout=self.sim.timeout, transport=tls_transport()
            )
            self.member = borrowed.enter_context(self.sim.pool.borrow()) if self.sim.pool is not None else None
            self.setup()
            self.steps()
            self.finish()
            self.result.verdict = self._levels()
        except NotApplicable as exc:
            self.result.verdict = NOT_APPLICABLE
            self.result.reason = str(exc)
        except BrokerFailure as exc:
            position = self.stopped_at if self.stopped_at is not None else attribution.END
            rule = exc.rule or attribution.billing_rule(self.scenario.rules)
            self.stopped_at = position
            step = next((s for s in self.scenario.steps if s.index == position), None)
            self.fail(str(exc), rule, position, ref=step.ref if step else None, line=step.line if step else 0)
            self.result.verdict = FAILED
        except HarnessError as exc:
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

    def setup(self) -> None:
        assert self.admin is not None
        if self.member is not None:
            self.partner = partner_setup.pooled_partner(self.admin, self.sim.pool, self.member, self.scenario.setup)
            if not getattr(self.broker, "resets_state", True):
                self.suffix = "-" + secrets.token_hex(3)  # the broker's state is left alone: fresh names
        else:
            self.partner = partner_setup.new_partner(self.admin, self.scenario)
        self.result.partner_id = self.partner.id
        seeded = partner_setup.seed(self.partner, self.scenario.setup, self.alias)
        for legacy in seeded:
            self.legacy_vendor[self.unalias(legacy.ref)] = legacy.vendor_id
            self.codes[self.unalias(legacy.ref)].append(legacy.activation_code)
        tenant = partner_setup.tenant_setup(self.scenario, self.partner, seeded, self.member)
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
                at=iso(self.clock),
                ref=step.ref,
                note=step.note,
            )
            records.append(record)
            try:
                self.step(step, record)
            except NotApplicable as exc:
                record.outcome, record.ok, record.explanation = "not_applicable", True, str(exc)
                self._skip_rest(steps[position + 1 :])
                raise
            except BrokerFailure as exc:
                record.outcome, record.ok, record.explanation = "error", False, str(exc)
                self._skip_rest(steps[position + 1 :])
                self.stopped_at = step.index
                message = f"step {step.index} ({step.label()}, line {step.line}): {exc}"
                raise BrokerFailure(message, record.rule or self._step_rule(step)) from exc
            except HarnessError:
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
                    at=iso(step.at),
                    ref=step.ref,
                    outcome="skipped",
                    note=step.note,
                )
            )

    def advance(self, to: dt.datetime) -> None:
        assert self.partner is not None
        sim_call(f"advance the clock to {iso(to)}", self.partner.advance, to=to)
        self.broker_call(f"advance_clock to {iso(to)}", self.broker.advance_clock, to)
        self.clock = to

    def step(self, step: Step, record: StepRecord) -> None:
        assert self.partner is not None
        if step.kind == "advance":
            self.advance(step.args["to"])
            record.outcome = "ok"
            return
        if step.kind == "fault":
            rule = fault_rule(step.args, self.sim.fault_kinds)
            sim_call(f"arm the fault of step {step.index}", inject_fault, self.partner, rule)
            record.outcome = "ok"
            return
        record.expected = step.expect.describe()
        record.rule = self._step_rule(step)
        assert step.spec is not None  # a broker step: its declaration says how it is called (scenarios/steps.py)
        method = getattr(self.broker, step.spec.name)
        args = step.spec.broker_args(step.args, self.alias)
        mark = journal_mark(self.partner) if step.expect.code is not None else None
        result = self.broker_call(step.label(), method, **args)
        if not isinstance(result, StepResult):
            raise BrokerFailure(f"{step.kind} returned {result!r}, not a StepResult")
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
        partner = self.partner
        journal = (lambda: vendor_codes_since(partner, mark)) if mark is not None else (lambda: None)
        problems, vendors_code = checks.check_step(step.expect, result, self.codes, ref, journal)
        if vendors_code:
            record.code = f"{step.expect.code} (the vendor's, from ksim's journal)"
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
        assert step.spec is not None
        return attribution.step_rule(
            step.spec.rules,
            self.scenario.rules,
            code=step.expect.code,
            code_relation=step.expect.activation_code is not None,
            explicit=step.expect.rule,
            after_fault=attribution.follows_fault(self.scenario, step),
        )

    def _broker_code(self, ref: str) -> str | None:
        ref = self.alias(ref)
        try:
            code = self.broker.activation_code(ref)
        except NotImplementedError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise BrokerFailure(f"the broker failed on activation_code({ref!r}): {type(exc).__name__}: {exc}") from exc
        return str(code) if code else None

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
        assert self.partner is not None
        vendor = self.view.read(self.partner, self.clock)
        matches = self.match(vendor)
        records, outcomes = checks.check_vendor(
            self.scenario, vendor, matches, self.final_codes, self.codes, self.alias
        )
        self.result.vendor_checks.extend(records)
        self.record(outcomes)
        span = (self.local_date(self.scenario.setup.start), self.local_date(self.clock - dt.timedelta(seconds=1)))
        months = run_months(span, periods)
        try:
            broker_charges = {p: self.broker_charges(p) for p in months if p in periods}
        except NotApplicable:  # the broker exposes no invoices: a vendor-side certificate only
            self.invoices_exposed = False
            broker_charges = {}
            if periods:
                self.result.not_checked.append(
                    "customer charges and reconciliation: the broker exposes no invoices "
                    "(no charges method): vendor-side checks only"
                )
        vendor_bills = {p: self.view.bill(self.partner, p) for p in months}
        if not self.invoices_exposed:
            self.result.timeline = timeline(
                self.scenario, self.view, self.zone, span, vendor, matches, {}, vendor_bills, months
            )
            return
        billing = getattr(self.broker, "billing", None)  # a BillingPolicy (the adapter's `billing`), or None
        self.result.not_checked.extend(checks.not_checked(self.scenario, billing, broker_charges))
        for period in months:  # for the timeline only: failures to read months nobody checks are not the broker's
            if period not in broker_charges and self.invoices_exposed:
                try:
                    broker_charges[period] = self.broker_charges(period)
                except (BrokerFailure, NotApplicable):
                    broker_charges[period] = []
        if billing is None or billing.policy != "own":  # else its customers' bills are its own policy: not checked
            rows, outcomes = checks.check_charges(self.scenario, broker_charges)
            self.result.charges.extend(rows)
            self.record(outcomes)
        recon, outcomes = checks.reconcile(
            self.scenario, broker_charges, vendor_bills, matches, vendor, self.final_codes
        )
        self.result.reconciliation.extend(recon)
        self.record(outcomes)
        self.result.timeline = timeline(
            self.scenario, self.view, self.zone, span, vendor, matches, broker_charges, vendor_bills, months
        )

    def match(self, vendor: Sequence[VendorSubscription]) -> dict[str, VendorSubscription]:
        ids = getattr(self.broker, "ids", None) or {}  # the broker's own ids of its refs (the adapter's `id:`)
        return match_refs(
            self.view,
            vendor,
            self.scenario.refs,
            self.final_codes,
            self.legacy_vendor,
            lambda ref: [self.alias(ref), ids.get(self.alias(ref))],
        )

    def broker_charges(self, period: str) -> list[Charge]:
        charges = self.broker_call(f"charges({period})", self.broker.charges, period)
        out = []
        for charge in charges or []:
            if not isinstance(charge, Charge):
                raise BrokerFailure(f"charges({period}) returned {charge!r}, not a Charge")
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
                source=display_path(scenario.path, scenario.source),
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
