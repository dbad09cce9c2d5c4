"""The mailbox package's tables: what each report did (events), and which reports were
already acted on (so that processing one twice changes nothing more)."""

from __future__ import annotations

import sqlalchemy as sa

from newsletter.store import metadata

EVENT_KINDS = ("bounce", "soft-bounce", "delayed", "complaint", "unsubscribe")

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # No foreign key: an event outlives an erasure as the bare id.
    sa.Column("subscriber_id", sa.Integer, nullable=False),
    sa.Column("campaign_id", sa.Integer, nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=True),  # an enhanced status code
    sa.Column("diagnostic", sa.String(300), nullable=False, server_default=""),
    sa.Column("report_id", sa.String(200), nullable=True),  # the report's Message-ID
    sa.Column("report_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("events_by_subscriber", "subscriber_id", "created_at"),
    sa.Index("events_by_campaign", "campaign_id", "kind"),
)

# One row per report acted on (by the SHA-256 of its bytes): the act and this row commit
# together, so a crash before the report is moved away acts on it at most once.
reports = sa.Table(
    "mailbox_reports",
    metadata,
    sa.Column("report_hash", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
