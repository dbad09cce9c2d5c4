"""The audience: subscribers, lists and segments in the database the settings name.

Imports stay inside the functions: `newsletter build` and `validate` load this package for
the address helpers and should not pay for SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.audience.segments import NamedSegment, Segments
    from newsletter.issue import IssueFile
    from newsletter.settings import Settings

__all__ = ["audience_of", "declared_segments"]


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
