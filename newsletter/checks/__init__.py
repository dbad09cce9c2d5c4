"""Pre-send checks: what would embarrass the editor or hurt the sender's reputation.

Each finding has a rule id, a severity and, where the content came from the issue file, the
YAML file, line and column it was written at. `newsletter check` prints them; a live send
refuses to go while any error remains; the preview lists them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from newsletter import markdown
from newsletter.audience.addresses import normalize_address
from newsletter.errors import InputError, Location, NewsletterError
from newsletter.issue import IssueFile
from newsletter.render import GMAIL_CLIP_BYTES, SIZE_WARNING_BYTES, RenderedIssue
from newsletter.settings import Settings

Severity = Literal["error", "warning"]

# Every rule: its id, severity and what it looks for (the README lists these).
RULES: dict[str, tuple[Severity, str]] = {
    "size.clipped": ("error", "HTML over 102 KB: Gmail clips it and hides the unsubscribe link"),
    "size.near-clip": ("warning", "HTML over 90 KB, close to Gmail's clipping"),
    "image.alt": ("error", "an image without alt text"),
    "image.https": ("error", "an image not loaded from an absolute https URL"),
    "image.width": ("warning", "an image without a width"),
    "link.empty": ("error", "a link that is empty or relative"),
    "link.insecure": ("warning", "a link that is not https"),
    "link.mailto": ("error", "a mailto: link with a malformed address"),
    "link.placeholder": ("error", "a placeholder left unresolved"),
    "link.duplicate-text": ("warning", "the same link text pointing to different URLs"),
    "link.broken": ("error", "a link that does not answer, or answers with an error (--links)"),
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


class _Links(HTMLParser):
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


class _Places:
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


_SPAMMY = re.compile(r"!!|\?\?|!\?|\?!|\$\$|€€|^\W|\W{3,}$")


def check_issue(
    issue_file: IssueFile,
    rendered: RenderedIssue,
    settings: Settings,
    *,
    message: bytes | None = None,
) -> Report:
    """Every rule that needs no network. message: the built sample message, if at hand."""
    from newsletter.build import sample_message, sample_recipient

    findings: list[Finding] = []
    places = _Places(issue_file)

    def add(rule: str, text: str, where: dict[str, Any] | None = None) -> None:
        findings.append(Finding(rule, RULES[rule][0], text, **(where or {"file": issue_file.path})))

    issue = issue_file.issue
    size = rendered.html_size
    if size > GMAIL_CLIP_BYTES:
        add(
            "size.clipped",
            f"the HTML is {size / 1024:.0f} KB; Gmail clips at 102 KB and hides the "
            "unsubscribe link",
        )
    elif size > SIZE_WARNING_BYTES:
        add("size.near-clip", f"the HTML is {size / 1024:.0f} KB, close to Gmail's 102 KB clipping")

    copy = rendered.personalize(sample_recipient(settings, rendered.slug))
    parsed = _Links()
    parsed.feed(copy.html)
    for image in parsed.images:
        src = str(image.get("src") or "")
        where = places.of_url(src)
        if not (image.get("alt") or "").strip():
            add("image.alt", f"the image {src or '(no src)'} has no alt text", where)
        if urlsplit(src).scheme != "https" or not urlsplit(src).netloc:
            add("image.https", f"the image '{src}' is not an absolute https URL", where)
        if not image.get("width"):
            add("image.width", f"the image {src} has no width; clients may show it huge", where)

    texts: dict[str, set[str]] = defaultdict(set)
    for href, text in parsed.links:
        where = places.of_url(href)
        if "NLX" in href or "{{" in href or "%7B%7B" in href.upper() or "}}" in href:
            add("link.placeholder", f"the link '{href}' still holds a placeholder", where)
        elif href.startswith("mailto:"):
            target = href.removeprefix("mailto:").split("?", 1)[0]
            try:
                normalize_address(target)
            except ValueError as exc:
                add("link.mailto", f"'{href}' is not a valid address: {exc}", where)
        elif not href.strip() or not urlsplit(href).scheme or not urlsplit(href).netloc:
            add(
                "link.empty",
                f"the link '{href}' is empty or relative; write the full https:// address",
                where,
            )
        elif urlsplit(href).scheme != "https":
            add("link.insecure", f"the link {href} is not https", where)
        if text:
            texts[text.lower()].add(href)
    for text, hrefs in sorted(texts.items()):
        if len(hrefs) > 1:
            add(
                "link.duplicate-text",
                f"the link text '{text}' points to {len(hrefs)} different URLs; "
                "make each one say where it goes",
            )

    subject = issue.subject
    subject_at = places.at("subject")
    if len(subject) > 70:
        add(
            "subject.length",
            f"the subject is {len(subject)} characters; inboxes cut it near 70",
            subject_at,
        )
    letters = [c for c in subject if c.isalpha()]
    if len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
        add(
            "subject.shouting",
            "the subject is in capitals; spam filters and readers dislike it",
            subject_at,
        )
    if _SPAMMY.search(subject.strip()):
        add(
            "subject.punctuation",
            "the subject has punctuation that spam filters score (!!, ??, $$)",
            subject_at,
        )
    if not 40 <= len(issue.preheader) <= 110:
        add(
            "preheader.length",
            f"the preheader is {len(issue.preheader)} characters; aim for 40 to 110",
            places.at("preheader"),
        )

    if "unsubscribe_url" not in rendered.parts("html").fields():
        add("unsubscribe.link", "the HTML has no unsubscribe link")
    if "unsubscribe_url" not in rendered.parts("text").fields():
        add("unsubscribe.link", "the plain-text part has no unsubscribe link")
    raw = message
    if raw is None:
        try:
            raw = sample_message(rendered, settings)
        except NewsletterError as exc:  # a DKIM key that cannot sign: report it, check the rest
            add("dkim.signature", exc.message, {"file": str(settings.dkim_key_file)})
            raw = sample_message(rendered, settings.model_copy(update={"dkim_key_file": None}))
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    for header in (b"list-unsubscribe:", b"list-unsubscribe-post:"):
        if b"\r\n" + header not in b"\r\n" + head:
            add("unsubscribe.headers", f"the message has no {header.decode()[:-1]} header")

    if not copy.text.strip():
        add("text.empty", "the plain-text part is empty")
    else:
        for s, section in enumerate(issue.sections):
            for a, article in enumerate(section.articles):
                if article.title not in copy.text:
                    add(
                        "text.article",
                        f"'{article.title}' is not in the plain-text part",
                        places.at("sections", s, "articles", a, "title"),
                    )

    if not any(f.rule == "dkim.signature" for f in findings):
        findings.extend(check_dkim(raw, settings))
    return Report(findings)


DKIM_REQUIRED = (
    "from",
    "subject",
    "date",
    "message-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
)


def check_dkim(message: bytes, settings: Settings) -> list[Finding]:
    """Sign the built message with the configured key, verify it, and check h=."""
    if not (settings.dkim_domain and settings.dkim_selector and settings.dkim_key_file):
        return []
    import dkim
    from cryptography.hazmat.primitives import serialization

    from newsletter.sending.message import DkimSigner

    key_path = Path(settings.dkim_key_file)
    where = {"file": str(key_path)}
    try:
        key = key_path.read_bytes()
        public = serialization.load_pem_private_key(key, password=None).public_key()
    except (OSError, ValueError) as exc:
        return [Finding("dkim.signature", "error", f"cannot use the DKIM key: {exc}", **where)]
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    signed = DkimSigner(settings.dkim_domain, settings.dkim_selector, key).sign(message)
    findings = []
    if not dkim.verify(signed, dnsfunc=lambda *_args, **_kw: record):
        findings.append(
            Finding("dkim.signature", "error", "the signed message does not verify", **where)
        )
    header = signed.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    match = re.search(r"\bh=([^;]+)", header.replace("\r\n", "").replace(" ", "").replace("\t", ""))
    covered = {h.strip().lower() for h in (match.group(1).split(":") if match else [])}
    for name in DKIM_REQUIRED:
        if name not in covered:
            findings.append(Finding("dkim.headers", "error", f"h= does not cover {name}", **where))
    return findings


def check_links(
    issue_file: IssueFile, *, timeout: float = 5.0, workers: int = 8, user_agent: str
) -> list[Finding]:
    """Fetch every link written in the issue, concurrently, once each, no retries."""
    import concurrent.futures
    import urllib.error
    import urllib.request

    places = _Places(issue_file)
    urls = [u for u in places.urls if urlsplit(u).scheme in ("http", "https")]

    def probe(url: str) -> str | None:
        for method in ("HEAD", "GET"):
            request = urllib.request.Request(url, method=method, headers={"User-Agent": user_agent})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    return None if response.status < 400 else f"answered {response.status}"
            except urllib.error.HTTPError as exc:
                if method == "HEAD" and exc.code in (405, 501):
                    continue  # some servers refuse HEAD; ask once with GET
                return f"answered {exc.code} {exc.reason}"
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                return f"did not answer ({reason})"
        return None

    findings = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for url, problem in zip(urls, pool.map(probe, urls), strict=True):
            if problem:
                findings.append(
                    Finding("link.broken", "error", f"{url} {problem}", **places.of_url(url))
                )
    return findings


def check_spam(message: bytes) -> tuple[dict[str, Any] | None, list[Finding]]:
    """SpamAssassin's local tests on the built message; None when it is not installed."""
    import shutil
    import subprocess

    if shutil.which("spamassassin") is None:
        return None, []
    done = subprocess.run(
        ["spamassassin", "-t", "-L"], input=message, capture_output=True, timeout=120
    )
    head = done.stdout.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("utf-8", "replace")
    unfolded = re.sub(r"\r?\n[ \t]+", " ", head)
    status = re.search(r"^X-Spam-Status: .*?score=(-?[\d.]+).*?tests=(\S*)", unfolded, re.M)
    if status is None:
        return {"score": None, "rules": [], "error": done.stderr.decode()[-300:]}, []
    score = float(status.group(1))
    rules = [r for r in status.group(2).split(",") if r and r != "none"]
    result = {"score": score, "rules": rules}
    if score >= 2:
        severity: Severity = "error" if score >= 5 else "warning"
        return result, [
            Finding("spam.score", severity, f"SpamAssassin scores it {score} ({', '.join(rules)})")
        ]
    return result, []


def user_agent(settings: Settings) -> str:
    from newsletter import __version__

    return f"newsletter-link-check/{__version__} (+{settings.base_url})"


def run_checks(
    path: Path | str, settings: Settings, *, links: bool = False, spam: bool = False
) -> Report:
    """Load, render and check an issue; InputError etc. propagate for invalid issues."""
    from newsletter.build import sample_message
    from newsletter.issue import load_issue
    from newsletter.render import render_issue

    issue_file = load_issue(path)
    rendered = render_issue(issue_file, settings)
    report = check_issue(issue_file, rendered, settings)
    message = sample_message(rendered, settings.model_copy(update={"dkim_key_file": None}))
    if links:
        report.findings.extend(check_links(issue_file, user_agent=user_agent(settings)))
    if spam:
        result, findings = check_spam(message)
        report.spam = result if result is not None else {"installed": False}
        report.findings.extend(findings)
    return report


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
