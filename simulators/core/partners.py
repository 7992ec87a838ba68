"""Partners: who calls (SIM-AUTH-1). Each has a token (KORM, control plane views), KSS credentials and a clock."""

from __future__ import annotations

import datetime as dt
import functools
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.clock import PartnerClock, iso_utc, system_now
from ksimkit.simulators.core.errors import conflict, not_found, unprocessable
from ksimkit.simulators.core.store import (
    activation_codes,
    audit_log,
    idempotency,
    lock_partner,
    metadata,
    partner_settings,
    partners,
    serialize,
)

PROGRAMMES = ("xsp", "reseller", "msp")
BILLING_PERIODS = ("calendar_month", "30_days")

# Called as hook(conn, partner_id) to delete a service's data when a partner is reset or deleted. Each service
# declares its own (``core.service.Service.resets``); a reset is handed the app's.
ResetHook = Callable[[Connection, str], None]


@dataclass(frozen=True)
class Partner:
    id: str
    name: str
    programme: str
    msp_registered: bool
    timezone: str
    billing_period: str
    clock: PartnerClock

    @classmethod
    def from_row(cls, row: Any) -> Partner:
        return cls(
            row.id,
            row.name,
            row.programme,
            row.msp_registered,
            row.timezone,
            row.billing_period,
            PartnerClock(row.clock_now, row.timezone),
        )


def _select() -> Any:
    """Partners with their test-harness switch (``strict_contract``, None: the setting's default)."""
    return sa.select(partners, partner_settings.c.strict_contract).select_from(
        partners.outerjoin(partner_settings, partner_settings.c.partner_id == partners.c.id)
    )


def set_strict_contract(conn: Connection, partner_id: str, strict: bool | None) -> None:
    """The partner's strict contract mode (docs/harness.md): True, False, or None for the setting's default."""
    conn.execute(sa.delete(partner_settings).where(partner_settings.c.partner_id == partner_id))
    if strict is not None:
        conn.execute(sa.insert(partner_settings).values(partner_id=partner_id, strict_contract=strict))


def _row_json(row: Any) -> dict[str, Any]:
    clock = PartnerClock(row.clock_now, row.timezone)
    return {
        "id": row.id,
        "name": row.name,
        "programme": row.programme,
        "msp_registered": row.msp_registered,
        "timezone": row.timezone,
        "billing_period": row.billing_period,
        "now": iso_utc(clock.now),
        "today": clock.today.isoformat(),
        "created_at": iso_utc(row.created_at),
        "contact": row.contact,
        "strict_contract": getattr(row, "strict_contract", None),
    }


def create_partner(
    conn: Connection,
    *,
    faker_seed: int,
    default_timezone: str,
    name: str | None = None,
    programme: str = "reseller",
    msp_registered: bool | None = None,
    timezone: str | None = None,
    billing_period: str = "calendar_month",
    now: dt.datetime | None = None,
    strict_contract: bool | None = None,
    partner_id: str | None = None,
    token: str | None = None,
    kss_username: str | None = None,
    kss_password: str | None = None,
) -> dict[str, Any]:
    """A new partner. ``partner_id``, ``token``, ``kss_username`` and ``kss_password`` fix what is otherwise drawn at
    random: a pooled partner whose credentials a broker's test configuration holds (409 when one is taken)."""
    if programme not in PROGRAMMES:
        raise unprocessable("VALIDATION_ERROR", f"programme must be one of {PROGRAMMES}")
    if billing_period not in BILLING_PERIODS:
        raise unprocessable("VALIDATION_ERROR", f"billing_period must be one of {BILLING_PERIODS}")
    timezone = timezone or default_timezone
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder of zones, not a zone
        raise unprocessable("VALIDATION_ERROR", f"unknown time zone {timezone!r}") from None
    serialize(conn, "ksim partners")  # one seq per partner, also with several processes on one PostgreSQL
    seq = conn.execute(sa.select(sa.func.coalesce(sa.func.max(partners.c.seq), 0))).scalar_one() + 1
    fake_name, contact = _made_up(faker_seed * 1_000_003 + seq, name is None)  # repeatable for repeatable runs
    start = now or system_now()
    if start.tzinfo is None:
        start = start.replace(tzinfo=zone)
    start = start.astimezone(dt.UTC)
    partner_id = partner_id or "ptn_" + secrets.token_hex(6)
    for column, value, what in (
        (partners.c.id, partner_id, "partner id"),
        (partners.c.token, token, "token"),
        (partners.c.kss_username, kss_username, "KSS user name"),
    ):
        if value is not None and conn.execute(sa.select(partners.c.id).where(column == value)).first() is not None:
            raise conflict("CREDENTIALS_IN_USE", f"the {what} is already another partner's")
    values = {
        "id": partner_id,
        "seq": seq,
        "name": name or fake_name,
        "programme": programme,
        "msp_registered": programme == "msp" if msp_registered is None else msp_registered,
        "timezone": timezone,
        "billing_period": billing_period,
        "token": token or "ksim_" + secrets.token_urlsafe(24),
        "kss_username": kss_username or f"{partner_id}-kss",
        "kss_password": kss_password or secrets.token_urlsafe(16),
        "contact": contact,
        "clock_start": start,
        "clock_now": start,
        "created_at": system_now(),
    }
    conn.execute(sa.insert(partners).values(**values))
    set_strict_contract(conn, partner_id, strict_contract)
    row = conn.execute(_select().where(partners.c.id == partner_id)).one()
    return {
        **_row_json(row),
        "token": values["token"],
        "kss": {"username": values["kss_username"], "password": values["kss_password"]},
    }


