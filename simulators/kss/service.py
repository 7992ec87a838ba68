"""KSS as one service (``core.service``): its SOAP front end and partner REST portal, tables, due events, reset
and the fault kinds only its SOAP front end answers."""

from __future__ import annotations

from ksimkit.simulators.core.harness import rest_front
from ksimkit.simulators.core.service import Service
from ksimkit.simulators.kss import api, control, events, soap, tables
from ksimkit.simulators.kss.faults import KSS_FAULT_KINDS

KSS = Service(
    "kss",
    blueprints=(api.bp, soap.bp),
    fronts=(soap.FRONT, rest_front("kss-rest", "/kss/v1", api.CONTRACT)),
    tables=(
        tables.subscriptions,
        tables.history,
        tables.transactions,
        tables.code_pools,
        tables.prepaid,
        tables.options,
    ),
    due_source=events.due_events,
    resets=(control.reset,),
    fault_kinds=KSS_FAULT_KINDS,
)
