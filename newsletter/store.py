"""The store: one SQLAlchemy metadata, connection set-up and schema versioning.

SQLAlchemy Core only, with no SQLite-only SQL, so a PostgreSQL URL works unchanged. Each
table is declared by the package that owns its rows (audience/db.py, sending/tables.py) on
this module's metadata; the migrations below name the tables each version adds. Opening a
database applies any upgrade it lacks, each in its own transaction, and refuses a database
from a newer version of the tool.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.errors import ConfigError, NewsletterError


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


metadata = sa.MetaData()

schema_version = sa.Table(
    "newsletter_schema",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)


def _create(*names: str) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        missing = [n for n in names if n not in metadata.tables]
        if missing:  # a table module was not imported: a programming error, not a user's
            raise RuntimeError(f"tables not declared: {', '.join(missing)}")
        metadata.create_all(conn, tables=[metadata.tables[n] for n in names])

    return step


def _complete(*names: str) -> Callable[[Connection], None]:
    """Add the columns and indexes a table's declaration has and the database lacks (a
    table created by an earlier step has the declaration of its day)."""

    def step(conn: Connection) -> None:
        inspector = sa.inspect(conn)
        for name in names:
            table = metadata.tables[name]
            have = {c["name"] for c in inspector.get_columns(name)}
            for column in table.columns:
                if column.name not in have:
                    kind = column.type.compile(dialect=conn.dialect)
                    default = (
                        f" DEFAULT '{column.server_default.arg}'"  # type: ignore[attr-defined]
                        if column.server_default is not None
                        else ""
                    )
                    null = "" if column.nullable or default else " NOT NULL"
                    conn.exec_driver_sql(
                        f"ALTER TABLE {name} ADD COLUMN {column.name} {kind}{default}{null}"
                    )
            indexes = {i["name"] for i in inspector.get_indexes(name)}
            for index in table.indexes:
                if index.name not in indexes:
                    if name == "campaigns" and index.name == "campaigns_once":
                        # Campaigns made before generations: each its own.
                        conn.exec_driver_sql(
                            "UPDATE campaigns SET generation = id WHERE generation IS NULL"
                        )
                    index.create(conn)

    return step


def _steps(*steps: Callable[[Connection], None]) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        for each in steps:
            each(conn)

    return step


# Version N is reached by running MIGRATIONS[N - 1]. Append; never edit a released step.
MIGRATIONS: list[Callable[[Connection], None]] = [
    _create("subscribers", "lists", "subscriptions", "tags", "suppressions"),
    _create("campaigns", "deliveries"),
    _complete("campaigns", "deliveries"),
    _create("events", "mailbox_reports"),
    _steps(_create("campaign_editions"), _complete("campaigns", "deliveries")),
]
SCHEMA_VERSION = len(MIGRATIONS)


def in_batches(
    conn: Connection, query: sa.Select[Any], key: sa.Column[int], batch_size: int
) -> Iterator[list[sa.Row[Any]]]:
    """Run query in pages ordered by key (an integer id), never holding more than one page.

    Keyset pagination (key > last) keeps every page's query cheap and the order stable
    while rows are added or removed meanwhile."""
    last = 0
    while True:
        rows = list(conn.execute(query.where(key > last).order_by(key).limit(batch_size)).all())
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


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that reads, then writes what it read, safely beside other writers:
    SQLite's write lock from the start; on PostgreSQL, the caller's SELECT ... FOR UPDATE
    SKIP LOCKED does the same row by row."""
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "sqlite":
            # The write lock first, then the reads: two senders cannot both read the same
            # due rows before either marks them (sqlite3 otherwise begins at the first write).
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


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
