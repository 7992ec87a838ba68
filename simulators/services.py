"""The services one ksim serves, listed explicitly (no registry filled at import): ``create_app`` wires them."""

from __future__ import annotations

from ksimkit.simulators.core.fault_kinds import FaultKinds
from ksimkit.simulators.core.wire_faults import WIRE_FAULT_KINDS
from ksimkit.simulators.kss.faults import KSS_FAULT_KINDS


def default_fault_kinds() -> FaultKinds:
    """Every fault kind ksim knows: the harness's wire kinds, then each service's own."""
    return FaultKinds([*WIRE_FAULT_KINDS, *KSS_FAULT_KINDS])
