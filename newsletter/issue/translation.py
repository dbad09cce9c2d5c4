"""Translations: issues/SLUG.LANG.yaml beside issues/SLUG.yaml, one file per language.

A translation holds the translated words of the issue in the same structure, item by item:
the issue's own texts (subject, preheader, intro, closing), each section (its title) and
each article (title, summary, button, image alt text). Links and images are the source's
unless the translation overrides them. Every item records `source`, a short hash of the
source text it was translated from: when the source changes, the item is stale.

Items are matched by their place: the second article of the first section translates the
second article of the first section.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from newsletter import fields, languages, yamlfile
from newsletter.errors import InputError, Location, NewsletterError, Problem
from newsletter.issue import IssueFile, split_name
from newsletter.issue.model import Article, Issue, Markdown, Section, Strict, Text

_HASH = re.compile(r"[0-9a-f]{8}")


def _source_hash(value: str) -> str:
    if not _HASH.fullmatch(value):
        raise ValueError(
            f"'{value}' is not the hash of a source text (8 letters and digits, as "
            "`newsletter translate` writes them)"
        )
    return value


SourceHash = Annotated[str, AfterValidator(_source_hash)]


class TranslatedImage(Strict):
    alt: Text | None = Field(default=None, max_length=250)
    src: fields.ImageSource | None = None


class TranslatedArticle(Strict):
    source: SourceHash
    todo: bool = False
    title: Text | None = Field(default=None, max_length=200)
    summary: Markdown | None = None
    cta: Text | None = Field(default=None, max_length=40)
    link: fields.AbsoluteURL | None = None
    image: TranslatedImage | None = None


class TranslatedSection(Strict):
    source: SourceHash
    todo: bool = False
    title: Text | None = Field(default=None, max_length=120)
    articles: list[TranslatedArticle] = Field(default_factory=list)


class Translation(Strict):
    language: fields.Language
    source: SourceHash
    todo: bool = False
    subject: fields.HeaderText | None = Field(default=None, max_length=150)
    preheader: Text | None = Field(default=None, max_length=200)
    name_fallback: Text | None = Field(default=None, max_length=60)
    intro: Markdown | None = None
    closing: Markdown | None = None
    sections: list[TranslatedSection] = Field(default_factory=list)


def _digest(*texts: str | None) -> str:
    data = json.dumps([t or "" for t in texts], ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:8]


def issue_hash(issue: Issue) -> str:
    """The hash of the issue's own texts, as a translation records it."""
    return _digest(issue.subject, issue.preheader, issue.name_fallback, issue.intro, issue.closing)


def section_hash(section: Section) -> str:
    return _digest(section.title)


def article_hash(article: Article) -> str:
    alt = article.image.alt if article.image else None
    return _digest(article.title, article.summary, article.cta, alt)


@dataclass(frozen=True)
class TranslationFile:
    path: str
    language: str
    translation: Translation
    doc: yamlfile.YamlDocument

    def location(self, *path: str | int) -> Location:
        return self.doc.location(path)


def translation_path(issue_file: IssueFile, language: str) -> Path:
    return Path(issue_file.path).with_name(f"{issue_file.slug}.{language}.yaml")


def translations_of(issue_file: IssueFile) -> list[Path]:
    """The translation files beside an issue, by language."""
    folder = Path(issue_file.path).parent
    found = []
    for path in sorted(folder.glob(f"{issue_file.slug}.*.yaml")):
        slug, language = split_name(path)
        if slug == issue_file.slug and language is not None:
            found.append(path)
    return found


def _source_of(issue: Issue, where: tuple[str | int, ...]) -> str:
    """Which source item a translated key belongs to, in the editor's words."""
    if len(where) >= 2 and where[0] == "sections" and isinstance(where[1], int):
        sections = issue.sections
        if where[1] >= len(sections):
            return "a section the source does not have"
        section = sections[where[1]]
        if len(where) >= 4 and where[2] == "articles" and isinstance(where[3], int):
            if where[3] >= len(section.articles):
                return f"an article the source's section '{section.title}' does not have"
            return f"translates the article '{_short(section.articles[where[3]].title)}'"
        return f"translates the section '{_short(section.title)}'"
    return "translates the issue's own texts"


def _short(text: str, size: int = 48) -> str:
    return text if len(text) <= size else text[: size - 1].rstrip() + "…"


