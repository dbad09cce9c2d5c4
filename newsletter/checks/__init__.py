"""Pre-send checks: what would embarrass the editor or hurt the sender's reputation.

Each finding has a rule id, a severity and, where the content came from the issue file, the
YAML file, line and column it was written at. `newsletter check` prints them; a live send
refuses to go while any error remains; the preview lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from typing import Any, Literal

from newsletter import markdown
from newsletter.errors import InputError, Location, NewsletterError
from newsletter.issue import IssueFile
from newsletter.render import Personalized, RenderedIssue
from newsletter.settings import Settings

Severity = Literal["error", "warning"]

# Every rule: its id, severity and what it looks for (the README lists these).
RULES: dict[str, tuple[Severity, str]] = {
    "size.clipped": ("error", "HTML over 102 KB: Gmail clips it and hides the unsubscribe link"),
    "size.near-clip": ("warning", "HTML over 90 KB, close to Gmail's clipping"),
    "translation.missing": ("error", "a translation with items still to translate"),
    "translation.stale": ("warning", "a translated item whose source text changed since"),
    "translation.orphan": ("warning", "a translated item the source no longer has"),
    "theme.strings": ("warning", "theme words missing in the edition's language (English shown)"),
    "client.unsupported": (
        "warning",
        "an HTML or CSS feature a target client does not support (caniemail data)",
    ),
    "client.unknown": ("error", "a NEWSLETTER_TARGET_CLIENTS name the caniemail data lacks"),
    "image.alt": ("error", "an image without alt text"),
    "image.https": ("error", "an image not loaded from an absolute https URL"),
    "image.width": ("warning", "an image without a width"),
    "image.height": ("warning", "an image without a height (its cell collapses while blocked)"),
    "image.media-url": (
        "warning",
        "local images published at a NEWSLETTER_MEDIA_URL that is not https",
    ),
    "image.bytes": ("warning", "a prepared local image over 200 KB"),
    "image.total": ("warning", "the prepared local images together over 1 MB"),
    "image.small": ("warning", "a local image narrower than it is shown (it will look blurred)"),
    "link.empty": ("error", "a link that is empty or relative"),
    "link.insecure": ("warning", "a link that is not https"),
    "link.base-url": ("warning", "links to the web service that are not https (a local setup)"),
    "link.mailto": ("error", "a mailto: link with a malformed address"),
    "link.placeholder": ("error", "a placeholder left unresolved"),
    "link.duplicate-text": ("warning", "the same link text pointing to different URLs"),
    "link.broken": ("error", "a link that does not answer, or answers with an error (--links)"),
    "date.mismatch": (
        "warning",
        "a month or year in the subject, preheader, intro or closing that is not the issue's",
    ),
    "subject.length": ("warning", "a subject over 70 characters"),
    "subject.shouting": ("warning", "a subject in capitals"),
    "subject.punctuation": ("warning", "spam-trigger punctuation in the subject"),
    "preheader.length": ("warning", "a preheader shorter than 40 or longer than 110 characters"),
    "unsubscribe.link": ("error", "no unsubscribe link in the body"),
    "unsubscribe.headers": ("error", "List-Unsubscribe or List-Unsubscribe-Post missing"),
    "text.empty": ("error", "the plain-text part is missing or empty"),
    "text.article": ("error", "an article missing from the plain-text part"),
    "dkim.signature": ("error", "the DKIM signature does not verify"),
    "dkim.headers": ("error", "the DKIM signature does not cover a required header"),
    "dkim.algorithm": (
        "warning",
        "an Ed25519 key, which the largest mailbox providers do not verify",
    ),
    "spam.score": (
        "warning",
        "SpamAssassin scores the message 2 or more (--spam); 5 or more is an error",
    ),
}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = str(Location(self.file, self.line, self.column)) + ": " if self.file else ""
        return f"{where}{self.severity} {self.rule}: {self.message}"


@dataclass
class Report:
    findings: list[Finding]
    spam: dict[str, Any] | None = None

    @property
    def errors(self) -> int:
        return sum(f.severity == "error" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.severity == "warning" for f in self.findings)

    def failed(self, strict: bool = False) -> bool:
        return self.errors > 0 or (strict and self.warnings > 0)

    def as_json(self, file: str) -> dict[str, Any]:
        return {
            "file": file,
            "errors": self.errors,
            "warnings": self.warnings,
            "findings": [asdict(f) for f in self.findings],
            "spam": self.spam,
        }


def schema_findings(error: NewsletterError, file: str) -> list[Finding]:
    """An issue that does not load, as findings: each problem at its own place."""
    if isinstance(error, InputError):
        return [
            Finding(
                "schema",
                "error",
                f"{p.path}: {p.message}" if p.path else p.message,
                p.location.file,
                p.location.line,
                p.location.column,
            )
            for p in error.problems
        ]
    where = error.location
    return [
        Finding(
            "schema",
            "error",
            error.message,
            where.file if where else file,
            where.line if where else None,
            where.column if where else None,
        )
    ]


class LinksAndImages(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.images: list[dict[str, str | None]] = []
        self._open: list[list[str]] = []
        self._href: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self._href.append(values.get("href") or "")
            self._open.append([])
        elif tag == "img":
            # An image inside a link is its text: it needs words. Elsewhere alt="" marks a
            # decoration (a logo beside the name it shows), which screen readers skip.
            values["linked"] = "yes" if self._open else None
            self.images.append(values)
            if self._open and values.get("alt"):
                self._open[-1].append(str(values["alt"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            text = " ".join("".join(self._open.pop()).split())
            self.links.append((self._href.pop(), text))

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].append(data)


class Places:
    """Where a URL or a piece of content was written in the issue file."""

    def __init__(self, issue_file: IssueFile) -> None:
        self.issue_file = issue_file
        self.urls: dict[str, tuple[str | int, ...]] = {}
        issue = issue_file.issue
        for key in ("intro", "closing"):
            for href in markdown.links(getattr(issue, key)):
                self.urls.setdefault(href, (key,))
        for s, section in enumerate(issue.sections):
            for a, article in enumerate(section.articles):
                base = ("sections", s, "articles", a)
                self.urls.setdefault(article.link, (*base, "link"))
                if article.image:
                    self.urls.setdefault(article.image.src, (*base, "image", "src"))
                for href in markdown.links(article.summary):
                    self.urls.setdefault(href, (*base, "summary"))

    def at(self, *path: str | int) -> dict[str, Any]:
        where = self.issue_file.location(*path)
        return {"file": where.file, "line": where.line, "column": where.column}

    def of_url(self, url: str) -> dict[str, Any]:
        path = self.urls.get(url)
        return self.at(*path) if path else {"file": self.issue_file.path}


@dataclass
class Subject:
    """What every rule group looks at: the issue, its render, a sample copy and message."""

    issue_file: IssueFile
    rendered: RenderedIssue
    settings: Settings
    places: Places
    copy: Personalized
    parsed: LinksAndImages
    message: bytes
    findings: list[Finding]

    def add(self, rule: str, text: str, where: dict[str, Any] | None = None) -> None:
        self.findings.append(
            Finding(rule, RULES[rule][0], text, **(where or {"file": self.issue_file.path}))
        )


def check_issue(
    issue_file: IssueFile,
    rendered: RenderedIssue,
    settings: Settings,
    *,
    message: bytes | None = None,
) -> Report:
    """Every rule that needs no network. message: the built sample message, if at hand."""
    from newsletter.checks import (
        clients,
        dates,
        dkim,
        images,
        links,
        size,
        subject,
        text,
        translations,
        unsubscribe,
    )
    from newsletter.render.versions import sample_values
    from newsletter.sending.message import sample_message

    findings: list[Finding] = []
    copy = rendered.personalize(sample_values(settings, rendered.slug, rendered.edition))
    parsed = LinksAndImages()
    parsed.feed(copy.html)
    if message is None:
        try:
            message = sample_message(rendered, settings)
        except NewsletterError as exc:  # a DKIM key that cannot sign: report it, check the rest
            findings.append(
                Finding("dkim.signature", "error", exc.message, str(settings.dkim_key_file))
            )
            message = sample_message(rendered, settings.model_copy(update={"dkim_key_file": None}))
    subject_ = Subject(
        issue_file, rendered, settings, Places(issue_file), copy, parsed, message, findings
    )
    groups: list[Callable[[Subject], None]] = [
        size.check,
        images.check,
        links.check,
        subject.check,
        unsubscribe.check,
        text.check,
        dkim.check,
        translations.check,
        dates.check,
        clients.check,
    ]
    for group in groups:
        group(subject_)
    return Report(findings)


class ChecksFailed(NewsletterError):
    """Raised by a live send; its lines are the errors, each at its own place."""

    def __init__(self, report: Report, file: str) -> None:
        self.report = report
        super().__init__(
            f"the checks found {report.errors} error(s); nothing was sent", Location(file)
        )

    def lines(self) -> list[str]:
        return [str(f) for f in self.report.findings if f.severity == "error"] + [
            f"Error: {self.message}"
        ]
