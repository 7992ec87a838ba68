"""Fault rules of the test harness (docs/harness.md): what to break, in which requests, how often. Per partner.

A rule names a ``kind`` and, optionally, the requests it applies to (``service``, ``operation``) and how often it
fires: the next ``times`` matching requests, each with ``probability`` (drawn from ``seed`` and the rule's match
count, so the same requests fire on every run), or every matching request while it exists. Rules are tried in
creation order; the first that fires is the request's fault. ``when`` says whether the request's work is rolled
back (``before``, the default: nothing changes) or committed before the bad answer goes out (``after``: the lost
answer). This module stores and picks rules; ``ksimkit.simulators.core.harness`` applies them on the wire.
"""

from __future__ import annotations

import http
import random
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.clock import iso_utc, system_now
from ksimkit.simulators.core.errors import Problem, not_found
from ksimkit.simulators.core.fault_kinds import FaultKind, FaultKinds
from ksimkit.simulators.core.store import fault_rules

SERVICES = ("korm", "kss", "kss-rest")
COMMON = ("kind", "service", "operation", "times", "probability", "seed", "when", "delay_ms", "delay_max_ms")


def _invalid(path: str, message: str) -> Problem:
    return Problem(
        422, "VALIDATION_ERROR", f"{path}: {message}", rule="SIM-ERR-1", errors=[{"path": path, "message": message}]
    )


def _status_code(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase.upper().replace(" ", "_").replace("-", "_").replace("'", "")
    except ValueError:
        return f"HTTP_{status}"


def normalise(
    body: Mapping[str, Any], operations: Mapping[str, Iterable[str]], default_seed: int, kinds: FaultKinds
) -> dict[str, Any]:
    """A rule's spec with its defaults, or ``Problem`` 422 for what the schema cannot say (the body already
    passed the contract's schema). ``operations``: the names each service's rules may use."""
    kind = body["kind"]
    if kind not in kinds:
        raise _invalid("/kind", f"{kind!r} is not a fault kind; known: {', '.join(kinds)}")
    declared = kinds[kind]
    service = body.get("service")
    if declared.answered_by is not None and service != declared.answered_by:
        raise _invalid(
            "/service",
            f'a {kind} is a {declared.answered_by.upper()} answer: the rule needs "service": "{declared.answered_by}"',
        )
    foreign = sorted(k for k in body if k not in COMMON and k not in declared.fields)
    if foreign:
        raise _invalid(f"/{foreign[0]}", f"{', '.join(foreign)} does not apply to a {kind} fault")
    operation = body.get("operation")
    if operation is not None:
        known = {name for svc, names in operations.items() if service in (None, svc) for name in names}
        if operation not in known:
            raise _invalid(
                "/operation",
                f"{operation!r} is not an operation of {service or 'any service'}; known: {', '.join(sorted(known))}",
            )
    for name in declared.requires:
        if name not in body:
            raise _invalid(f"/{name}", f"a {kind} fault needs {name}")
    if not declared.takes_when and "when" in body:
        raise _invalid("/when", f"a {kind} changes nothing but the answer's time: the request is always applied")
    if "delay_max_ms" in body:
        if "delay_ms" not in body:
            raise _invalid("/delay_max_ms", "delay_max_ms needs delay_ms (the random delay's lower bound)")
        if body["delay_max_ms"] < body["delay_ms"]:
            raise _invalid("/delay_max_ms", "delay_max_ms is less than delay_ms")
    spec: dict[str, Any] = {
        "kind": kind,
        "service": service,
        "operation": operation,
        "when": body.get("when", "before" if declared.takes_when else "after"),
        "times": body.get("times"),
        "probability": body.get("probability"),
        "seed": body.get("seed", default_seed),
        "delay_ms": body.get("delay_ms"),
        "delay_max_ms": body.get("delay_max_ms"),
    }
    for name, default in declared.fields.items():
        spec[name] = body.get(name, default)
    if kind == "status" and spec["code"] is None:
        spec["code"] = _status_code(spec["status"])
    return spec


def _rule_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        **row.spec,
        "matched": row.matched,
        "fired": row.fired,
        "remaining": row.remaining,
        "active": row.remaining is None or row.remaining > 0,
        "created_at": iso_utc(row.created_at),
    }


