"""The broker's own database (SQLAlchemy Core; SQLite by default): tenants, their customers' subscriptions with
the vendor's ids and codes, a local change history, and the invoices closed at each month end.

Times are stored as ISO 8601 strings (UTC with ``Z``), dates as ``YYYY-MM-DD``, money as decimal strings: the
database never has to know about time zones or Decimal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

metadata = sa.MetaData()

tenants = sa.Table(
    "rb_tenants",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("scenario_id", sa.String(200), nullable=False),
    sa.Column("korm_url", sa.String(500), nullable=False),
    sa.Column("korm_token", sa.String(500), nullable=False),
    sa.Column("kss_wsdl_url", sa.String(500), nullable=False),
    sa.Column("kss_username", sa.String(200), nullable=False),
    sa.Column("kss_password", sa.String(200), nullable=False),
    sa.Column("kss_rest_url", sa.String(500), nullable=False),
    sa.Column("now", sa.String(40), nullable=False),  # the tenant's test clock
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("prices", sa.JSON, nullable=False),  # the customer price list: SKU or KSS product -> price
    sa.Column("korm_catalog", sa.JSON, nullable=True),  # GET /korm/v1/products, read once
    sa.Column("programme", sa.String(20), nullable=True),  # KSS programme: xsp | reseller | msp
    sa.Column("billing_period", sa.String(20), nullable=True),  # KSS: calendar_month | 30_days
    sa.Column("defects", sa.JSON, nullable=False),
    sa.Column("closed_through", sa.String(7), nullable=True),  # the last month whose invoice is closed
    sa.Column("stopped", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

subscriptions = sa.Table(
    "rb_subscriptions",
    metadata,
    sa.Column("tenant_id", sa.String(40), primary_key=True),
    sa.Column("ref", sa.String(200), primary_key=True),  # the broker's (and the scenario's) name for it
    sa.Column("service", sa.String(8), nullable=False),  # korm | kss
    sa.Column("customer", sa.String(200), nullable=False),
    sa.Column("vendor_id", sa.String(200), nullable=False),  # KORM subscription id, or KSS SubscriberId
    sa.Column("activation_code", sa.String(64), nullable=True),
    sa.Column("plan", sa.String(64), nullable=False),  # KORM SKU, or KSS product id
    sa.Column("billing_model", sa.String(10), nullable=False),  # payg | yearly | legacy | kss
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("activation_date", sa.String(10), nullable=True),  # KORM
    sa.Column("discount_percent", sa.String(10), nullable=False, default="0"),  # KORM approval discount
    sa.Column("approval_code", sa.String(64), nullable=True),
    sa.Column("trial_days", sa.Integer, nullable=False, default=0),  # KSS
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

# The local change history: what the broker did, dated. Billing reads only this (and the price lists).
# KORM rows: ``effective`` is a date; KSS rows: a UTC instant, with the whole state after the change in ``state``.
changes = sa.Table(
    "rb_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(40), nullable=False, index=True),
    sa.Column("ref", sa.String(200), nullable=False),
    sa.Column("at", sa.String(40), nullable=False),  # the broker's clock when it was recorded
    sa.Column("effective", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("billing_model", sa.String(10), nullable=False),
    sa.Column("plan", sa.String(64), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("state", sa.JSON, nullable=True),
)

invoices = sa.Table(
    "rb_invoices",
    metadata,
    sa.Column("tenant_id", sa.String(40), primary_key=True),
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("closed_at", sa.String(40), nullable=False),
)

invoice_lines = sa.Table(
    "rb_invoice_lines",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(40), nullable=False, index=True),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("line", sa.JSON, nullable=False),
)


class Store:
    def __init__(self, database_url: str) -> None:
        kwargs: dict[str, Any] = {"future": True}
        if database_url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if database_url in ("sqlite://", "sqlite:///:memory:"):
                kwargs["poolclass"] = StaticPool  # one shared in-memory database for every thread
        self.engine: Engine = sa.create_engine(database_url, **kwargs)
        metadata.create_all(self.engine)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone")
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_instant(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment.astimezone(dt.UTC)
