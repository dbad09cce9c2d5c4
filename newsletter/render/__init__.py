"""Render an issue once into HTML and text with per-recipient placeholders.

    issue --Jinja--> MJML --mjml-python--> HTML --premailer--> inlined HTML
    issue --Jinja--> plain text

Per recipient, only the placeholders are filled (see personalize.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import yaml
from markupsafe import Markup, escape

from newsletter import languages, markdown
from newsletter.errors import Location, NewsletterError, RenderError, TemplateError
from newsletter.fields import is_local
from newsletter.issue import Issue, IssueFile
from newsletter.media import Prepared, prepare
from newsletter.render import engine
from newsletter.render.personalize import FIELDS, PersonalValues, Placeholders, Spliced, values_for
from newsletter.settings import Settings

__all__ = [
    "FIELDS",
    "GMAIL_CLIP_BYTES",
    "SIZE_WARNING_BYTES",
    "PersonalValues",
    "Personalized",
    "RenderedIssue",
    "render_issue",
    "render_mjml",
]

# Zero-width filler after the preheader stops inbox previews from pulling in body text.
PREHEADER_FILLER = "&#847;&zwnj;&nbsp;" * 90
GMAIL_CLIP_BYTES = 102 * 1024
SIZE_WARNING_BYTES = 90 * 1024


@dataclass(frozen=True)
class Personalized:
    """One recipient's copy."""

    html: str
    text: str


@dataclass(frozen=True)
class RenderedIssue:
    """An issue rendered once; `personalize` fills one recipient's values cheaply."""

    slug: str
    issue_date: dt.date
    subject: str
    preheader: str
    language: str
    name_fallback: str
    html: str
    text: str
    content_hash: str
    _html: Spliced = field(repr=False)
    _text: Spliced = field(repr=False)
    placeholder_nonce: str = ""
    # Local images, prepared; published by whoever writes or sends the issue (the frozen
    # form keeps only their names, in the HTML).
    media: tuple[Prepared, ...] = field(default=(), repr=False, compare=False)
    # Theme strings the language has no word for, shown in English (the check warns).
    missing_strings: tuple[str, ...] = field(default=(), repr=False, compare=False)
    # The language of a translated edition; None for the issue as written.
    edition: str | None = None
    # The theme's greeting in the edition's language, with a {name} and without one.
    greetings: tuple[str, str] = ("", "")

    def freeze(self) -> str:
        """Everything a campaign needs to send this render again, byte for byte, as JSON."""
        return json.dumps(
            {
                "slug": self.slug,
                "issue_date": self.issue_date.isoformat(),
                "subject": self.subject,
                "preheader": self.preheader,
                "language": self.language,
                "name_fallback": self.name_fallback,
                "html": self.html,
                "text": self.text,
                "content_hash": self.content_hash,
                "placeholder_nonce": self.placeholder_nonce,
                "edition": self.edition,
                "greetings": list(self.greetings),
            },
            ensure_ascii=False,
            sort_keys=True,
        )

    @classmethod
    def thaw(cls, frozen: str) -> RenderedIssue:
        """A render frozen by freeze(), checked against its own content hash."""
        data = json.loads(frozen)
        placeholders = Placeholders("", nonce=data["placeholder_nonce"])
        thawed = cls(
            slug=data["slug"],
            issue_date=dt.date.fromisoformat(data["issue_date"]),
            subject=data["subject"],
            preheader=data["preheader"],
            language=data["language"],
            name_fallback=data["name_fallback"],
            html=data["html"],
            text=data["text"],
            content_hash=data["content_hash"],
            _html=Spliced.split(data["html"], placeholders),
            _text=Spliced.split(data["text"], placeholders),
            placeholder_nonce=data["placeholder_nonce"],
            edition=data.get("edition"),
            greetings=_pair(data.get("greetings")),
        )
        if _content_hash(thawed.subject, thawed.preheader, thawed.html, thawed.text) != (
            thawed.content_hash
        ):
            raise RenderError("the campaign's frozen issue does not match its content hash")
        return thawed

    @property
    def html_size(self) -> int:
        """Bytes of HTML as sent (placeholders count roughly as their values would)."""
        return len(self.html.encode("utf-8"))

    def parts(self, kind: str) -> Spliced:
        """The html or text document split at its placeholders, for encoders that splice."""
        return self._html if kind == "html" else self._text

    def values(self, recipient: PersonalValues, *, for_html: bool) -> tuple[str, ...]:
        """The recipient's values, in FIELDS order, for this render."""
        return values_for(
            recipient, self.name_fallback, for_html=for_html, greetings=self.greetings
        )

    def personalize(self, recipient: PersonalValues) -> Personalized:
        return Personalized(
            html=self._html.fill(self.values(recipient, for_html=True)),
            text=self._text.fill(self.values(recipient, for_html=False)),
        )


