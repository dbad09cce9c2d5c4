"""Images: alt text for readers who never see them, https, and a width for Outlook."""

from __future__ import annotations

from urllib.parse import urlsplit

from newsletter.checks import Subject
from newsletter.fields import is_local

IMAGE_BUDGET = 200 * 1024
TOTAL_BUDGET = 1024 * 1024


def check(s: Subject) -> None:
    _local(s)
    for image in s.parsed.images:
        src = str(image.get("src") or "")
        where = s.places.of_url(src)
        if not (image.get("alt") or "").strip():
            s.add("image.alt", f"the image {src or '(no src)'} has no alt text", where)
        if urlsplit(src).scheme != "https" or not urlsplit(src).netloc:
            s.add("image.https", f"the image '{src}' is not an absolute https URL", where)
        if not image.get("width"):
            s.add("image.width", f"the image {src} has no width; clients may show it huge", where)


def _local(s: Subject) -> None:
    """Budgets and sharpness of the images kept beside the issue, once prepared."""
    sources = [
        a.image.src
        for a in s.issue_file.issue.articles()
        if a.image is not None and is_local(a.image.src)
    ]
    total = 0
    for source, prepared in zip(sources, s.rendered.media, strict=False):
        where = s.places.of_url(source)
        total += len(prepared.data)
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
