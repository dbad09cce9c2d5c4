"""The sending package's tables: campaigns and their per-recipient ledger."""

from __future__ import annotations

import sqlalchemy as sa

from newsletter.store import metadata

# The send ledger. A campaign is one issue, frozen at one content hash, to one segment; a
# delivery is one row per (campaign, subscriber). Deliveries hold no address: erasing a
# subscriber leaves only the id.
DELIVERY_STATES = ("pending", "sending", "sent", "deferred", "failed", "skipped")
# scheduled: waits for its time (a worker starts it); sending: any sender may work on it;
# paused, cancelled: nobody sends anything more; done: nothing left to send.
CAMPAIGN_STATES = ("scheduled", "sending", "paused", "cancelled", "done")

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("issue", sa.String(64), nullable=False),
    sa.Column("issue_path", sa.String(500), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("segment", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("recipients", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # Version 3: state and schedule, the frozen render, where it came from, and the
    # generation that makes (issue, segment) unique: --new-campaign takes the next one.
    sa.Column("state", sa.String(16), nullable=False, server_default="sending"),
    sa.Column("send_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("generation", sa.Integer, nullable=True),
    sa.Column("frozen", sa.Text, nullable=True),
    sa.Column("git_commit", sa.String(40), nullable=True),
    sa.Column("git_dirty", sa.Boolean, nullable=True),
    # Version 5: a hash of what the editor wrote (every edition's text, the images), to
    # tell a changed issue from a changed setting when the render no longer matches.
    sa.Column("source_hash", sa.String(64), nullable=True),
    sa.Index("campaigns_by_issue", "issue", "segment"),
    sa.Index("campaigns_once", "issue", "segment", "generation", unique=True),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column(
        "campaign_id",
        sa.Integer,
        sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("subscriber_id", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # How often the row was found still in `sending` (a crash, a kill) and sent again.
    sa.Column("resent", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("code", sa.Integer, nullable=True),
    sa.Column("reply", sa.String(500), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # Version 3: who holds a row in `sending`, until when (renewed while they live), and
    # the fingerprint of the exact bytes that went out (message.record_digest).
    sa.Column("lease_owner", sa.String(100), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("message_hash", sa.String(64), nullable=True),
    # Version 5: the edition (language) the subscriber gets, fixed when the row is made;
    # NULL for rows made before editions (the campaign's one render).
    sa.Column("edition", sa.String(35), nullable=True),
    sa.CheckConstraint(
        "status IN ('pending', 'sending', 'sent', 'deferred', 'failed', 'skipped')",
        name="delivery_status",
    ),
    sa.Index("deliveries_by_state", "campaign_id", "status", "subscriber_id"),
)


# Version 5: a campaign's editions, one per language, each frozen with its content hash.
# The campaign's own frozen render is its source edition's.
campaign_editions = sa.Table(
    "campaign_editions",
    metadata,
    sa.Column(
        "campaign_id",
        sa.Integer,
        sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("language", sa.String(35), primary_key=True),
    # The issue as written (True), or a translation of it.
    sa.Column("source", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("frozen", sa.Text, nullable=False),
)
