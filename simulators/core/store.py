"""State in a real database through SQLAlchemy Core: a SQLite file by default, PostgreSQL for shared deployments.

One transaction per request: ``Store.begin()`` yields a connection; an exception rolls everything back,
so a refused request changes nothing.

Concurrency (docs/reliability.md). Every request belongs to one partner, and every transaction that acts for a
partner reads the partner's row first with ``lock_partner`` (its clock lives there). On PostgreSQL that read is
``SELECT ... FOR NO KEY UPDATE``: the transactions of one partner run one after the other across every process
and thread, those of different partners in parallel, at READ COMMITTED, and each sees the data its predecessor
committed. SQLite needs no row lock: ``BEGIN IMMEDIATE`` already runs every writing transaction alone. Threads of
one process take their turns on a lock of the process first: a thread waiting for SQLite's write lock would
sleep in SQLite's busy handler (backing off by milliseconds) and miss its turn; on the lock it is woken at once
(about 10% more requests per second under load). Processes still wait in the busy handler.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in, aware UTC out; stored naive UTC so SQLite and PostgreSQL agree."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class DecimalText(sa.TypeDecorator[Decimal]):
    """Exact decimals on every backend (SQLite has no decimal type)."""

    impl = sa.String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


partners = sa.Table(
    "partners",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("programme", sa.String(16), nullable=False),
    sa.Column("msp_registered", sa.Boolean, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("billing_period", sa.String(16), nullable=False),
    sa.Column("token", sa.String(80), nullable=False, unique=True),
    sa.Column("kss_username", sa.String(80), nullable=False, unique=True),
    sa.Column("kss_password", sa.String(80), nullable=False),
    sa.Column("contact", sa.JSON, nullable=False),
    sa.Column("clock_start", UTCDateTime, nullable=False),
    sa.Column("clock_now", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("partner_id", sa.String(32), sa.ForeignKey("partners.id"), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("service", sa.String(16), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object_type", sa.String(32), nullable=False),
    sa.Column("object_id", sa.String(200), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
)

# Every activation code ever issued, by either service: the primary key makes a code unique for ever (KORM-STOP-2).
activation_codes = sa.Table(
    "activation_codes",
    metadata,
    sa.Column("code", sa.String(23), primary_key=True),
    sa.Column("partner_id", sa.String(32), nullable=False),
    sa.Column("service", sa.String(8), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
)

# Answers of POSTs that carried an Idempotency-Key (SIM-IDEM-1).
idempotency = sa.Table(
    "idempotency",
    metadata,
    sa.Column("partner_id", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# The test harness (core.harness, docs/harness.md): per-partner switches, fault rules, request journal.
# New tables only (no new columns on old ones), so a state file of an earlier ksim still opens.
partner_settings = sa.Table(
    "partner_settings",
    metadata,
    sa.Column("partner_id", sa.String(32), sa.ForeignKey("partners.id"), primary_key=True),
    sa.Column("strict_contract", sa.Boolean, nullable=True),  # None: the setting strict_contract
)

fault_rules = sa.Table(
    "fault_rules",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),  # rules are tried in creation order
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("partner_id", sa.String(32), sa.ForeignKey("partners.id"), nullable=False, index=True),
    sa.Column("service", sa.String(16), nullable=True),
    sa.Column("operation", sa.String(64), nullable=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("remaining", sa.Integer, nullable=True),  # None: no limit
    sa.Column("matched", sa.Integer, nullable=False),
    sa.Column("fired", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

journal = sa.Table(
    "journal",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("partner_id", sa.String(32), sa.ForeignKey("partners.id"), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("service", sa.String(16), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("operation", sa.String(64), nullable=True),
    sa.Column("kinds", sa.Text, nullable=False),  # KSS item kinds as ",Activate,GetInfo," (empty for REST)
    sa.Column("status", sa.Integer, nullable=True),  # None: no answer (a dropped connection)
    sa.Column("conforms", sa.Boolean, nullable=False),
    sa.Column("fault_id", sa.String(32), nullable=True),
    sa.Column("entry", sa.JSON, nullable=False),  # the rest of the entry as the API shows it
    sa.Index("ix_journal_partner_id_id", "partner_id", "id"),
)

# The store's own tables; each service declares its own (``core.service.Service.tables``).
CORE_TABLES = (partners, audit_log, activation_codes, idempotency, partner_settings, fault_rules, journal)


def _sqlite_setup(engine: Engine) -> None:
    """WAL and BEGIN IMMEDIATE: several gunicorn workers share one file without lost updates or lock upgrades."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def lock_partner(query: sa.Select[Any]) -> sa.Select[Any]:
    """The partner read that starts a partner's transaction: row-locked on PostgreSQL (``NO KEY``: the foreign-key
    checks of inserts that name the partner, such as journal entries, do not wait for it). SQLite ignores it."""
    return query.with_for_update(of=partners, key_share=True)


def serialize(conn: Connection, name: str) -> None:
    """Run the rest of this transaction alone among those that serialize on ``name`` (PostgreSQL advisory lock,
    released at commit). SQLite's writers already run alone."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})


def database_url(url: str) -> sa.URL:
    """A SQLAlchemy URL; a bare ``postgresql://`` or ``postgres://`` means the psycopg (3) driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


class Store:
    def __init__(self, url: str) -> None:
        self.url = database_url(url)
        self._writer: AbstractContextManager[Any] = nullcontext()
        if self.url.get_backend_name() == "sqlite":
            db = self.url.database
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            self.engine = sa.create_engine(self.url, connect_args={"timeout": 30, "check_same_thread": False})
            _sqlite_setup(self.engine)
            self._writer = threading.RLock()  # SQLite has one writer at a time: threads queue here (see above)
        else:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True, isolation_level="READ COMMITTED")

    def create_schema(self, tables: Iterable[sa.Table] = ()) -> None:
        """Create the missing tables: the store's own and ``tables`` (the services', ``Services.tables``); several
        processes starting at once on one PostgreSQL take turns."""
        wanted = [*CORE_TABLES, *tables]
        with self.engine.begin() as conn:
            serialize(conn, "ksim schema")
            metadata.create_all(conn, tables=wanted)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self._writer, self.engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