def parse_translation(text: str, file: str, issue_file: IssueFile) -> TranslationFile:
    """Validate a translation; every problem has its file, line and column and says which
    source item it belongs to."""
    slug, language = split_name(file)
    if language is None or slug != issue_file.slug:
        raise NewsletterError(
            f"a translation of {Path(issue_file.path).name} is named "
            f"{issue_file.slug}.LANG.yaml, such as {issue_file.slug}.es.yaml",
            Location(file),
        )
    doc = yamlfile.parse_yaml(text, file, what="translation file")
    try:
        translation = yamlfile.validate(Translation, doc, what="a translation file")
    except InputError as exc:
        problems = []
        for problem in exc.problems:
            where = _path_of(problem.path)
            problems.append(
                Problem(
                    problem.location,
                    problem.path,
                    f"{problem.message} ({_source_of(issue_file.issue, where)})",
                )
            )
        raise InputError(problems) from None
    if languages.canonical(translation.language) != language:
        raise InputError(
            [
                Problem(
                    doc.location(("language",)),
                    "language",
                    f"the file is named for '{language}' but says '{translation.language}'",
                )
            ]
        )
    if language == languages.canonical(issue_file.issue.language):
        raise NewsletterError(
            f"{Path(issue_file.path).name} is already in '{language}'", Location(file)
        )
    missing_images = []
    for s, section in enumerate(translation.sections):
        for a, article in enumerate(section.articles):
            src = article.image.src if article.image else None
            if src and fields.is_local(src) and not (Path(file).parent / src).is_file():
                where = ("sections", s, "articles", a, "image", "src")
                missing_images.append(
                    Problem(
                        doc.location(where),
                        yamlfile.format_path(where),
                        f"no image file {src} beside the translation",
                    )
                )
    if missing_images:
        raise InputError(missing_images)
    return TranslationFile(file, language, translation, doc)


def _path_of(dotted: str) -> tuple[str | int, ...]:
    """sections[1].articles[0].title -> ('sections', 1, 'articles', 0, 'title')."""
    out: list[str | int] = []
    for name, index in re.findall(r"([A-Za-z_]+)|\[(\d+)\]", dotted):
        out.append(int(index) if index else name)
    return tuple(out)


def load_translation(issue_file: IssueFile, language: str) -> TranslationFile:
    path = translation_path(issue_file, language)
    if not path.is_file():
        raise NewsletterError(
            f"no {language} translation of {Path(issue_file.path).name} ({path}); "
            f"`newsletter translate {issue_file.path} --lang {language}` starts one"
        )
    return parse_translation(
        yamlfile.read_text(path, what="translation file"), str(path), issue_file
    )


# --- Freshness -----------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """Something a translation lacks or has too much of, at its place."""

    kind: str  # missing, stale or orphan
    location: Location
    message: str


def gaps(issue_file: IssueFile, tf: TranslationFile) -> list[Gap]:
    """What the translation is missing, what went stale since, and what it translates
    that the source no longer has."""
    issue, t = issue_file.issue, tf.translation
    found: list[Gap] = []

    def check(
        where: tuple[str | int, ...],
        item: Any,
        wanted: str,
        needs: list[str],
        what: str,
    ) -> None:
        at = tf.location(*where) if where else tf.location("source")
        lacking = [name for name in needs if getattr(item, name) is None]
        if item.todo or lacking:
            words = f" (no {', '.join(lacking)})" if lacking and not item.todo else ""
            found.append(Gap("missing", at, f"{what} is still to translate{words}"))
        if item.source != wanted:
            found.append(
                Gap(
                    "stale",
                    tf.location(*where, "source") if where else tf.location("source"),
                    f"{what} changed in the source since it was translated; update it and "
                    f"set source: {wanted}",
                )
            )

    needs = ["subject", "preheader", "intro", "closing"]
    if issue.name_fallback:
        needs.append("name_fallback")
    check((), t, issue_hash(issue), needs, "the issue's own text")
    for s, section in enumerate(issue.sections):
        if s >= len(t.sections):
            found.append(
                Gap(
                    "missing",
                    tf.location("sections") if t.sections else tf.location(),
                    f"the section '{_short(section.title)}' is not translated",
                )
            )
            continue
        ts = t.sections[s]
        check(
            ("sections", s),
            ts,
            section_hash(section),
            ["title"],
            f"the section '{_short(section.title)}'",
        )
        for a, article in enumerate(section.articles):
            if a >= len(ts.articles):
                found.append(
                    Gap(
                        "missing",
                        tf.location("sections", s),
                        f"the article '{_short(article.title)}' is not translated",
                    )
                )
                continue
            needs = ["title", "summary"]
            if article.cta:
                needs.append("cta")
            ta = ts.articles[a]
            if article.image is not None and (ta.image is None or ta.image.alt is None):
                needs_alt = True
            else:
                needs_alt = False
            check(
                ("sections", s, "articles", a),
                ta,
                article_hash(article),
                needs,
                f"the article '{_short(article.title)}'",
            )
            if needs_alt and not ta.todo:
                found.append(
                    Gap(
                        "missing",
                        tf.location("sections", s, "articles", a),
                        f"the article '{_short(article.title)}' has no image alt text",
                    )
                )
        for a in range(len(section.articles), len(ts.articles)):
            found.append(
                Gap(
                    "orphan",
                    tf.location("sections", s, "articles", a),
                    "this article translates nothing: the source's section "
                    f"'{_short(section.title)}' has {len(section.articles)} articles",
                )
            )
    for s in range(len(issue.sections), len(t.sections)):
        found.append(
            Gap(
                "orphan",
                tf.location("sections", s),
                f"this section translates nothing: the source has {len(issue.sections)}",
            )
        )
    return found


