"""KSS 3.0 state: subscriptions, their dated history (the input of billing), seen TransactionIds,
activation-code pools and prepaid licences (both seeded through the control plane).
"""

from __future__ import annotations

import sqlalchemy as sa

from ksimkit.simulators.core.store import UTCDateTime, metadata

# One subscription per SubscriberId per partner: another partner's SubscriberId is another subscription (SIM-AUTH-1).
subscriptions = sa.Table(
    "kss_subscriptions",
    metadata,
    sa.Column("partner_id", sa.String(32), sa.ForeignKey("partners.id"), primary_key=True),
    sa.Column("subscriber_id", sa.String(200), primary_key=True),
    sa.Column("customer_id", sa.String(200), nullable=False),
    sa.Column("product_id", sa.String(32), nullable=False),
    sa.Column("license_count", sa.Integer, nullable=False),
    sa.Column("activation_code", sa.String(23), nullable=False, unique=True),  # for life (KSS-CODE-1)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_change_time", UTCDateTime, nullable=False),
    sa.Column("start_time", UTCDateTime, nullable=False),
    sa.Column("end_time", UTCDateTime, nullable=True),  # NULL = indefinite
    sa.Column("trial_end", UTCDateTime, nullable=True),  # NULL = no trial
    sa.Column("trial_used", sa.Boolean, nullable=False),  # once per subscription, for ever (KSS-TRIAL-2)
    sa.Column("paused_at", UTCDateTime, nullable=True),
    sa.Column("pause_until", UTCDateTime, nullable=True),  # NULL while paused = until a Resume
    sa.Column("first_activation_time", UTCDateTime, nullable=True),  # NULL until the code is used on a device
    sa.Column("created_at", UTCDateTime, nullable=False),  # partner clock: KSS-FREE-1 reads its month
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# One row per state change, each a full snapshot of the billing-relevant state from ``effective`` on.
# ``source`` = partner: a change the partner ordered; billing replays these, ordered by (effective, id).
# ``source`` = vendor: what the clock did (start, pause end, trial end, end, renew); kept for the record and
# the audit trail, never needed by billing, because the partner snapshots already imply them.
history = sa.Table(
    "kss_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("partner_id", sa.String(32), nullable=False, index=True),
    sa.Column("subscriber_id", sa.String(200), nullable=False),
    sa.Column("effective", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),  # partner clock when written
    sa.Column("source", sa.String(8), nullable=False),  # partner | vendor
    sa.Column("event", sa.String(24), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("license_count", sa.Integer, nullable=False),
    sa.Column("product_id", sa.String(32), nullable=False),
    sa.Column("start_time", UTCDateTime, nullable=False),
    sa.Column("end_time", UTCDateTime, nullable=True),
    sa.Column("trial_end", UTCDateTime, nullable=True),
    sa.Column("paused_at", UTCDateTime, nullable=True),
    sa.Column("pause_until", UTCDateTime, nullable=True),
)
sa.Index("ix_kss_history_sub", history.c.partner_id, history.c.subscriber_id)

# Every accepted TransactionId, even when all its units failed (SIM-IDEM-1: a repeat answers 6).
transactions = sa.Table(
    "kss_transactions",
    metadata,
    sa.Column("partner_id", sa.String(32), sa.ForeignKey("partners.id"), primary_key=True),
    sa.Column("transaction_id", sa.String(255), primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("units", sa.Integer, nullable=False),
)

# A partner's activation-code pool, when limited; no row = unlimited (error 8 when it runs out).
code_pools = sa.Table(
    "kss_code_pools",
    metadata,
    sa.Column("partner_id", sa.String(32), sa.ForeignKey("partners.id"), primary_key=True),
    sa.Column("remaining", sa.Integer, nullable=False),
)

# Prepaid (non-subscription) licences a customer still holds: active while expires_on > today (KSS-PREPAID-1).
prepaid = sa.Table(
    "kss_prepaid",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("partner_id", sa.String(32), sa.ForeignKey("partners.id"), nullable=False, index=True),
    sa.Column("customer_id", sa.String(200), nullable=False),
    sa.Column("product_id", sa.String(32), nullable=False),
    sa.Column("licence_count", sa.Integer, nullable=False),
    sa.Column("expires_on", sa.Date, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# A partner's KSS wire options (the control plane's ``PUT /_sim/partners/{id}/kss/options``); no row = defaults.
# A setting, like the partner's time zone: a reset keeps it. No foreign key, so removing a partner is not blocked.
options = sa.Table(
    "kss_options",
    metadata,
    sa.Column("partner_id", sa.String(32), primary_key=True),
    sa.Column("ext_answers", sa.Boolean, nullable=False),  # extension attributes in every answer, not only to ext
)
