"""KORM SS as one service (``core.service``): its REST front end, tables, due events and reset."""

from __future__ import annotations

from ksimkit.simulators.core.harness import rest_front
from ksimkit.simulators.core.service import Service
from ksimkit.simulators.korm import api, events, rules, tables

KORM = Service(
    "korm",
    blueprints=(api.bp,),
    fronts=(rest_front("korm", "/korm/v1", api.CONTRACT),),
    tables=(tables.subscriptions, tables.history, tables.approval_codes),
    due_source=events.due_events,
    resets=(rules.reset,),
)
