"""The plain-text part: present, and carrying every article."""

from __future__ import annotations

from newsletter.checks import Subject


def check(s: Subject) -> None:
    if not s.copy.text.strip():
        s.add("text.empty", "the plain-text part is empty")
        return
    for i, section in enumerate(s.issue_file.issue.sections):
        for a, article in enumerate(section.articles):
            if article.title not in s.copy.text:
                s.add(
                    "text.article",
                    f"'{article.title}' is not in the plain-text part",
                    s.places.at("sections", i, "articles", a, "title"),
                )