def create(conn: Connection, partner_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    rule_id = "flt_" + secrets.token_hex(6)
    conn.execute(
        sa.insert(fault_rules).values(
            id=rule_id,
            partner_id=partner_id,
            service=spec["service"],
            operation=spec["operation"],
            spec=spec,
            remaining=spec["times"],
            matched=0,
            fired=0,
            created_at=system_now(),
        )
    )
    return get(conn, partner_id, rule_id)


def list_rules(conn: Connection, partner_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(fault_rules).where(fault_rules.c.partner_id == partner_id).order_by(fault_rules.c.seq)
    )
    return [_rule_json(r) for r in rows]


def get(conn: Connection, partner_id: str, rule_id: str) -> dict[str, Any]:
    row = conn.execute(
        sa.select(fault_rules).where(fault_rules.c.partner_id == partner_id, fault_rules.c.id == rule_id)
    ).first()
    if row is None:  # another partner's rule is not found either (SIM-AUTH-1)
        raise not_found("FAULT_NOT_FOUND", f"partner {partner_id} has no fault rule {rule_id!r}")
    return _rule_json(row)


def delete(conn: Connection, partner_id: str, rule_id: str | None = None) -> int:
    """Remove one rule (``FAULT_NOT_FOUND`` if the partner has no such rule) or, without ``rule_id``, all."""
    where = [fault_rules.c.partner_id == partner_id]
    if rule_id is not None:
        get(conn, partner_id, rule_id)
        where.append(fault_rules.c.id == rule_id)
    return conn.execute(sa.delete(fault_rules).where(*where)).rowcount


@dataclass(frozen=True)
class Fault:
    """A rule that fired for the request at hand."""

    rule_id: str
    spec: dict[str, Any]
    firing: int  # 1 for the rule's first firing
    delay_s: float  # how long the answer waits (0: not at all)
    declared: FaultKind  # what its kind is and how it is applied

    @property
    def kind(self) -> str:
        return str(self.spec["kind"])

    @property
    def when(self) -> str:
        return str(self.spec["when"])

    @property
    def rolls_back(self) -> bool:
        """The request's work is undone: ``before`` faults of a kind that takes ``when`` and undoes the whole
        request (a unit error does not: the front end leaves the faulted units out; the others apply)."""
        return self.when == "before" and self.declared.takes_when and self.declared.rolls_back

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.rule_id,
            "kind": self.kind,
            "when": self.when,
            "firing": self.firing,
            "delay_ms": round(self.delay_s * 1000),
        }


def _draw(seed: int, count: int, purpose: str) -> random.Random:
    return random.Random(f"ksim:{seed}:{count}:{purpose}")  # a str seed is hashed stably, whatever PYTHONHASHSEED


def choose(
    conn: Connection, partner_id: str, service: str, operation: str | None, items: tuple[str, ...], kinds: FaultKinds
) -> tuple[Fault | None, bool]:
    """The fault of this request, if a rule fires, and whether any rule matched (its counters then changed).

    Runs in the request's transaction: rows are updated under the store's write lock, so two workers never
    fire the same last ``times``."""
    rows = conn.execute(
        sa.select(fault_rules).where(fault_rules.c.partner_id == partner_id).order_by(fault_rules.c.seq)
    ).all()
    touched = False
    for row in rows:
        if row.service not in (None, service):
            continue
        if row.operation is not None and row.operation != operation and row.operation not in items:
            continue
        if row.remaining is not None and row.remaining <= 0:
            continue
        touched = True
        matched = row.matched + 1
        spec = row.spec
        fires = spec["probability"] is None or _draw(spec["seed"], matched, "fire").random() < spec["probability"]
        values: dict[str, Any] = {"matched": matched}
        if fires:
            values["fired"] = row.fired + 1
            if row.remaining is not None:
                values["remaining"] = row.remaining - 1
        conn.execute(sa.update(fault_rules).where(fault_rules.c.seq == row.seq).values(**values))
        if not fires:
            continue
        delay_ms = spec.get("delay_ms") or 0
        if spec.get("delay_max_ms") is not None:
            delay_ms = _draw(spec["seed"], row.fired + 1, "delay").randint(delay_ms, spec["delay_max_ms"])
        return Fault(row.id, spec, row.fired + 1, delay_ms / 1000, kinds[spec["kind"]]), True
    return None, touched
