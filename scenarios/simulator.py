"""Where a scenario's simulator runs (:class:`Simulator`) and how a scenario's ``fault`` step is armed there."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ksimkit.scenarios.results import plain
from ksimkit.simulators.client import PartnerHandle

if TYPE_CHECKING:
    from ksimkit.simulators.core.fault_kinds import FaultKinds

__all__ = ["Simulator", "fault_rule", "inject_fault"]


@dataclass(frozen=True)
class Simulator:
    """Where the simulator runs: its base URL (``http://127.0.0.1:8080``) and the control plane's admin token."""

    url: str
    admin_token: str = "ksim-admin"
    timeout: float = 10.0
    pool: Any = None  # a scenarios.pool.PartnerPool: run on pooled partners (fixed credentials) instead of new ones
    fault_kinds: FaultKinds | None = None  # the fault kinds it knows (None: ksim's own, default_fault_kinds())


@functools.cache
def _default_fault_kinds() -> FaultKinds:
    from ksimkit.simulators.services import default_fault_kinds  # on first use: it loads the simulator's web stack

    return default_fault_kinds()


def fault_rule(fields: dict[str, Any], fault_kinds: FaultKinds | None = None) -> dict[str, Any]:
    """The simulator's fault rule for a scenario's ``fault`` step: ``count`` is ``times`` (default 1, so the
    runner's own reads at the end never meet the fault), and a kind only the KSS front end answers gets
    ``service: kss`` (``fault_kinds``: the simulator's registry, default ksim's own)."""
    rule = dict(fields)
    if "count" in rule:
        rule["times"] = rule.pop("count")
    rule.setdefault("times", 1)
    if rule.get("kind") in (fault_kinds or _default_fault_kinds()).answered_by("kss"):
        rule.setdefault("service", "kss")
    return rule


def inject_fault(partner: PartnerHandle, spec: dict[str, Any]) -> Any:
    """Arm a fault on the simulator for this partner (WireMock-style): the client's method when it has one,
    else ``POST /_sim/partners/{id}/faults`` with the step's fields as the body."""
    method = getattr(partner, "inject_fault", None)
    if callable(method):
        return method(**spec)
    return partner.admin.request("POST", f"/partners/{partner.id}/faults", json=plain(spec))
