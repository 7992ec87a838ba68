"""The fault-kind vocabulary of the test harness (docs/harness.md), declared once.

A ``FaultKind`` says what a fault rule of that kind takes (its own fields and their defaults), whether ``when``
applies, and who applies it: the harness on the wire, to any service's answer (``answered_by`` None), or the one
front end that can answer it in its own shape (``answered_by`` a service name: a KSS SOAP fault, say). The
rule store (``faults``), the harness, the control-plane contract served, the SOAP front end and the scenario
model all read a ``FaultKinds`` registry; a new kind is one more ``FaultKind`` in it (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# apply(fault, response, environ) -> (the answer sent, its body as sent or None): see ``harness``.
WireApply = Callable[..., Any]


@dataclass(frozen=True)
class FaultKind:
    name: str
    doc: str
    fields: Mapping[str, Any] = field(default_factory=dict)  # own fields besides the common ones; None: computed
    answered_by: str | None = None  # None: the harness applies it to any answer; else the service that answers it
    takes_when: bool = True  # False: the work is always applied (a delay changes only the answer's time)
    rolls_back: bool = True  # `before` undoes the whole request's work (False: the front end leaves out its part)
    requires: tuple[str, ...] = ()  # common fields a rule of this kind must give (a delay's delay_ms)
    sends_answer: bool = True  # False: the client gets no answer at all (the journal records none)
    apply: WireApply | None = None  # how the harness applies a wire kind (answered_by None); None: leaves it as is


class FaultKinds(Mapping[str, FaultKind]):
    """An immutable registry of fault kinds, in declaration order."""

    def __init__(self, kinds: Iterable[FaultKind]) -> None:
        self._kinds: dict[str, FaultKind] = {}
        for kind in kinds:
            if kind.name in self._kinds:
                raise ValueError(f"fault kind {kind.name!r} is declared twice")
            self._kinds[kind.name] = kind

    def __getitem__(self, name: str) -> FaultKind:
        return self._kinds[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def extended(self, *kinds: FaultKind) -> FaultKinds:
        """This registry with more kinds (a test's, a plug-in's)."""
        return FaultKinds([*self._kinds.values(), *kinds])

    def answered_by(self, service: str) -> tuple[str, ...]:
        """The kinds only ``service``'s front end answers."""
        return tuple(name for name, kind in self._kinds.items() if kind.answered_by == service)

    def on_wire(self) -> tuple[str, ...]:
        """The kinds the harness applies to any answer."""
        return tuple(name for name, kind in self._kinds.items() if kind.answered_by is None)
