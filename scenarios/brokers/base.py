"""The Broker protocol: how a scenario drives a broker (the partner's own system), in the broker's terms.

A scenario never calls the simulator's KORM or KSS API itself: it asks the broker to order, change, stop,
... and the broker calls the vendor. One broker *tenant* per scenario run, bound to one simulator partner,
so scenarios run in parallel. A step the broker does not support raises ``NotImplementedError``: the
scenario is then reported *not applicable*.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from ksimkit.scenarios.steps import STEPS

__all__ = [
    "Broker",
    "Charge",
    "CommonBroker",
    "KormBroker",
    "KssBroker",
    "LegacySubscription",
    "StepResult",
    "TenantSetup",
    "UnsupportedBroker",
]


@dataclass(frozen=True)
class LegacySubscription:
    """A KORM legacy subscription the scenario seeded at the vendor before the broker started.

    (An addition to the design's TenantSetup: a broker holds its legacy subscriptions in its own database
    already; this tells it which vendor subscription the scenario calls ``ref``.)
    """

    ref: str
    customer: str
    sku: str
    quantity: int
    activation_date: dt.date
    activation_code: str
    vendor_id: str


@dataclass(frozen=True)
class TenantSetup:
    """Given to the broker when a scenario starts."""

    scenario_id: str
    korm_url: str  # <sim>/korm/v1
    korm_token: str
    kss_wsdl_url: str  # <sim>/kss/soap/upi?wsdl
    kss_username: str
    kss_password: str
    now: dt.datetime  # the start of the broker's test clock (= the partner clock)
    timezone: str
    # Customer price list: SKU (KORM) or product id (KSS) -> price per licence per month (PAYG, KSS) or per
    # year (Yearly); missing keys = the vendor list price (GET /korm/v1/products, profile kss prices).
    prices: dict[str, Decimal] = field(default_factory=dict)
    legacy: tuple[LegacySubscription, ...] = ()  # addition: KORM legacy subscriptions seeded at the vendor
    # What else decides a bill (the partner's vendor terms): KSS programme, KSS billing period, MSP registration,
    # and the whole machine-readable terms document (GET /_sim/partners/{id}/terms: prices, MSP tiers, ...).
    programme: str = "reseller"
    billing_period: str = "calendar_month"
    msp_registered: bool = False
    terms: dict[str, Any] = field(default_factory=dict)
    partner_id: str = ""  # the simulator partner (a pooled partner's id when ksim certify runs on a pool)
    pooled: bool = False  # True: the partner is one of a fixed pool the broker is configured with (no tenant API)
    broker_tenant: str = ""  # the pool entry's `tenant`: the broker's own name for what uses this partner


@dataclass(frozen=True)
class StepResult:
    outcome: Literal["done", "refused"]  # what the broker told its customer
    code: str | None = None  # vendor code the broker relayed (KORM problem code, KSS error code as str)
    message: str | None = None
    activation_code: str | None = None


@dataclass(frozen=True)
class Charge:
    """One line of the broker's invoice to its customer."""

    period: str  # YYYY-MM
    customer: str
    ref: str  # the scenario's name for the subscription
    # licence-days (KORM PAYG), charged count (KSS, legacy), licences (yearly fee/increase); None: the broker's
    # invoice has no units (or other ones): the checks that need them are reported "not checked"
    units: int | None
    amount: Decimal  # what the customer pays (at the tenant's prices)
    # what the broker expects the vendor to bill it for this line (reconciliation); None: not exposed
    vendor_cost: Decimal | None
    sku: str | None = None  # optional: the SKU (KORM) or product (KSS) billed, for the report's per-SKU table
    kind: str | None = None  # optional: the broker's kind of line (licence days, yearly fee, ...)


class CommonBroker(Protocol):
    """What every broker does, whichever service it sells."""

    def start(self, tenant: TenantSetup) -> None: ...

    def stop_tenant(self) -> None: ...

    def advance_clock(self, to: dt.datetime) -> None: ...  # the broker's own test clock; runs its billing

    def charges(self, period: str) -> list[Charge]: ...

    def activation_code(self, ref: str) -> str | None: ...  # as the broker knows it


class KormBroker(CommonBroker, Protocol):
    """A broker of KORM SS subscriptions: the KORM steps of ``scenarios/steps.py``."""

    def order(
        self, ref: str, customer: str, sku: str, quantity: int, approval_code: str | None = None
    ) -> StepResult: ...

    def change_quantity(self, ref: str, quantity: int) -> StepResult: ...

    def switch_plan(self, ref: str, sku: str, quantity: int | None = None) -> StepResult: ...

    def stop(self, ref: str) -> StepResult: ...

    def reactivate(self, ref: str) -> StepResult: ...  # KORM: must be refused; KSS: Renew a soft-cancelled one

    def migrate(self) -> StepResult: ...  # KORM legacy -> PAYG


class KssBroker(CommonBroker, Protocol):
    """A broker of KSS 3.0 subscriptions: the KSS steps of ``scenarios/steps.py``."""

    def activate(self, ref: str, customer: str, product: str, count: int, trial_days: int = 0) -> StepResult: ...

    def change_count(self, ref: str, count: int) -> StepResult: ...

    def change_product(self, ref: str, product: str) -> StepResult: ...

    def pause(self, ref: str, until: dt.datetime | None = None) -> StepResult: ...

    def resume(self, ref: str) -> StepResult: ...

    def reactivate(self, ref: str) -> StepResult: ...

    def cancel_at_month_end(self, ref: str, month: str) -> StepResult: ...  # KSS SoftCancel at the end of YYYY-MM

    def hard_cancel(self, ref: str) -> StepResult: ...


@runtime_checkable
class Broker(KormBroker, KssBroker, Protocol):
    """A broker of both services. A broker may implement one service's steps only: a step it lacks raises
    ``NotImplementedError`` (subclass :class:`UnsupportedBroker`), and the scenarios needing it are not applicable."""


class UnsupportedBroker:
    """A base class whose every method raises ``NotImplementedError``: subclass it and implement what you support.

    The steps are those of the step table (``scenarios/steps.py``), so a new step is unsupported here at once."""

    def start(self, tenant: TenantSetup) -> None:
        raise NotImplementedError("start")

    def stop_tenant(self) -> None:
        return None

    def advance_clock(self, to: dt.datetime) -> None:
        raise NotImplementedError("advance_clock")

    def charges(self, period: str) -> list[Charge]:
        raise NotImplementedError("charges")

    def activation_code(self, ref: str) -> str | None:
        raise NotImplementedError("activation_code")

    def __getattr__(self, name: str) -> Callable[..., StepResult]:
        # only for what the class lacks: a step of the table the subclass does not implement
        if name not in STEPS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        def unsupported(*args: Any, **kwargs: Any) -> StepResult:
            raise NotImplementedError(name)

        return unsupported
