"""Use cases on issue files: validate, start, build, check and preview."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter import fields, languages, yamlfile
from newsletter.errors import NewsletterError
from newsletter.files import write_atomically
from newsletter.issue import IssueFile, load_issue, new_issue
from newsletter.render import PersonalValues, RenderedIssue, render_issue
from newsletter.settings import Settings

if TYPE_CHECKING:
    from newsletter.checks import Report


def validate(path: Path | str) -> IssueFile:
    """The issue, loaded and checked against the schema; InputError lists every problem."""
    return load_issue(path)


def new(slug: str, settings: Settings) -> tuple[Path, Path]:
    """Start issues/SLUG.yaml from the newest issue: (created, copied from)."""
    return new_issue(slug, Path(settings.issues_dir))


@dataclass(frozen=True)
class BuildResult:
    folder: Path
    html: Path
    text: Path
    message: Path
    rendered: RenderedIssue


def build(path: Path | str, settings: Settings, out_dir: Path | None = None) -> BuildResult:
    """Render an issue and write DIR/<slug>/index.html, index.txt and message.eml."""
    from newsletter.render.versions import public_version
    from newsletter.sending.message import sample_message

    issue_file = load_issue(path)
    rendered = render_issue(issue_file, settings)
    folder = Path(out_dir if out_dir is not None else settings.build_dir) / rendered.slug
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NewsletterError(f"cannot create the folder {folder}: {exc.strerror}") from None
    public = public_version(issue_file, settings)
    result = BuildResult(
        folder=folder,
        html=folder / "index.html",
        text=folder / "index.txt",
        message=folder / "message.eml",
        rendered=rendered,
    )
    message = sample_message(rendered, settings)
    publish_media(rendered, settings, also=folder / "media")
    try:
        # The web version loads its images from the media folder beside it, so that it
        # opens from disk (or from wherever the folder is copied) with its pictures.
        html = public.html.replace(f"{settings.media_base()}/", "media/")
        write_atomically(result.html, html.encode("utf-8"))
        write_atomically(result.text, public.text.encode("utf-8"))
        write_atomically(result.message, message)
    except OSError as exc:
        raise NewsletterError(f"cannot write into {folder}: {exc.strerror}") from None
    return result


def publish_media(rendered: RenderedIssue, settings: Settings, also: Path | None = None) -> None:
    """Write the issue's prepared local images into NEWSLETTER_MEDIA_DIR (what
    `newsletter serve` publishes under /media/), and into also (beside a build)."""
    from newsletter.media import publish

    for folder in (Path(settings.media_dir), also):
        if folder is None:
            continue
        try:
            for prepared in rendered.media:
                publish(prepared, folder)
        except OSError as exc:
            raise NewsletterError(f"cannot write images into {folder}: {exc.strerror}") from None


def editions(issue_file: IssueFile) -> dict[str, IssueFile]:
    """The issue in every language it has: the source's first, then each translation
    beside it (issues/SLUG.LANG.yaml)."""
    from newsletter.issue.translation import edition, parse_translation, translations_of

    found = {languages.canonical(issue_file.issue.language): issue_file}
    for path in translations_of(issue_file):
        text = yamlfile.read_text(path, what="translation file")
        translation = parse_translation(text, str(path), issue_file)
        found[translation.language] = edition(issue_file, translation)
    return found


def load_edition(path: Path | str, language: str | None) -> IssueFile:
    """The issue in language (its nearest edition: pt-BR, pt, then the source's)."""
    issue_file = load_issue(path)
    if language is None:
        return issue_file
    everything = editions(issue_file)
    source = languages.canonical(issue_file.issue.language)
    return everything[languages.pick(language, everything, source)]


@dataclass(frozen=True)
class Translated:
    path: Path
    created: bool
    added: int  # items added for the translator, marked todo


def translate(path: Path | str, language: str) -> Translated:
    """Start the language's translation of an issue, or add the items it still lacks."""
    from newsletter.issue.translation import (
        load_translation,
        translation_path,
        translation_text,
    )

    issue_file = load_issue(path)
    try:
        language = languages.canonical(fields.language_tag(language))
    except ValueError as exc:
        raise NewsletterError(f"--lang: {exc}") from None
    if language == languages.canonical(issue_file.issue.language):
        raise NewsletterError(f"{issue_file.path} is already in '{language}'")
    target = translation_path(issue_file, language)
    existing = load_translation(issue_file, language) if target.exists() else None
    text, added = translation_text(issue_file, language, existing)
    if existing is None or added:
        try:
            write_atomically(target, text.encode("utf-8"))
        except OSError as exc:
            raise NewsletterError(f"cannot write {target}: {exc.strerror}") from None
    return Translated(target, existing is None, added)


def render_and_check(
    issue_file: IssueFile,
    settings: Settings,
    everything: dict[str, IssueFile] | None = None,
) -> tuple[dict[str, RenderedIssue], Report]:
    """Every edition of the issue (everything, when the caller loaded them already)
    rendered, by language, the source's first, and the findings of every rule on each;
    a finding the same in every edition is said once."""
    from newsletter.checks import check_issue

    everything = everything or editions(issue_file)
    renders = {language: render_issue(each, settings) for language, each in everything.items()}
    report = None
    seen: set[tuple[str, str, str | None, int | None]] = set()
    for language, each in everything.items():
        found = check_issue(each, renders[language], settings)
        if report is None:
            report = found
            seen = {(f.rule, f.message, f.file, f.line) for f in found.findings}
            continue
        for finding in found.findings:
            if (finding.rule, finding.message, finding.file, finding.line) in seen:
                continue
            if finding.file in (None, issue_file.path):
                said = f"the '{language}' edition: {finding.message}"
                finding = dataclasses.replace(finding, message=said)
            report.findings.append(finding)
    assert report is not None
    return renders, report


def check(
    path: Path | str, settings: Settings, *, links: bool = False, spam: bool = False
) -> Report:
    """Every check of an issue and of each of its editions. An issue that does not load
    gives `schema` findings, each at its own place, instead of an exception."""
    from newsletter.checks import Report, schema_findings
    from newsletter.checks.links import check_links, user_agent
    from newsletter.checks.spam import check_spam
    from newsletter.sending.message import sample_message

    try:
        issue_file = load_issue(path)
        renders, report = render_and_check(issue_file, settings)
    except NewsletterError as error:
        return Report(schema_findings(error, str(path)))
    rendered = renders[languages.canonical(issue_file.issue.language)]
    if links:
        report.findings.extend(check_links(issue_file, user_agent=user_agent(settings)))
    if spam:
        message = sample_message(rendered, settings.model_copy(update={"dkim_key_file": None}))
        result, findings = check_spam(message)
        report.spam = result if result is not None else {"installed": False}
        report.findings.extend(findings)
    return report


@dataclass
class PreviewRender:
    """One rebuild of the preview: the edition shown, the values it is shown with, the
    findings of every edition, and the languages there are editions in."""

    rendered: RenderedIssue
    values: PersonalValues
    warnings: list[str] = field(default_factory=list)
    editions: list[str] = field(default_factory=list)
    language: str = ""


def preview(
    path: Path | str, settings: Settings, as_email: str | None = None, language: str | None = None
) -> PreviewRender:
    """Load, render and check the issue and its editions, read afresh from disk; the one
    shown is the edition nearest language, with a subscriber's values (as_email) or
    sample ones."""
    issue_file = load_issue(path)
    renders, report = render_and_check(issue_file, settings)
    source = languages.canonical(issue_file.issue.language)
    chosen = languages.pick(language, renders, source)
    rendered = renders[chosen]
    values = preview_values(settings, rendered.slug, as_email, rendered.edition)
    warnings = [str(f) for f in report.findings]
    return PreviewRender(rendered, values, warnings, list(renders), chosen)


def preview_values(
    settings: Settings, slug: str, as_email: str | None, edition: str | None = None
) -> PersonalValues:
    """The values a preview fills the placeholders with: a subscriber's, or sample data."""
    from newsletter.render.versions import sample_values, view_online_url

    if not as_email:
        return sample_values(settings, slug, edition)
    from newsletter.audience.subscribers import first_name
    from newsletter.services.subscribers import show

    subscriber = show(settings, as_email)
    return PersonalValues(
        email=subscriber.email,
        name=subscriber.name,
        first_name=first_name(subscriber.attributes),
        unsubscribe_url=settings.public_url("unsubscribe", "preview"),
        view_online_url=view_online_url(settings, slug, edition),
    )
