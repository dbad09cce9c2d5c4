"""The audience's tables: subscribers, lists, memberships, tags and suppressions."""

from __future__ import annotations

import sqlalchemy as sa

from newsletter.store import metadata

SUBSCRIBER_STATUSES = ("active", "unsubscribed", "bounced", "complained")
SUBSCRIPTION_STATUSES = ("confirmed", "unconfirmed", "unsubscribed")

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False),
    # The address case folded: what makes it unique regardless of case.
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("language", sa.String(35), nullable=True),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("consent_source", sa.String(300), nullable=True),
    sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(
        "status IN ('active', 'unsubscribed', 'bounced', 'complained')",
        name="subscriber_status",
    ),
)

lists = sa.Table(
    "lists",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("description", sa.String(500), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column(
        "subscriber_id",
        sa.Integer,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "list_id", sa.Integer, sa.ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(
        "status IN ('confirmed', 'unconfirmed', 'unsubscribed')", name="subscription_status"
    ),
    sa.Index("subscriptions_by_list", "list_id", "status", "subscriber_id"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column(
        "subscriber_id",
        sa.Integer,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("tag", sa.String(64), primary_key=True),
    sa.Index("tags_by_tag", "tag", "subscriber_id"),
)

# Erased subscribers leave only this: a hash of the address, so imports skip them.
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("email_hash", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
