"""Issues: the YAML files editors write, and the schema they follow."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter import fields, yamlfile
from newsletter.errors import InputError, Location, NewsletterError, Problem
from newsletter.issue.model import Article, Image, Issue, Section

__all__ = [
    "Article",
    "Image",
    "Issue",
    "IssueFile",
    "Section",
    "load_issue",
    "new_issue",
    "parse_issue",
]


@dataclass(frozen=True)
class IssueFile:
    """A validated issue with the name it is known by (the file's stem). An edition in
    another language keeps the source's path and slug, and names its language and the
    translation it was made from."""

    path: str
    slug: str
    issue: Issue
    doc: yamlfile.YamlDocument | None = None
    edition: str | None = None
    translation: Any = None  # translation.TranslationFile, for an edition
    # What the translation lacks or has too much of (translation.Gap), for the check.
    gaps: tuple[Any, ...] = ()

    def location(self, *path: str | int) -> Location:
        """Where a key of the issue stands in its file, for errors found after loading."""
        if self.translation is not None and tuple(path) in self.translation.doc.values:
            return Location(self.translation.path, *self.translation.doc.values[tuple(path)])
        if self.doc is None:
            return Location(self.path)
        return self.doc.location(path)


_TRANSLATION_NAME = re.compile(
    r"(?P<slug>[A-Za-z0-9][A-Za-z0-9_-]{0,63})\.(?P<lang>[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*)"
)


def split_name(path: Path | str) -> tuple[str, str | None]:
    """(slug, language) of an issue file's name: 2021-05.es.yaml is ('2021-05', 'es');
    a source issue's has no language."""
    from newsletter.languages import canonical

    stem = Path(path).stem
    match = _TRANSLATION_NAME.fullmatch(stem)
    if match:
        return match["slug"], canonical(match["lang"])
    return stem, None


def source_issues(folder: Path) -> list[Path]:
    """The issues in a folder, not their translations, by name."""
    return [p for p in sorted(folder.glob("*.yaml")) if split_name(p)[1] is None]


def parse_issue(text: str, file: str) -> IssueFile:
    """Validate issue YAML text; every problem carries file, line and column."""
    slug, language = split_name(file)
    if language is not None:
        raise NewsletterError(
            f"this is the '{language}' translation of {slug}.yaml: name {slug}.yaml (with "
            f"--lang {language} where a command takes it)",
            Location(file),
        )
    try:
        fields.slug(slug)
    except ValueError:
        # The name goes into links, folder names and mail headers.
        raise NewsletterError(
            f"the file name '{slug}' cannot name an issue; use letters, digits, dashes and "
            "underscores, such as 2021-06.yaml",
            Location(file),
        ) from None
    doc = yamlfile.parse_yaml(text, file, what="issue file")
    issue = yamlfile.validate(Issue, doc, what="an issue file")
    issue_file = IssueFile(path=file, slug=slug, issue=issue, doc=doc)
    missing = [
        Problem(
            issue_file.location(*where),
            yamlfile.format_path(where),
            f"no image file {src} beside the issue ({Path(file).parent / src})",
        )
        for where, src in local_images(issue_file)
        if not (Path(file).parent / src).is_file()
    ]
    if missing:
        raise InputError(missing)
    return issue_file


def local_images(issue_file: IssueFile) -> list[tuple[tuple[str | int, ...], str]]:
    """(key path, relative path) of every image the issue keeps beside it."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    for s, section in enumerate(issue_file.issue.sections):
        for a, article in enumerate(section.articles):
            if article.image is not None and fields.is_local(article.image.src):
                found.append((("sections", s, "articles", a, "image", "src"), article.image.src))
    return found


def load_issue(path: Path | str) -> IssueFile:
    """Read and validate an issue file."""
    path = Path(path)
    return parse_issue(yamlfile.read_text(path, what="issue file"), str(path))


def new_issue(slug: str, issues_dir: Path) -> tuple[Path, Path]:
    """Start issues/SLUG.yaml as a copy of the latest issue; returns (new, copied from).

    A slug of the form YYYY-MM also sets the copy's date to the first of that month.
    """
    try:
        fields.slug(slug)
    except ValueError as exc:
        raise NewsletterError(f"{exc}, e.g. 2021-06") from None
    target = issues_dir / f"{slug}.yaml"
    if target.exists():
        raise NewsletterError("already exists; pick another name or edit it", Location(str(target)))
    existing = source_issues(issues_dir)
    if not existing:
        raise NewsletterError(f"no issue to start from in {issues_dir}/")
    latest = existing[-1]
    text = yamlfile.read_text(latest, what="issue file")
    month = re.fullmatch(r"(\d{4})-(\d{2})", slug)
    if month and 1 <= int(month.group(2)) <= 12:
        from newsletter.issue.continuity import shift_own_texts

        text = re.sub(r"(?m)^date:.*$", f"date: {slug}-01", text, count=1)
        try:
            before = load_issue(latest).issue
        except NewsletterError:
            pass  # the old issue does not load: its date stays the only change
        else:
            first = dt.date(int(month.group(1)), int(month.group(2)), 1)
            text = shift_own_texts(text, before.language, before.date, first)
    with target.open("x", encoding="utf-8") as handle:
        handle.write(text)
    return target, latest
