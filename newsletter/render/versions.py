"""The copies of an issue that go to no subscriber: the public web version and the
sample a preview or a build shows."""

from __future__ import annotations

from newsletter.issue import IssueFile
from newsletter.render import Personalized, PersonalValues, render_issue
from newsletter.settings import Settings

SAMPLE_NAME = "Alex Reader"
SAMPLE_FIRST_NAME = "Alex"
SAMPLE_EMAIL = "alex.reader@example.org"


def view_online_url(settings: Settings, slug: str, edition: str | None = None) -> str:
    """The issue's web version in the archive: /archive/SLUG/, /archive/SLUG/LANG/."""
    return settings.public_url("archive", slug, *([edition] if edition else [])) + "/"


def sample_values(settings: Settings, slug: str, edition: str | None = None) -> PersonalValues:
    """Made-up recipient data for previews and the sample message."""
    return PersonalValues(
        email=SAMPLE_EMAIL,
        name=SAMPLE_NAME,
        first_name=SAMPLE_FIRST_NAME,
        unsubscribe_url=settings.public_url("unsubscribe", "sample-token"),
        view_online_url=view_online_url(settings, slug, edition),
        preferences_url=settings.public_url("preferences", "sample-token"),
    )


def public_version(issue_file: IssueFile, settings: Settings) -> Personalized:
    """The web version everyone sees (a build, the archive): the issue rendered for the
    web, with no personal data."""
    rendered = render_issue(issue_file, settings, web=True)
    copy = rendered.personalize(
        PersonalValues(
            email="",
            unsubscribe_url=settings.public_url("unsubscribe"),
            view_online_url=view_online_url(settings, rendered.slug, rendered.edition),
            preferences_url=settings.public_url("preferences"),
        )
    )
    # In a mail client the message is an article among others; on the web, the page's
    # main content (a landmark screen readers jump to).
    return Personalized(
        html=copy.html.replace(' role="article"', ' role="main"', 1), text=copy.text
    )
