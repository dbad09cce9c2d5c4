"""Images: alt text for readers who never see them, https, and a width for Outlook."""

from __future__ import annotations

from urllib.parse import urlsplit

from newsletter.checks import Subject


def check(s: Subject) -> None:
    for image in s.parsed.images:
        src = str(image.get("src") or "")
        where = s.places.of_url(src)
        if not (image.get("alt") or "").strip():
            s.add("image.alt", f"the image {src or '(no src)'} has no alt text", where)
        if urlsplit(src).scheme != "https" or not urlsplit(src).netloc:
            s.add("image.https", f"the image '{src}' is not an absolute https URL", where)
        if not image.get("width"):
            s.add("image.width", f"the image {src} has no width; clients may show it huge", where)
