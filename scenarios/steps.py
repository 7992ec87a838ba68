"""The broker steps a scenario may take, declared once: the model, the runner, the HTTP adapter, the rule
attribution, the capability check and ``UnsupportedBroker`` all read a :class:`StepKinds` registry.

A new step is one more :class:`StepKind` here (and its method on the typed ``Broker`` protocols in
``brokers/base.py``, which ``tests/scenarios/test_step_registry.py`` holds to this table). A test or a plug-in
passes an extended copy (``STEPS.extended(...)``) where a registry is taken: ``parse_scenario(..., steps=)``,
``HttpAdapter.from_dict(..., steps=)``. A parsed step carries its declaration (``Step.spec``), so the runner needs
no table of its own.

Besides these, two harness steps need no broker: ``advance`` (both clocks) and ``fault`` (arm a simulator fault).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["HARNESS_STEPS", "STEPS", "Field", "StepKind", "StepKinds"]

UTC = dt.UTC
HARNESS_STEPS = ("advance", "fault")
# Field types: the value's form in the file, and how the runner hands it on.
FIELD_TYPES = ("newref", "ref", "customer", "str", "posint", "int0", "instant", "month")
_ALIASED = ("newref", "ref", "customer")  # names of the broker's own: fresh per run on a pooled partner


@dataclass(frozen=True)
class Field:
    """One field of a step: its ``type`` (``FIELD_TYPES``), whether the file must give it, and what the broker's
    method takes when the file leaves it out (an optional field left out is not passed by the runner)."""

    type: str
    required: bool = True
    default: Any = None


# (the step's arguments, the tenant's time zone) -> more values for the adapter file's templates
AdapterValues = Callable[[Mapping[str, Any], str], dict[str, Any]]


@dataclass(frozen=True)
class StepKind:
    """A broker step: ``name`` is the key in a scenario file and the Broker method the runner calls."""

    name: str
    services: frozenset[str]  # the scenarios' ``service`` values that may take it
    fields: Mapping[str, Field] = field(default_factory=dict)  # in the Broker method's argument order
    doc: str = ""
    rules: tuple[str, ...] = ()  # the vendor rules a "done" of this step checks, first named by the scenario wins
    capability: str | None = None  # what the broker must declare to run it (scenarios/capabilities.py)
    adapter_values: AdapterValues | None = None  # more template values for the adapter file (e.g. `end`)
    adapter_names: tuple[str, ...] = ()  # their names

    def __post_init__(self) -> None:
        for name, spec in self.fields.items():
            if spec.type not in FIELD_TYPES:
                raise ValueError(f"step {self.name}: field {name} has an unknown type {spec.type!r}")

    @property
    def ref_field(self) -> bool:
        """Whether the step names a subscription (``ref``): the runner then follows its activation code."""
        return "ref" in self.fields

    def template_names(self) -> tuple[str, ...]:
        """What the adapter file's templates of this method may use (``id``: the broker's own id for the ref)."""
        names = list(self.fields)
        if self.ref_field:
            names.insert(1, "id")
        return (*names, *self.adapter_names)

    def broker_args(self, args: Mapping[str, Any], alias: Callable[[str], str]) -> dict[str, Any]:
        """The keyword arguments of the Broker method: optional fields the file left out are not passed (the
        method's default applies), the broker's own names go through ``alias``."""
        out: dict[str, Any] = {}
        for name, spec in self.fields.items():
            value = args.get(name)
            if value is None and not spec.required:
                continue
            out[name] = alias(str(value)) if spec.type in _ALIASED and value is not None else value
        return out

    def bind(self, positional: tuple[Any, ...], keywords: Mapping[str, Any]) -> dict[str, Any]:
        """A call's arguments by field name, defaults filled in (as a typed Broker method binds them)."""
        names = list(self.fields)
        if len(positional) > len(names):
            raise TypeError(f"{self.name}() takes {len(names)} arguments, {len(positional)} given")
        values = dict(zip(names, positional, strict=False))
        for key, value in keywords.items():
            if key not in self.fields:
                raise TypeError(f"{self.name}() got an unexpected argument {key!r}")
            if key in values:
                raise TypeError(f"{self.name}() got {key!r} twice")
            values[key] = value
        missing = [name for name, spec in self.fields.items() if spec.required and name not in values]
        if missing:
            raise TypeError(f"{self.name}() is missing {', '.join(missing)}")
        return {name: values.get(name, spec.default) for name, spec in self.fields.items()}


class StepKinds(Mapping[str, StepKind]):
    """An immutable registry of broker steps, in declaration order."""

    def __init__(self, kinds: Iterable[StepKind]) -> None:
        self._kinds: dict[str, StepKind] = {}
        for kind in kinds:
            if kind.name in self._kinds or kind.name in HARNESS_STEPS:
                raise ValueError(f"step {kind.name!r} is declared twice")
            self._kinds[kind.name] = kind

    def __getitem__(self, name: str) -> StepKind:
        return self._kinds[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def extended(self, *kinds: StepKind) -> StepKinds:
        """This registry with more steps (a test's, a plug-in's)."""
        return StepKinds([*self._kinds.values(), *kinds])

    def of(self, service: str) -> tuple[str, ...]:
        """The steps a scenario of ``service`` may take."""
        return tuple(name for name, kind in self._kinds.items() if service in kind.services)

    @property
    def all_kinds(self) -> tuple[str, ...]:
        """Every step key a scenario file may use: the broker steps, then the harness's."""
        return (*self._kinds, *HARNESS_STEPS)


def _month_end(args: Mapping[str, Any], timezone: str) -> dict[str, Any]:
    """``end``: the instant the month ends (00:00 of the next month's 1st in the partner's zone), in UTC."""
    year, month = (int(x) for x in str(args["month"]).split("-"))
    first = dt.date(year + month // 12, month % 12 + 1, 1)
    return {"end": dt.datetime.combine(first, dt.time(0, 0), ZoneInfo(timezone)).astimezone(UTC)}


KORM, KSS = frozenset({"korm"}), frozenset({"kss"})
REF, NEWREF, CUSTOMER = Field("ref"), Field("newref"), Field("customer")

STEPS = StepKinds(
    [
        # KORM SS
        StepKind(
            "order",
            KORM,
            {
                "ref": NEWREF,
                "customer": CUSTOMER,
                "sku": Field("str"),
                "quantity": Field("posint"),
                "approval_code": Field("str", required=False),
            },
            "order a subscription",
            ("KORM-PLAN-1", "KORM-TRIAL-1", "KORM-STOP-2", "KORM-APPR-1", "KORM-ACT-1"),
        ),
        StepKind(
            "change_quantity",
            KORM,
            {"ref": REF, "quantity": Field("posint")},
            "change a subscription's quantity",
            ("KORM-PAYG-1", "KORM-YEAR-3", "KORM-RANGE-1", "KORM-LEG-2"),
        ),
        StepKind(
            "switch_plan",
            KORM,
            {"ref": REF, "sku": Field("str"), "quantity": Field("posint", required=False)},
            "switch a subscription to another band or plan",
            ("KORM-PAYG-3",),
            capability="plan_switch",
        ),
        StepKind("stop", KORM, {"ref": REF}, "stop a subscription", ("KORM-STOP-1", "KORM-YEAR-4")),
        StepKind(
            "reactivate",
            KORM | KSS,
            {"ref": REF},
            "KORM: must be refused; KSS: Renew a soft-cancelled subscription",
            ("KORM-STOP-1", "KSS-STOP-1"),
        ),
        StepKind("migrate", KORM, {}, "migrate the legacy subscriptions to PAYG", ("KORM-MIG-1",), "migration"),
        # KSS
        StepKind(
            "activate",
            KSS,
            {
                "ref": NEWREF,
                "customer": CUSTOMER,
                "product": Field("str"),
                "count": Field("posint"),
                "trial_days": Field("int0", required=False, default=0),
            },
            "activate a subscription",
            ("KSS-TRIAL-1", "KSS-TRIAL-2", "KSS-MSP-2", "KSS-PROD-1", "KSS-PREPAID-1", "KSS-FREE-1", "KSS-CODE-1"),
        ),
        StepKind(
            "change_count",
            KSS,
            {"ref": REF, "count": Field("posint")},
            "change a subscription's licence count",
            ("KSS-QTY-1", "KSS-QTY-2", "KSS-QTY-3"),
        ),
        StepKind(
            "change_product",
            KSS,
            {"ref": REF, "product": Field("str")},
            "change a subscription's product",
            ("KSS-CODE-1", "KSS-TRIAL-2"),
            capability="kss_product_change",
        ),
        StepKind(
            "pause",
            KSS,
            {"ref": REF, "until": Field("instant", required=False)},
            "pause a subscription",
            ("KSS-PAUSE-1",),
            capability="kss_pause",
        ),
        StepKind("resume", KSS, {"ref": REF}, "resume a paused subscription", ("KSS-PAUSE-1",), "kss_pause"),
        StepKind(
            "cancel_at_month_end",
            KSS,
            {"ref": REF, "month": Field("month")},
            "SoftCancel at the end of YYYY-MM",
            ("KSS-STOP-1",),
            capability="kss_soft_cancel",
            adapter_values=_month_end,
            adapter_names=("end",),
        ),
        StepKind("hard_cancel", KSS, {"ref": REF}, "cancel at once", ("KSS-STOP-1",), "kss_hard_cancel"),
    ]
)
