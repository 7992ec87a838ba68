"""The request journal of the test harness (docs/harness.md): every request of a partner to a simulated service,
with its answer, timing, the fault that fired and the contract verdict. Stored in the database (gunicorn workers
share it), bounded per partner by the setting ``journal_limit`` (oldest entries dropped first)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from simulators.core.clock import iso_utc
from simulators.core.store import journal

SEEN_MAX = 20  # entries shown by a failed verification


@dataclass(frozen=True)
class Filters:
    """Which entries: every given field must match. ``operation`` matches a REST operationId, the SOAP operation
    (``SubscriptionRequest``) or a KSS item kind the container holds (``Activate``)."""

    service: str | None = None
    operation: str | None = None
    method: str | None = None
    path: str | None = None
    status: int | None = None
    conforms: bool | None = None
    faulted: bool | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def where(self, partner_id: str) -> list[Any]:
        c = journal.c
        clauses: list[Any] = [c.partner_id == partner_id]
        if self.service is not None:
            clauses.append(c.service == self.service)
        if self.operation is not None:
            clauses.append(sa.or_(c.operation == self.operation,
                                  c.kinds.contains(f",{self.operation},", autoescape=True)))
        if self.method is not None:
            clauses.append(c.method == self.method.upper())
        if self.path is not None:
            clauses.append(c.path == self.path)
        if self.status is not None:
            clauses.append(c.status == self.status)
        if self.conforms is not None:
            clauses.append(c.conforms == self.conforms)
        if self.faulted is not None:
            clauses.append(c.fault_id.is_not(None) if self.faulted else c.fault_id.is_(None))
        return clauses

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.names() if getattr(self, name) is not None}


def record(conn: Connection, *, partner_id: str, limit: int, at: dt.datetime, service: str, method: str, path: str,
           operation: str | None, items: tuple[str, ...], status: int | None, violations: list[dict[str, str]],
           fault: dict[str, Any] | None, details: dict[str, Any]) -> None:
    """Add an entry and drop the partner's oldest beyond ``limit``."""
    conn.execute(sa.insert(journal).values(
        partner_id=partner_id, at=at, service=service, method=method, path=path, operation=operation,
        kinds="".join(f",{kind}" for kind in items) + ("," if items else ""), status=status,
        conforms=not violations, fault_id=None if fault is None else fault["id"],
        entry={**details, "violations": violations, "fault": fault},
    ))
    cutoff = conn.execute(
        sa.select(journal.c.id).where(journal.c.partner_id == partner_id)
        .order_by(journal.c.id.desc()).offset(limit).limit(1)
    ).scalar()
    if cutoff is not None:
        conn.execute(sa.delete(journal).where(journal.c.partner_id == partner_id, journal.c.id <= cutoff))


def _entry_json(row: Any) -> dict[str, Any]:
    entry = row.entry
    return {
        "id": row.id,
        "at": iso_utc(row.at),
        "partner_now": entry.get("partner_now"),
        "service": row.service,
        "method": row.method,
        "path": row.path,
        "query": entry.get("query", ""),
        "operation": row.operation,
        "items": [kind for kind in row.kinds.split(",") if kind],
        "status": row.status,
        "duration_ms": entry.get("duration_ms", 0),
        "request": entry.get("request"),
        "response": entry.get("response"),
        "verdict": {"conforms": row.conforms, "violations": entry.get("violations", [])},
        "fault": entry.get("fault"),
    }


def entries(conn: Connection, partner_id: str, filters: Filters, *, limit: int = 100,
            offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """One page of matching entries, oldest first, and how many match in all."""
    where = filters.where(partner_id)
    total = conn.execute(sa.select(sa.func.count()).select_from(journal).where(*where)).scalar_one()
    rows = conn.execute(sa.select(journal).where(*where).order_by(journal.c.id).limit(limit).offset(offset))
    return [_entry_json(r) for r in rows], total


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry in a line: what a failed verification shows of each request it saw."""
    return {key: entry[key] for key in ("id", "at", "service", "method", "path", "operation", "items", "status")} | {
        "conforms": entry["verdict"]["conforms"], "fault": None if entry["fault"] is None else entry["fault"]["id"],
    }


def verify(conn: Connection, partner_id: str, filters: Filters, *, count: int | None, at_least: int | None,
           at_most: int | None) -> tuple[bool, int, list[dict[str, Any]]]:
    """(expectation met, entries matching, the partner's latest entries in summary) for a verification."""
    matched = conn.execute(
        sa.select(sa.func.count()).select_from(journal).where(*filters.where(partner_id))).scalar_one()
    if count is not None:
        ok = matched == count
    else:
        ok = (at_least is None or matched >= at_least) and (at_most is None or matched <= at_most)
    seen: list[dict[str, Any]] = []
    if not ok:
        rows = conn.execute(sa.select(journal).where(journal.c.partner_id == partner_id)
                            .order_by(journal.c.id.desc()).limit(SEEN_MAX)).all()
        seen = [summary(_entry_json(r)) for r in reversed(rows)]
    return ok, matched, seen


def clear(conn: Connection, partner_id: str) -> int:
    return conn.execute(sa.delete(journal).where(journal.c.partner_id == partner_id)).rowcount
