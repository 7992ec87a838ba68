"""The control plane (``/_sim``) and the index (``/``) as one service (``core.service``): partners, clocks, the
test harness's rules and journal. Its resets clear what the harness and a running clock keep of a partner."""

from __future__ import annotations

from ksimkit.simulators import endpoints
from ksimkit.simulators.admin import api, harness
from ksimkit.simulators.core import clock_mode
from ksimkit.simulators.core import harness as core_harness
from ksimkit.simulators.core.service import Service

CONTROL_PLANE = Service(
    "control-plane",
    blueprints=(api.bp, harness.bp, endpoints.bp),
    tables=(clock_mode.running_clocks,),
    resets=(clock_mode.reset, core_harness.reset),
)
