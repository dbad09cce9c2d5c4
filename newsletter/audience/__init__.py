"""The audience: subscribers, lists and segments in the database the settings name.

Imports stay inside the functions: `newsletter build` and `validate` load this package for
the address helpers and should not pay for SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from newsletter.audience.segments import NamedSegment, Segments
    from newsletter.issue import IssueFile
    from newsletter.settings import Settings

__all__ = ["audience_of", "database", "declared_segments"]


def database(settings: Settings) -> Engine:
    """The subscriber database, created or upgraded to the current schema."""
    from newsletter.audience.db import open_database

    return open_database(settings.database_url)


def declared_segments(settings: Settings) -> Segments:
    """The segments file, loaded (the built-in `everyone` always included)."""
    from newsletter.audience.segments import load_segments

    return load_segments(settings.segments_file, settings.default_list)


def audience_of(issue_file: IssueFile, settings: Settings) -> NamedSegment:
    """The segment an issue's `audience` names; an unknown name is reported at that key."""
    try:
        return declared_segments(settings).get(issue_file.issue.audience)
    except NewsletterError as exc:
        if exc.location is not None:
            raise
        raise NewsletterError(f"audience: {exc.message}", issue_file.location("audience")) from None
