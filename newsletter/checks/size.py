"""Size: Gmail clips HTML over 102 KB and hides what follows, the unsubscribe link too."""

from __future__ import annotations

from newsletter.checks import Subject
from newsletter.render import GMAIL_CLIP_BYTES, SIZE_WARNING_BYTES


def check(s: Subject) -> None:
    size = s.rendered.html_size
    if size > GMAIL_CLIP_BYTES:
        s.add(
            "size.clipped",
            f"the HTML is {size / 1024:.0f} KB; Gmail clips at 102 KB and hides the "
            "unsubscribe link",
        )
    elif size > SIZE_WARNING_BYTES:
        s.add(
            "size.near-clip", f"the HTML is {size / 1024:.0f} KB, close to Gmail's 102 KB clipping"
        )
