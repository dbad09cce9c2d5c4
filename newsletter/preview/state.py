"""What the preview shows: the last good render, the error (if the last save broke it),
and a version number that moves on every rebuild."""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.errors import NewsletterError
from newsletter.render import GMAIL_CLIP_BYTES, SIZE_WARNING_BYTES, PersonalValues, RenderedIssue
from newsletter.services import issues
from newsletter.settings import Settings

_DARK = re.compile(r"@media\s*\(prefers-color-scheme:\s*dark\)")


def force_scheme(html: str, scheme: str) -> str:
    """Emulate prefers-color-scheme inside the frame by rewriting the dark media query."""
    if scheme == "dark":
        return _DARK.sub("@media all", html)
    if scheme == "light":
        return _DARK.sub("@media not all", html)
    return html


@dataclass
class Preview:
    path: Path
    settings: Settings
    recipient_email: str | None = None
    rendered: RenderedIssue | None = None
    recipient: PersonalValues | None = None
    error: list[str] | None = None
    version: int = 0
    build_ms: float = 0.0
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: asyncio.Event | None = None
    warnings: list[str] = field(default_factory=list)
    # The edition asked for (None: the issue's own language), and those there are.
    language: str | None = None
    editions: list[str] = field(default_factory=list)
    shown_language: str = ""

    def rebuild(self) -> None:
        """Render again. A failure keeps the last good render and records the error."""
        start = time.perf_counter()
        with self.lock:
            try:
                result = issues.preview(
                    self.path, self.settings, self.recipient_email, self.language
                )
            except NewsletterError as exc:
                self.error = (
                    exc.lines() if exc.location else [f"Error: {line}" for line in exc.lines()]
                )
            else:
                self.rendered, self.recipient, self.error = result.rendered, result.values, None
                self.warnings = result.warnings
                self.editions, self.shown_language = result.editions, result.language
            self.version += 1
            self.build_ms = (time.perf_counter() - start) * 1000

    def lookup(self, email: str | None, rendered: RenderedIssue) -> PersonalValues:
        """The values to fill the placeholders with: a subscriber's, or sample data."""
        return issues.preview_values(self.settings, rendered.slug, email, rendered.edition)

    def choose(self, language: str) -> None:
        """Show the edition in language (one of self.editions)."""
        if language not in self.editions:
            raise NewsletterError(f"no '{language}' edition; there are {', '.join(self.editions)}")
        self.language = language
        self.rebuild()

    def select(self, email: str | None) -> None:
        """Preview as another subscriber (None: sample data); unknown addresses raise."""
        with self.lock:
            if self.rendered is not None:
                self.recipient = self.lookup(email, self.rendered)
            self.recipient_email = email
            self.version += 1

    def state(self) -> dict[str, object]:
        with self.lock:
            size = self.rendered.html_size if self.rendered else 0
            return {
                "version": self.version,
                "error": self.error,
                "size": size,
                "size_limit": GMAIL_CLIP_BYTES,
                "size_warning": size > SIZE_WARNING_BYTES,
                "build_ms": round(self.build_ms, 1),
                "recipient": self.recipient.email if self.recipient else None,
                "warnings": self.warnings,
                "editions": self.editions,
                "language": self.shown_language,
                "test_recipients": self.settings.test_recipient_list(),
            }
