"""A simulated service as ``create_app`` wires it, and the set of services one app serves.

Each service package (``korm``, ``kss``, the control plane in ``admin``) declares one ``Service`` value in its
``service`` module: its blueprints, its front ends as the harness sees them, its tables, where its due events come
from, what a partner reset deletes, and the fault kinds only it answers. Nothing registers itself at import:
``ksimkit.simulators.services.default_services()`` lists the services, ``create_app`` hands them to the app, and
clock moves and resets take theirs from it (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import sqlalchemy as sa
from flask import Blueprint

from ksimkit.simulators.core.due import DueSource
from ksimkit.simulators.core.fault_kinds import FaultKind, FaultKinds
from ksimkit.simulators.core.harness import Front
from ksimkit.simulators.core.partners import ResetHook
from ksimkit.simulators.core.wire_faults import WIRE_FAULT_KINDS


@dataclass(frozen=True)
class Service:
    name: str
    blueprints: tuple[Blueprint, ...] = ()
    fronts: tuple[Front, ...] = ()  # the requests the harness serves for it (faults, strict mode, journal)
    tables: tuple[sa.Table, ...] = ()
    due_source: DueSource | None = None  # what falls due when a partner's clock moves
    resets: tuple[ResetHook, ...] = ()  # what a partner reset (and deletion) removes of its data
    fault_kinds: tuple[FaultKind, ...] = ()  # the kinds only its front ends answer


@dataclass(frozen=True)
class Services:
    """The services of one app, in wiring order, and what the app derives from them."""

    members: tuple[Service, ...]
    extra_fault_kinds: tuple[FaultKind, ...] = field(default=())  # a test's or a plug-in's own kinds

    def __post_init__(self) -> None:
        names = [s.name for s in self.members]
        if len(set(names)) != len(names):
            raise ValueError(f"a service is listed twice: {names}")

    def with_fault_kinds(self, *kinds: FaultKind) -> Services:
        return Services(self.members, (*self.extra_fault_kinds, *kinds))

    @cached_property
    def due_sources(self) -> tuple[DueSource, ...]:
        return tuple(s.due_source for s in self.members if s.due_source is not None)

    @cached_property
    def resets(self) -> tuple[ResetHook, ...]:
        return tuple(hook for s in self.members for hook in s.resets)

    @cached_property
    def tables(self) -> tuple[sa.Table, ...]:
        return tuple(table for s in self.members for table in s.tables)

    @cached_property
    def fronts(self) -> tuple[Front, ...]:
        return tuple(front for s in self.members for front in s.fronts)

    @cached_property
    def fault_kinds(self) -> FaultKinds:
        """The harness's wire kinds, then each service's own, then the extra ones."""
        own: Iterable[FaultKind] = (kind for s in self.members for kind in s.fault_kinds)
        return FaultKinds([*WIRE_FAULT_KINDS, *own, *self.extra_fault_kinds])

    @property
    def blueprints(self) -> tuple[Blueprint, ...]:
        return tuple(bp for s in self.members for bp in s.blueprints)
