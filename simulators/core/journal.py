"""The request journal of the test harness (docs/harness.md): every request of a partner to a simulated service,
with its answer, timing, the fault that fired and the contract verdict. Stored in the database (gunicorn workers
share it), bounded per partner by the setting ``journal_limit`` (oldest entries dropped first).

The bound is exact for everything that reads the journal (``entries``, ``verify``): they see only the partner's
latest ``journal_limit`` entries. The rows beyond it are deleted in batches (``record`` prunes a partner's
overflow every ``prune_every(limit)`` of its entries written by this process), not on every insert: a
per-insert prune costs a second statement that walks ``limit`` index entries on every request. So the table may
hold up to about ``prune_every(limit)`` rows per worker process beyond the bound, which nobody sees."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.clock import iso_utc
from ksimkit.simulators.core.store import journal

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
            clauses.append(
                sa.or_(c.operation == self.operation, c.kinds.contains(f",{self.operation},", autoescape=True))
            )
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


_INSERT = sa.insert(journal)  # built once: a statement built per call costs more than running it
_PRUNE = sa.delete(journal).where(
    journal.c.partner_id == sa.bindparam("p_partner"),
    journal.c.id
    <= sa.select(journal.c.id)
    .where(journal.c.partner_id == sa.bindparam("p_partner"))
    .order_by(journal.c.id.desc())
    .offset(sa.bindparam("p_keep"))
    .limit(1)
    .scalar_subquery(),
)
_written: dict[str, int] = {}  # entries this process wrote per partner: when to prune (never read as state)
_written_lock = threading.Lock()
_WRITTEN_MAX = 10_000  # partners remembered; past that the counts start over (a prune comes early, harmlessly)


def prune_every(limit: int) -> int:
    """How many of a partner's entries a process writes between two prunes of its overflow."""
    return max(1, min(limit // 8, 128))


def row_values(
    *,
    partner_id: str,
    at: dt.datetime,
    service: str,
    method: str,
    path: str,
    operation: str | None,
    items: tuple[str, ...],
    status: int | None,
    violations: list[dict[str, str]],
    fault: dict[str, Any] | None,
    details: dict[str, Any],
) -> dict[str, Any]:
    """The journal row of an entry (what ``record`` inserts)."""
    return {
        "partner_id": partner_id,
        "at": at,
        "service": service,
        "method": method,
        "path": path,
        "operation": operation,
        "kinds": "".join(f",{kind}" for kind in items) + ("," if items else ""),
        "status": status,
        "conforms": not violations,
        "fault_id": None if fault is None else fault["id"],
        "entry": {**details, "violations": violations, "fault": fault},
    }


def insert(conn: Connection, values: dict[str, Any], limit: int) -> None:
    """Add an entry (``row_values``); now and then drop the partner's oldest beyond ``limit``."""
    conn.execute(_INSERT, values)
    partner_id = values["partner_id"]
    with _written_lock:
        if len(_written) >= _WRITTEN_MAX and partner_id not in _written:
            _written.clear()
        count = _written.get(partner_id, 0)
        _written[partner_id] = count + 1
    if count % prune_every(limit) == 0:  # the first entry a process writes for a partner prunes too
        prune(conn, partner_id, limit)


def prune(conn: Connection, partner_id: str, limit: int) -> int:
    """Delete the partner's entries beyond its latest ``limit``."""
    return conn.execute(_PRUNE, {"p_partner": partner_id, "p_keep": limit}).rowcount


def record(
    conn: Connection,
    *,
    partner_id: str,
    limit: int,
    at: dt.datetime,
    service: str,
    method: str,
    path: str,
    operation: str | None,
    items: tuple[str, ...],
    status: int | None,
    violations: list[dict[str, str]],
    fault: dict[str, Any] | None,
    details: dict[str, Any],
) -> None:
    """Add an entry; the partner keeps its latest ``limit`` (see the module's note on pruning)."""
    insert(
        conn,
        row_values(
            partner_id=partner_id,
            at=at,
            service=service,
            method=method,
            path=path,
            operation=operation,
            items=items,
            status=status,
            violations=violations,
            fault=fault,
            details=details,
        ),
        limit,
    )


def _kept(partner_id: str, keep: int | None) -> list[Any]:
    """The clause that hides a partner's entries beyond its latest ``keep`` (not yet pruned); none for no bound."""
    if keep is None:
        keep = _setting_limit()
    if keep is None or keep <= 0:
        return []
    cutoff = (
        sa.select(journal.c.id)
        .where(journal.c.partner_id == partner_id)
        .order_by(journal.c.id.desc())
        .offset(keep)
        .limit(1)
        .scalar_subquery()
    )
    return [journal.c.id > sa.func.coalesce(cutoff, 0)]


def _setting_limit() -> int | None:
    """The serving app's ``journal_limit`` (None outside an app)."""
    from flask import current_app, has_app_context

    if has_app_context() and "ksim" in current_app.extensions:
        return int(current_app.extensions["ksim"].settings.journal_limit)
    return None


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


def entries(
    conn: Connection, partner_id: str, filters: Filters, *, limit: int = 100, offset: int = 0, keep: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """One page of matching entries, oldest first, and how many match in all. ``keep``: the journal's bound
    (default: the serving app's ``journal_limit``)."""
    where = [*filters.where(partner_id), *_kept(partner_id, keep)]
    total = conn.execute(sa.select(sa.func.count()).select_from(journal).where(*where)).scalar_one()
    rows = conn.execute(sa.select(journal).where(*where).order_by(journal.c.id).limit(limit).offset(offset))
    return [_entry_json(r) for r in rows], total


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry in a line: what a failed verification shows of each request it saw."""
    return {key: entry[key] for key in ("id", "at", "service", "method", "path", "operation", "items", "status")} | {
        "conforms": entry["verdict"]["conforms"],
        "fault": None if entry["fault"] is None else entry["fault"]["id"],
    }


def verify(
    conn: Connection,
    partner_id: str,
    filters: Filters,
    *,
    count: int | None,
    at_least: int | None,
    at_most: int | None,
    keep: int | None = None,
) -> tuple[bool, int, list[dict[str, Any]]]:
    """(expectation met, entries matching, the partner's latest entries in summary) for a verification.
    ``keep``: the journal's bound (default: the serving app's ``journal_limit``)."""
    kept = _kept(partner_id, keep)
    matched = conn.execute(
        sa.select(sa.func.count()).select_from(journal).where(*filters.where(partner_id), *kept)
    ).scalar_one()
    if count is not None:
        ok = matched == count
    else:
        ok = (at_least is None or matched >= at_least) and (at_most is None or matched <= at_most)
    seen: list[dict[str, Any]] = []
    if not ok:
        rows = conn.execute(
            sa.select(journal)
            .where(journal.c.partner_id == partner_id, *kept)
            .order_by(journal.c.id.desc())
            .limit(SEEN_MAX)
        ).all()
        seen = [summary(_entry_json(r)) for r in reversed(rows)]
    return ok, matched, seen


def clear(conn: Connection, partner_id: str) -> int:
    return conn.execute(sa.delete(journal).where(journal.c.partner_id == partner_id)).rowcount
