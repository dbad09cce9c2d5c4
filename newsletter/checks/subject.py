"""The subject and the preheader: what the inbox shows before anyone opens the message."""

from __future__ import annotations

import re

from newsletter.checks import Subject

_SPAMMY = re.compile(r"!!|\?\?|!\?|\?!|\$\$|€€|^\W|\W{3,}$")


def check(s: Subject) -> None:
    issue = s.issue_file.issue
    subject = issue.subject
    subject_at = s.places.at("subject")
    if len(subject) > 70:
        s.add(
            "subject.length",
            f"the subject is {len(subject)} characters; inboxes cut it near 70",
            subject_at,
        )
    letters = [c for c in subject if c.isalpha()]
    if len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
        s.add(
            "subject.shouting",
            "the subject is in capitals; spam filters and readers dislike it",
            subject_at,
        )
    if _SPAMMY.search(subject.strip()):
        s.add(
            "subject.punctuation",
            "the subject has punctuation that spam filters score (!!, ??, $$)",
            subject_at,
        )
    if not 40 <= len(issue.preheader) <= 110:
        s.add(
            "preheader.length",
            f"the preheader is {len(issue.preheader)} characters; aim for 40 to 110",
            s.places.at("preheader"),
        )
