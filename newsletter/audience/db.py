"""The subscriber database: tables, connection set-up and schema versioning.

SQLAlchemy Core only, with no SQLite-only SQL, so a PostgreSQL URL works unchanged. The
schema carries a version number; opening a database applies any upgrade it lacks, each
in its own transaction, and refuses a database from a newer version of the tool.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.errors import ConfigError, NewsletterError

SUBSCRIBER_STATUSES = ("active", "unsubscribed", "bounced", "complained")
SUBSCRIPTION_STATUSES = ("confirmed", "unconfirmed", "unsubscribed")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


metadata = sa.MetaData()

schema_version = sa.Table(
    "newsletter_schema",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

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

V1_TABLES = (subscribers, lists, subscriptions, tags, suppressions)

# The send ledger (schema version 2). A campaign is one issue, at one content hash, to one
# segment; a delivery is one row per (campaign, subscriber). Deliveries hold no address:
# erasing a subscriber leaves only the id.
DELIVERY_STATES = ("pending", "sending", "sent", "deferred", "failed", "skipped")

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
    sa.Index("campaigns_by_issue", "issue", "segment"),
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
    sa.CheckConstraint(
        "status IN ('pending', 'sending', 'sent', 'deferred', 'failed', 'skipped')",
        name="delivery_status",
    ),
    sa.Index("deliveries_by_state", "campaign_id", "status", "subscriber_id"),
)


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=list(V1_TABLES))


def _create_v2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[campaigns, deliveries])


# Version N is reached by running MIGRATIONS[N - 1]. Append; never edit a released step.
MIGRATIONS: list[Callable[[Connection], None]] = [_create_v1, _create_v2]
SCHEMA_VERSION = len(MIGRATIONS)


def in_batches(
    conn: Connection, query: sa.Select[Any], key: sa.Column[int], batch_size: int
) -> Iterator[list[sa.Row[Any]]]:
    """Run query in pages ordered by key (an integer id), never holding more than one page.

    Keyset pagination (key > last) keeps every page's query cheap and the order stable
    while rows are added or removed meanwhile."""
    last = 0
    while True:
        rows = conn.execute(query.where(key > last).order_by(key).limit(batch_size)).all()
        if not rows:
            return
        yield rows
        last = rows[-1]._mapping[key]


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # WAL lets the preview and a send read while an import writes; FULL makes each commit
    # durable, which the send ledger relies on.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table(schema_version.name):
        return 0
    return int(conn.execute(sa.select(schema_version.c.version)).scalar_one_or_none() or 0)


def upgrade(engine: Engine) -> tuple[int, int]:
    """Bring the schema to SCHEMA_VERSION; returns (version before, version after)."""
    with engine.begin() as conn:
        before = current_version(conn)
        if before > SCHEMA_VERSION:
            raise NewsletterError(
                f"the database has schema version {before}, newer than this newsletter "
                f"understands ({SCHEMA_VERSION}); upgrade newsletter"
            )
        if before == 0:
            metadata.create_all(conn, tables=[schema_version])
            conn.execute(sa.insert(schema_version).values(version=0))
    for version in range(before + 1, SCHEMA_VERSION + 1):
        with engine.begin() as conn:
            MIGRATIONS[version - 1](conn)
            conn.execute(sa.update(schema_version).values(version=version))
    return before, SCHEMA_VERSION


def make_engine(url: str) -> Engine:
    """An engine for url with the connection settings this tool relies on."""
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(
            f"NEWSLETTER_DATABASE_URL: cannot use '{_safe_url(url)}': {exc}"
        ) from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unparseable URL)"


@lru_cache(maxsize=8)
def open_database(url: str) -> Engine:
    """The engine for url, with its schema created or upgraded."""
    engine = make_engine(url)
    try:
        upgrade(engine)
    except sa.exc.OperationalError as exc:
        raise NewsletterError(f"cannot open the database {_safe_url(url)}: {exc.orig}") from None
    return engine