# --- The edition ------------------------------------------------------------------------


def edition(issue_file: IssueFile, tf: TranslationFile) -> IssueFile:
    """The issue in the translation's language: the translated words where there are
    some, the source's elsewhere (the check reports those), the source's links and images
    unless overridden."""
    issue, t = issue_file.issue, tf.translation

    def pick(value: Any, fallback: Any) -> Any:
        return fallback if value is None else value

    sections = []
    for s, section in enumerate(issue.sections):
        ts = t.sections[s] if s < len(t.sections) else None
        articles = []
        for a, article in enumerate(section.articles):
            ta = ts.articles[a] if ts is not None and a < len(ts.articles) else None
            if ta is None:
                articles.append(article)
                continue
            image = article.image
            if image is not None and ta.image is not None:
                image = image.model_copy(
                    update={
                        "alt": pick(ta.image.alt, image.alt),
                        "src": pick(ta.image.src, image.src),
                    }
                )
            articles.append(
                article.model_copy(
                    update={
                        "title": pick(ta.title, article.title),
                        "summary": pick(ta.summary, article.summary),
                        "cta": pick(ta.cta, article.cta),
                        "link": pick(ta.link, article.link),
                        "image": image,
                    }
                )
            )
        title = pick(ts.title, section.title) if ts is not None else section.title
        sections.append(section.model_copy(update={"title": title, "articles": articles}))
    translated = issue.model_copy(
        update={
            "language": tf.language,
            "subject": pick(t.subject, issue.subject),
            "preheader": pick(t.preheader, issue.preheader),
            "name_fallback": pick(t.name_fallback, issue.name_fallback),
            "intro": pick(t.intro, issue.intro),
            "closing": pick(t.closing, issue.closing),
            "sections": sections,
        }
    )
    return IssueFile(
        path=issue_file.path,
        slug=issue_file.slug,
        issue=translated,
        doc=issue_file.doc,
        edition=tf.language,
        translation=tf,
        gaps=tuple(gaps(issue_file, tf)),
    )


# --- Starting and updating a translation ------------------------------------------------


def _todo_issue(issue: Issue) -> dict[str, Any]:
    item: dict[str, Any] = {"source": issue_hash(issue), "todo": True}
    item |= {"subject": issue.subject, "preheader": issue.preheader}
    if issue.name_fallback:
        item["name_fallback"] = issue.name_fallback
    item |= {"intro": issue.intro, "closing": issue.closing}
    return item


def _todo_article(article: Article) -> dict[str, Any]:
    item: dict[str, Any] = {"source": article_hash(article), "todo": True}
    item |= {"title": article.title, "summary": article.summary}
    if article.cta:
        item["cta"] = article.cta
    if article.image is not None:
        item["image"] = {"alt": article.image.alt}
    return item


def _dump(model: Strict) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True, exclude={"sections", "articles"})


def translation_text(
    issue_file: IssueFile, language: str, existing: TranslationFile | None
) -> tuple[str, int]:
    """The translation file's text: the translated items of existing kept as they are,
    and every item it lacks added with the source's words, marked `todo: true`, for the
    translator to replace. Returns (text, how many items were added)."""
    issue = issue_file.issue
    t = existing.translation if existing else None
    added = 0
    if t is None:
        data: dict[str, Any] = {"language": language, **_todo_issue(issue)}
        added += 1
    else:
        data = {"language": language, **_dump(t)}
    sections = []
    for s, section in enumerate(issue.sections):
        ts = t.sections[s] if t and s < len(t.sections) else None
        if ts is None:
            item: dict[str, Any] = {
                "source": section_hash(section),
                "todo": True,
                "title": section.title,
            }
            added += 1
        else:
            item = _dump(ts)
        articles = []
        for a, article in enumerate(section.articles):
            if ts is not None and a < len(ts.articles):
                articles.append(_dump(ts.articles[a]))
            else:
                articles.append(_todo_article(article))
                added += 1
        if ts is not None:
            articles += [_dump(extra) for extra in ts.articles[len(section.articles) :]]
        item["articles"] = articles
        sections.append(item)
    if t is not None:
        for extra in t.sections[len(issue.sections) :]:
            sections.append({**_dump(extra), "articles": [_dump(a) for a in extra.articles]})
    data["sections"] = sections
    name = Path(issue_file.path).name
    header = (
        f"# The {languages.name(language, 'en')} edition of {name}: replace the words of every\n"
        "# item marked `todo: true`, then remove that line. `source` is the hash of the\n"
        "# source text an item translates; when the source changes, `newsletter check`\n"
        "# says which items are stale. Links and images are the source's unless set here.\n"
    )
    return header + yamlfile.dump(data), added