_FAKER_LOCK = threading.Lock()


@functools.cache
def _faker() -> Any:
    from faker import Faker  # here, not at the top: a server that only serves never pays for its import

    return Faker()  # one per process: making one costs milliseconds, every new partner needs its values


def _made_up(seed: int, with_name: bool) -> tuple[str | None, dict[str, str]]:
    """A company name (when asked) and a contact, the same for the same seed."""
    with _FAKER_LOCK:  # seeding and drawing are one step: the instance is shared by the server's threads
        fake = _faker()
        fake.seed_instance(seed)
        company = fake.company() if with_name else None
        return company, {"email": fake.company_email(), "country": fake.country_code()}


def get_partner_json(conn: Connection, partner_id: str) -> dict[str, Any]:
    row = conn.execute(lock_partner(_select().where(partners.c.id == partner_id))).first()
    if row is None:
        raise not_found("PARTNER_NOT_FOUND", f"no partner {partner_id!r}")
    return _row_json(row)


def list_partners_json(conn: Connection) -> list[dict[str, Any]]:
    return [_row_json(r) for r in conn.execute(_select().order_by(partners.c.seq))]


# The lookups of every request, built once (bound parameters; SQLAlchemy caches their compiled form).
_BY_TOKEN = lock_partner(sa.select(partners).where(partners.c.token == sa.bindparam("p_token")))
_BY_KSS_USER = lock_partner(sa.select(partners).where(partners.c.kss_username == sa.bindparam("p_user")))


def partner_by_token(conn: Connection, token: str) -> Partner | None:
    row = conn.execute(_BY_TOKEN, {"p_token": token}).first()
    return None if row is None else Partner.from_row(row)


def partner_by_kss_credentials(conn: Connection, username: str, password: str) -> Partner | None:
    row = conn.execute(_BY_KSS_USER, {"p_user": username}).first()
    if row is None or not secrets.compare_digest(row.kss_password.encode(), password.encode()):
        return None
    return Partner.from_row(row)


def load_partner(conn: Connection, partner_id: str) -> Partner:
    row = conn.execute(lock_partner(sa.select(partners).where(partners.c.id == partner_id))).first()
    if row is None:
        raise not_found("PARTNER_NOT_FOUND", f"no partner {partner_id!r}")
    return Partner.from_row(row)


def rotate_credentials(conn: Connection, partner_id: str) -> dict[str, Any]:
    """A new bearer token and KSS password; the old ones are refused from now on (SIM-AUTH-1), as a vendor's
    expired or revoked credentials are. The KSS user name stays: it names the partner's account."""
    row = conn.execute(lock_partner(sa.select(partners).where(partners.c.id == partner_id))).first()
    if row is None:
        raise not_found("PARTNER_NOT_FOUND", f"no partner {partner_id!r}")
    token, password = "ksim_" + secrets.token_urlsafe(24), secrets.token_urlsafe(16)
    conn.execute(sa.update(partners).where(partners.c.id == partner_id).values(token=token, kss_password=password))
    return {"token": token, "kss": {"username": row.kss_username, "password": password}}


def reset_partner(
    conn: Connection, partner_id: str, hooks: Sequence[ResetHook], start: dt.datetime | None = None
) -> PartnerClock:
    """Delete everything the partner did and put its clock back to its start (or to a new ``start``: a pooled
    partner reused by the next scenario); credentials stay.

    Issued activation codes stay reserved: a code is never issued twice (KORM-STOP-2).
    """
    row = conn.execute(lock_partner(sa.select(partners).where(partners.c.id == partner_id))).first()
    if row is None:
        raise not_found("PARTNER_NOT_FOUND", f"no partner {partner_id!r}")
    if start is not None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=ZoneInfo(row.timezone))
        start = start.astimezone(dt.UTC)
    else:
        start = row.clock_start
    # The clock first: the services' reset hooks (a running clock's) see the start it goes back to.
    conn.execute(sa.update(partners).where(partners.c.id == partner_id).values(clock_start=start, clock_now=start))
    for hook in hooks:
        hook(conn, partner_id)
    conn.execute(sa.delete(audit_log).where(audit_log.c.partner_id == partner_id))
    conn.execute(sa.delete(idempotency).where(idempotency.c.partner_id == partner_id))
    return PartnerClock(start, row.timezone)


def delete_partner(conn: Connection, partner_id: str, hooks: Sequence[ResetHook]) -> None:
    """The partner and everything of it: its services' data, journal, fault rules, audit, settings. Other partners
    are untouched. The activation codes it was issued stay reserved, as after a reset: a code is never issued
    twice (KORM-STOP-2)."""
    row = conn.execute(lock_partner(sa.select(partners.c.id).where(partners.c.id == partner_id))).first()
    if row is None:
        raise not_found("PARTNER_NOT_FOUND", f"no partner {partner_id!r}")
    for hook in hooks:
        hook(conn, partner_id)
    # Whatever else names the partner (tables the hooks do not know), children before parents.
    for table in reversed(metadata.sorted_tables):
        if "partner_id" in table.c and table is not activation_codes:
            conn.execute(sa.delete(table).where(table.c.partner_id == partner_id))
    conn.execute(sa.delete(partners).where(partners.c.id == partner_id))
