"""KORM SS state: subscriptions, their dated history (the input of billing), approval codes."""

from __future__ import annotations

import sqlalchemy as sa

from ksimkit.simulators.core.store import DecimalText, UTCDateTime, metadata

subscriptions = sa.Table(
    "korm_subscriptions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("partner_id", sa.String(32), sa.ForeignKey("partners.id"), nullable=False, index=True),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("product_id", sa.String(32), nullable=False),
    sa.Column("billing_model", sa.String(8), nullable=False),  # payg | yearly | legacy
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("activation_code", sa.String(23), nullable=False, unique=True),
    sa.Column("activation_date", sa.Date, nullable=False),
    sa.Column("stopped_on", sa.Date, nullable=True),
    sa.Column("approval_code", sa.String(64), nullable=True),
    sa.Column("discount_percent", DecimalText, nullable=False),
    sa.Column("migrated_on", sa.Date, nullable=True),
    sa.Column("external_ref", sa.String(128), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# One row per change, dated: the state on a day is the last row dated on or before it.
history = sa.Table(
    "korm_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscription_id", sa.String(32), sa.ForeignKey("korm_subscriptions.id"), nullable=False, index=True),
    sa.Column("partner_id", sa.String(32), nullable=False, index=True),
    sa.Column("effective_date", sa.Date, nullable=False),
    sa.Column("change", sa.String(16), nullable=False),  # order|quantity|switch|stop|migrate|legacy_order
    sa.Column("billing_model", sa.String(8), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

# Statements read a partner's subscriptions in the order they were made, and which of them changed since their order
# (simulators/korm/billing.py load_book): both straight from an index, not a sort or a scan of the history.
sa.Index(
    "ix_korm_subscriptions_partner_created", subscriptions.c.partner_id, subscriptions.c.created_at, subscriptions.c.id
)
sa.Index("ix_korm_history_partner_change", history.c.partner_id, history.c.change, history.c.subscription_id)

approval_codes = sa.Table(
    "korm_approval_codes",
    metadata,
    sa.Column("partner_id", sa.String(32), sa.ForeignKey("partners.id"), primary_key=True),
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("percent", DecimalText, nullable=False),
    sa.Column("expires_on", sa.Date, nullable=False),
    sa.Column("used_by", sa.String(32), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
