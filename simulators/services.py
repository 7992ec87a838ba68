"""The services one ksim serves, listed explicitly (nothing registers itself at import): ``create_app`` wires them,
and code that moves clocks or resets partners outside an app (tests, benches) takes them from here."""

from __future__ import annotations

from ksimkit.simulators.admin.service import CONTROL_PLANE
from ksimkit.simulators.core.fault_kinds import FaultKinds
from ksimkit.simulators.core.service import Services
from ksimkit.simulators.korm.service import KORM
from ksimkit.simulators.kss.service import KSS


def default_services() -> Services:
    """The control plane, KORM SS and KSS, in that order (resets and due events run in this order)."""
    return Services((CONTROL_PLANE, KORM, KSS))


def default_fault_kinds() -> FaultKinds:
    """Every fault kind ksim knows: the harness's wire kinds, then each service's own."""
    return default_services().fault_kinds