# The editor changes theme.yaml (or a strings file) while the preview runs: the cache is
# keyed on the file's modification time and size, so an edit is read at the next render.
_theme_files: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def _theme_file(path: Path, what: str) -> dict[str, Any]:
    """A YAML mapping of the theme's, or {} when the file does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _theme_files.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{what} is not valid YAML: {exc}", Location(str(path))) from None
    mapping = data if isinstance(data, dict) else {}
    _theme_files[path] = (stamp, mapping)
    return mapping


# The themes that ship with the package: an installed tool always has the default one.
PACKAGED_THEMES = Path(__file__).resolve().parent.parent / "themes"


def theme_root(templates_dir: Path, template: str) -> Path:
    """The folder holding the theme: the project's templates folder when the theme is
    there (an editor's own, or a copy to change), the package's otherwise."""
    if not (templates_dir / template).is_dir() and (PACKAGED_THEMES / template).is_dir():
        return PACKAGED_THEMES
    return templates_dir


def theme_settings(settings: Settings, template: str) -> tuple[dict[str, Any], Path]:
    """A theme's theme.yaml, and its email template (for the checks that name its lines)."""
    root = theme_root(Path(settings.templates_dir), template)
    return _theme(root, template), root / template / "issue.mjml.j2"


def _theme(templates_dir: Path, template: str) -> dict[str, Any]:
    return _theme_file(templates_dir / template / "theme.yaml", "theme file")


def theme_strings(
    templates_dir: Path, template: str, language: str
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The theme's words in language (strings/LANG.yaml, nearest first: pt-BR, pt), each
    missing one in English; and the keys that fell back to English."""

    def read(path: Path) -> dict[str, Any]:
        return _theme_file(path, "strings file")

    try:
        return languages.catalog(templates_dir / template / "strings", language, read)
    except NewsletterError as exc:
        raise TemplateError(exc.message, exc.location) from None


def _sayer(catalog: dict[str, str], *, html: bool) -> Any:
    """say(key, **values): the theme's string for key with {name}-style values filled in,
    escaped for HTML when html (the values too, unless they are markup already)."""

    def say(key: str, **values: object) -> str:
        if key not in catalog:
            raise jinja2.exceptions.UndefinedError(f"no string '{key}' in the theme's strings")
        if not html:
            text = catalog[key]
            for name, value in values.items():
                text = text.replace(f"{{{name}}}", str(value))
            return text
        out = escape(catalog[key])
        for name, value in values.items():
            out = out.replace(f"{{{name}}}", escape(value))
        return Markup(out)

    return say


@dataclass(frozen=True)
class _Job:
    issue: Issue
    templates_dir: Path
    placeholders: Placeholders
    context: dict[str, Any]
    media: tuple[Prepared, ...] = ()
    strings: dict[str, str] = field(default_factory=dict)
    missing_strings: tuple[str, ...] = ()

    @property
    def name_fallback(self) -> str:
        return self.issue.name_fallback or self.strings.get("reader", "reader")

    @property
    def greetings(self) -> tuple[str, str]:
        """The greeting with a first name, and without one: the theme's words for
        nobody ("Hello,"), or the issue's name_fallback when it sets one ("Hello friend,")."""
        named = self.strings.get("hello", "")
        plain = self.strings.get("hello_plain", "")
        if self.issue.name_fallback and "{name}" in named:
            plain = named.replace("{name}", self.issue.name_fallback)
        return named, plain

    def path(self, kind: str) -> tuple[str, str]:
        """(template name, its path) for kind 'mjml' or 'txt'."""
        name = f"{self.issue.template}/issue.{kind}.j2"
        return name, str(self.templates_dir / name)


def _prepare(issue_file: IssueFile, settings: Settings, *, web: bool = False) -> _Job:
    issue = issue_file.issue
    templates_dir = theme_root(Path(settings.templates_dir), issue.template)
    if not (templates_dir / issue.template).is_dir():
        raise TemplateError(
            f"template '{issue.template}' not found in {templates_dir}/",
            Location(issue_file.path),
        )
    placeholders = Placeholders(issue.model_dump_json())
    theme = _theme(templates_dir, issue.template)
    images, media = _images(issue_file, settings, theme)
    logo, logo_media = _logo(templates_dir, issue.template, theme, settings)
    strings, missing = theme_strings(templates_dir, issue.template, issue.language)
    sections = [
        {
            "title": section.title,
            "articles": [
                {
                    "title": a.title,
                    "link": a.link,
                    "image": images.get(id(a.image)),
                    "cta": a.cta or strings.get("read_more", "Read more"),
                    # Rendered from Markdown with raw HTML off, so already escaped.
                    "summary_html": Markup(markdown.to_html(a.summary)),
                    "summary_text": markdown.to_text(a.summary),
                }
                for a in section.articles
            ],
        }
        for section in issue.sections
    ]
    context: dict[str, Any] = {
        "issue": issue,
        "theme": theme,
        "masthead": settings.from_name,
        "site": urlsplit(settings.base_url).netloc,
        "recipient": placeholders.recipient(),
        "links": placeholders.links(),
        "sections": sections,
        "logo": logo,
        "lang": issue.language,
        "dir": languages.direction(issue.language),
        "month": languages.month(issue.date, issue.language),
        "day": languages.long_date(issue.date, issue.language),
        # The web version (build, archive): for everyone, so no greeting and no
        # subscriber's footer, but the issue's date and a way to subscribe.
        "web": web,
        "public": {
            "signup": settings.public_url("signup") + f"?lang={issue.language}",
            "archive": settings.public_url("archive") + "/",
        },
        "postal_address": settings.postal_address,
        "contact": settings.reply_to or settings.from_address,
    }
    media_all = tuple(media + logo_media)
    return _Job(issue, templates_dir, placeholders, context, media_all, strings, missing)


# Where the theme does not say: the widest an image may be shown beside the text, and
# across the card (600 pixels less the card's padding).
SIDE_WIDTH = 200
FULL_WIDTH = 536


def _images(
    issue_file: IssueFile, settings: Settings, theme: dict[str, Any]
) -> tuple[dict[int, dict[str, Any]], list[Prepared]]:
    """Each article image as the template sees it: its layout and its display width (the
    issue's, within the layout's maximum in the theme), with a pixel height whenever it is
    known. A local one is prepared for that width and shown from where it is published."""
    widest = {
        "side": int(theme.get("image_max_width", SIDE_WIDTH)),
        "full": int(theme.get("full_image_width", FULL_WIDTH)),
    }
    images: dict[int, dict[str, Any]] = {}
    media: list[Prepared] = []
    folder = Path(issue_file.path).parent
    for article in issue_file.issue.articles():
        image = article.image
        if image is None:
            continue
        width = min(image.width or widest[image.layout], widest[image.layout])
        height = None
        if image.height is not None:
            height = round(image.height * width / (image.width or width))
        shown: dict[str, Any] = {
            "src": image.src,
            "alt": image.alt,
            "layout": image.layout,
            "width": width,
            "height": height,
        }
        if is_local(image.src):
            shown.update(_local(prepare(folder / image.src, width), settings, media))
        images[id(image)] = shown
    return images, media


def _local(prepared: Prepared, settings: Settings, media: list[Prepared]) -> dict[str, Any]:
    """Where a prepared image is shown from, and the size it is shown at."""
    media.append(prepared)
    width = min(prepared.display_width, prepared.width)
    return {
        "src": f"{settings.media_base()}/{prepared.name}",
        "width": width,
        "height": max(1, round(width * prepared.height / prepared.width)),
    }


def _logo(
    templates_dir: Path, template: str, theme: dict[str, Any], settings: Settings
) -> tuple[dict[str, Any] | None, list[Prepared]]:
    """The theme's masthead logo (theme.yaml `logo`, a file in the theme's folder),
    prepared like an article image."""
    name = theme.get("logo")
    if not name:
        return None, []
    folder = (templates_dir / template).resolve()
    path = (folder / str(name)).resolve()
    where = Location(str(folder / "theme.yaml"))
    if folder not in path.parents:
        raise TemplateError(f"the logo '{name}' is not a file in the theme's folder", where)
    try:
        width = int(theme.get("logo_width", 48))
        prepared = prepare(path, width)
    except (TypeError, ValueError):
        raise TemplateError("logo_width is not a number of pixels", where) from None
    except NewsletterError as exc:
        raise TemplateError(f"the logo: {exc}", where) from None
    media: list[Prepared] = []
    return _local(prepared, settings, media), media


def _mjml_source(job: _Job) -> str:
    return engine.render_template(
        job.templates_dir,
        job.path("mjml")[0],
        {
            **job.context,
            "say": _sayer(job.strings, html=True),
            "intro": Markup(markdown.to_html(job.issue.intro)),
            "closing": Markup(markdown.to_html(job.issue.closing)),
            "preheader_filler": Markup(PREHEADER_FILLER),
        },
    )


def render_mjml(issue_file: IssueFile, settings: Settings) -> str:
    """The MJML the theme produces for an issue, before compiling (for debugging, benches)."""
    return _mjml_source(_prepare(issue_file, settings))


def render_issue(issue_file: IssueFile, settings: Settings, *, web: bool = False) -> RenderedIssue:
    """Render a validated issue with the theme it names: the email, or (web) the web
    version that the archive and a build show everyone."""
    job = _prepare(issue_file, settings, web=web)
    issue = job.issue
    mjml_path = job.path("mjml")[1]
    mjml_source = _mjml_source(job)
    compiled = engine.compile_mjml(mjml_source, mjml_path)
    html = engine.inline_css(compiled)
    engine.check_html(html, compiled, mjml_path)

    text_name, text_path = job.path("txt")
    text = engine.render_template(
        job.templates_dir,
        text_name,
        {
            **job.context,
            "say": _sayer(job.strings, html=False),
            "intro": markdown.to_text(issue.intro),
            "closing": markdown.to_text(issue.closing),
        },
    )
    text = "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"

    html_parts = Spliced.split(html, job.placeholders)
    text_parts = Spliced.split(text, job.placeholders)
    for parts, where in ((html_parts, mjml_path), (text_parts, text_path)):
        if "unsubscribe_url" not in parts.fields() and not web:
            raise RenderError(
                "the template has no unsubscribe link ({{ links.unsubscribe }})", Location(where)
            )

    return RenderedIssue(
        slug=issue_file.slug,
        issue_date=issue.date,
        subject=issue.subject,
        preheader=issue.preheader,
        language=issue.language,
        name_fallback=job.name_fallback,
        html=html,
        text=text,
        content_hash=_content_hash(issue.subject, issue.preheader, html, text),
        _html=html_parts,
        _text=text_parts,
        placeholder_nonce=job.placeholders.nonce,
        media=job.media,
        missing_strings=job.missing_strings,
        edition=issue_file.edition,
        greetings=job.greetings,
    )


def _pair(value: object) -> tuple[str, str]:
    """The two greetings of a frozen render (none in campaigns frozen before them)."""
    if isinstance(value, list) and len(value) == 2:
        return str(value[0]), str(value[1])
    return "", ""


def _content_hash(*pieces: str) -> str:
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def render_confirmation(
    settings: Settings, *, link: str, expires: dt.date, language: str | None
) -> Personalized:
    """The double opt-in email, rendered with the default theme (MJML, inlined) in the
    language of the page the signup came from, with its button and its expiry."""
    words = languages.words(language)
    templates_dir = theme_root(Path(settings.templates_dir), "default")
    name = "default/confirm.mjml.j2"
    context = {
        "theme": _theme(templates_dir, "default"),
        "masthead": settings.from_name,
        "say": words,
        "lang": words.language,
        "dir": words.direction,
        "link": link,
        "expires": languages.long_date(expires, words.language),
        "postal_address": settings.postal_address,
        "contact": settings.reply_to or settings.from_address,
    }
    source = engine.render_template(templates_dir, name, context)
    compiled = engine.compile_mjml(source, str(templates_dir / name))
    text = "\n\n".join(
        [
            words("confirm_mail_intro", site=settings.from_name),
            f"{words('confirm_mail_action')}\n{link}",
            words("confirm_mail_expires", date=context["expires"]),
            words("confirm_mail_ignore"),
        ]
    )
    return Personalized(html=engine.inline_css(compiled), text=text + "\n")
