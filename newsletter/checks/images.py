"""Images: alt text for readers who never see them, https, and a width for Outlook."""

from __future__ import annotations

from urllib.parse import urlsplit

from newsletter.checks import LinksAndImages, Subject
from newsletter.fields import is_local
from newsletter.render import RenderedIssue
from newsletter.settings import Settings

IMAGE_BUDGET = 200 * 1024
TOTAL_BUDGET = 1024 * 1024


def check(s: Subject) -> None:
    _local(s)
    media = s.settings.media_base() + "/"
    for image in s.parsed.images:
        src = str(image.get("src") or "")
        where = s.places.of_url(src)
        alt = image.get("alt")
        if alt is None or (image.get("linked") and not alt.strip()):
            s.add("image.alt", f"the image {src or '(no src)'} has no alt text", where)
        if src.startswith(media):
            pass  # a local image: where it is published is a setting (below)
        elif urlsplit(src).scheme != "https" or not urlsplit(src).netloc:
            s.add("image.https", f"the image '{src}' is not an absolute https URL", where)
        if not image.get("width"):
            s.add("image.width", f"the image {src} has no width; clients may show it huge", where)
        if not str(image.get("height") or "").isdigit():
            s.add(
                "image.height",
                f"the image {src} has no height; give image.height (its height in pixels at "
                "its width) so that its place keeps its shape while images are blocked",
                where,
            )
    # Without NEWSLETTER_MEDIA_URL they are under the base URL, which links.check covers.
    if s.rendered.media and s.settings.media_url and urlsplit(media).scheme != "https":
        s.add(
            "image.media-url",
            f"local images are published at {media}, which is not https: set "
            "NEWSLETTER_MEDIA_URL (or NEWSLETTER_BASE_URL) to the https address before a real "
            "send",
        )


def _local(s: Subject) -> None:
    """Budgets and sharpness of the images kept beside the issue, once prepared."""
    sources = [
        a.image.src
        for a in s.issue_file.issue.articles()
        if a.image is not None and is_local(a.image.src)
    ]
    # The article images first, in order, then the theme's (its logo).
    total = sum(len(prepared.data) for prepared in s.rendered.media)
    for source, prepared in zip(sources, s.rendered.media, strict=False):
        where = s.places.of_url(source)
        if len(prepared.data) > IMAGE_BUDGET:
            s.add(
                "image.bytes",
                f"{source} is {len(prepared.data) / 1024:.0f} KB once prepared; keep each "
                f"image under {IMAGE_BUDGET // 1024} KB (crop it, or a simpler picture)",
                where,
            )
        if prepared.source_width < prepared.display_width:
            s.add(
                "image.small",
                f"{source} is {prepared.source_width} px wide, shown at "
                f"{prepared.display_width} px: it will look blurred",
                where,
            )
    if total > TOTAL_BUDGET:
        s.add(
            "image.total",
            f"the issue's images weigh {total / 1024:.0f} KB together; readers on phones "
            f"wait for them (keep them under {TOTAL_BUDGET // 1024} KB)",
        )


def unreachable(rendered: RenderedIssue, settings: Settings, timeout: float = 5.0) -> list[str]:
    """Every image the email shows that does not answer at its address, with why."""
    from newsletter.checks.links import unanswered, user_agent

    urls = image_urls(rendered)
    problems = unanswered(urls, timeout=timeout, user_agent=user_agent(settings))
    return [f"{url} {problem}" for url, problem in problems.items()]


def image_urls(rendered: RenderedIssue) -> list[str]:
    """The address of every image the email shows, once each."""
    parsed = LinksAndImages()
    parsed.feed(rendered.html)
    return list(dict.fromkeys(str(image.get("src") or "") for image in parsed.images))
