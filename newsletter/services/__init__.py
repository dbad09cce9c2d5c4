"""The application layer: one typed function per use case, called alike by the CLI, the
web service, the preview and the worker. Adapters parse, call one of these and present
the result; every rule lives below, in the domain packages.

    issues.py       validate, new, build, check, preview an issue
    subscribers.py  add, import, export, show, list, unsubscribe, erase; and what a
                    subscriber does on the web: sign up, confirm, unsubscribe (one-click,
                    list, mailto), see and update preferences, download their data
    campaigns.py    plan, send, send a test, retry, list and show campaigns
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from newsletter.settings import Settings


def _declare_tables() -> None:
    # Each package declares its own tables on the store's metadata.
    import newsletter.audience.db
    import newsletter.mailbox.tables
    import newsletter.sending.tables  # noqa: F401


def database(settings: Settings) -> Engine:
    """The database the settings name, created or upgraded to the current schema."""
    from newsletter.store import open_database

    _declare_tables()
    return open_database(settings.database_url)


def upgrade_database(settings: Settings) -> tuple[int, int]:
    """Create or upgrade the schema, and only that: (version before, version after)."""
    from newsletter.store import make_engine, upgrade

    _declare_tables()
    return upgrade(make_engine(settings.database_url))
