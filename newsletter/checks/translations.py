"""Editions: a translation with items still to translate, stale since the source changed,
or translating what the source no longer has; theme strings missing in a language."""

from __future__ import annotations

from newsletter.checks import Subject


def check(s: Subject) -> None:
    for gap in s.issue_file.gaps:
        where = {"file": gap.location.file, "line": gap.location.line}
        where["column"] = gap.location.column
        s.add(f"translation.{gap.kind}", gap.message, where)
    if s.rendered.missing_strings:
        s.add(
            "theme.strings",
            f"the theme has no '{s.rendered.language}' words for "
            f"{', '.join(s.rendered.missing_strings)}: they are shown in English",
        )
