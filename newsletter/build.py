"""`newsletter build`: write an issue's web version, text part and a sample message."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path

from newsletter.issue import load_issue
from newsletter.render import Personalized, Recipient, RenderedIssue, render_issue
from newsletter.settings import Settings

SAMPLE_RECIPIENT_NAME = "Alex Reader"
SAMPLE_RECIPIENT_EMAIL = "alex.reader@example.org"


@dataclass(frozen=True)
class BuildResult:
    folder: Path
    html: Path
    text: Path
    message: Path
    rendered: RenderedIssue


def view_online_url(settings: Settings, slug: str) -> str:
    return settings.public_url("archive", slug) + "/"


def sample_recipient(settings: Settings, slug: str) -> Recipient:
    """Made-up recipient data for previews and the sample message."""
    return Recipient(
        email=SAMPLE_RECIPIENT_EMAIL,
        name=SAMPLE_RECIPIENT_NAME,
        unsubscribe_url=settings.public_url("unsubscribe", "sample-token"),
        view_online_url=view_online_url(settings, slug),
        preferences_url=settings.public_url("preferences", "sample-token"),
    )


def public_version(rendered: RenderedIssue, settings: Settings) -> Personalized:
    """What "view in browser" shows everyone: generic values, no personal data."""
    return rendered.personalize(
        Recipient(
            email="",
            unsubscribe_url=settings.public_url("unsubscribe"),
            view_online_url=view_online_url(settings, rendered.slug),
            preferences_url=settings.public_url("preferences"),
        )
    )


def sample_message(rendered: RenderedIssue, settings: Settings) -> bytes:
    """The message a sample subscriber would get, built exactly as a campaign builds it;
    the date is the issue's, so the file is the same on every build."""
    from newsletter.sending.message import Addressee, campaign_template, unsubscribe_mailto

    recipient = sample_recipient(settings, rendered.slug)
    token = "sample-token"
    template = campaign_template(rendered, settings, f"sample-{rendered.slug}", rendered.subject)
    return template.build(
        Addressee(
            subscriber_id=0,
            email=recipient.email,
            name=recipient.name,
            message_id=f"<{rendered.slug}.sample.{rendered.content_hash[:12]}@"
            f"{settings.sender_domain()}>",
            unsubscribe_url=recipient.unsubscribe_url,
            unsubscribe_mailto=unsubscribe_mailto(settings, token),
            preferences_url=recipient.preferences_url,
        ),
        date=format_datetime(
            dt.datetime.combine(rendered.issue_date, dt.time(9, 0), tzinfo=dt.UTC)
        ),
    )


def _write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file so a crash never leaves half a file behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build(path: Path | str, settings: Settings, out_dir: Path | None = None) -> BuildResult:
    """Render an issue and write DIR/<slug>/index.html, index.txt and message.eml."""
    rendered = render_issue(load_issue(path), settings)
    folder = Path(out_dir if out_dir is not None else settings.build_dir) / rendered.slug
    folder.mkdir(parents=True, exist_ok=True)
    public = public_version(rendered, settings)
    result = BuildResult(
        folder=folder,
        html=folder / "index.html",
        text=folder / "index.txt",
        message=folder / "message.eml",
        rendered=rendered,
    )
    _write_atomically(result.html, public.html.encode("utf-8"))
    _write_atomically(result.text, public.text.encode("utf-8"))
    _write_atomically(result.message, sample_message(rendered, settings))
    return result
