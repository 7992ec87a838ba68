"""Audit log of every change: who, when (partner clock and system time), what (KSS-AUDIT-1)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.bulk import flush, insert
from ksimkit.simulators.core.clock import PartnerClock, iso_utc, system_now
from ksimkit.simulators.core.store import audit_log


def record(
    conn: Connection,
    partner_id: str,
    clock: PartnerClock,
    *,
    actor: str,
    service: str,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    insert(
        conn,
        audit_log,
        {  # queued while a clock move runs due events, so a long jump writes in batches
            "partner_id": partner_id,
            "at": clock.now,
            "recorded_at": system_now(),
            "actor": actor,
            "service": service,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "details": details or {},
        },
    )


def object_ids(conn: Connection, partner_id: str, *, service: str, action: str) -> set[str]:
    """The objects that already have an entry of ``action``: what lets a vendor's closing happen once per period
    (and again after a reset, which deletes the log)."""
    flush(conn)
    return set(
        conn.execute(
            sa.select(audit_log.c.object_id).where(
                audit_log.c.partner_id == partner_id, audit_log.c.service == service, audit_log.c.action == action
            )
        ).scalars()
    )


def entries(
    conn: Connection,
    partner_id: str,
    *,
    limit: int = 100,
    offset: int = 0,
    service: str | None = None,
    object_id: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    flush(conn)
    where = [audit_log.c.partner_id == partner_id]
    if service:
        where.append(audit_log.c.service == service)
    if object_id:
        where.append(audit_log.c.object_id == object_id)
    total = conn.execute(sa.select(sa.func.count()).select_from(audit_log).where(*where)).scalar_one()
    rows = conn.execute(
        sa.select(audit_log).where(*where).order_by(audit_log.c.id).limit(limit).offset(offset)
    ).mappings()
    items = [
        {
            "id": r["id"],
            "at": iso_utc(r["at"]),
            "recorded_at": iso_utc(r["recorded_at"]),
            "actor": r["actor"],
            "service": r["service"],
            "action": r["action"],
            "object_type": r["object_type"],
            "object_id": r["object_id"],
            "details": r["details"],
        }
        for r in rows
    ]
    return items, total
