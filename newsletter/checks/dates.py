"""Continuity: the months and years the issue's own texts name, against its date."""

from __future__ import annotations

from newsletter.checks import Subject
from newsletter.issue.continuity import OWN_TEXTS, disagreements


def check(s: Subject) -> None:
    issue = s.issue_file.issue
    for key in OWN_TEXTS:
        text = getattr(issue, key)
        for offset, said in disagreements(text, issue.language, issue.date):
            where = s.places.at(key)
            if "\n" in text and where.get("line"):
                # A block of several lines starts on the line after its key.
                where = {**where, "line": where["line"] + 1 + text[:offset].count("\n")}
                where["column"] = None
            s.add(
                "date.mismatch",
                f"{key}: {said} ({issue.date:%B %Y}); left over from an earlier issue?",
                where,
            )
