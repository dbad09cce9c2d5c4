"""Unsubscribing: a link in both parts, and the headers mailbox providers require."""

from __future__ import annotations

from newsletter.checks import Subject


def check(s: Subject) -> None:
    if "unsubscribe_url" not in s.rendered.parts("html").fields():
        s.add("unsubscribe.link", "the HTML has no unsubscribe link")
    if "unsubscribe_url" not in s.rendered.parts("text").fields():
        s.add("unsubscribe.link", "the plain-text part has no unsubscribe link")
    head = s.message.split(b"\r\n\r\n", 1)[0].lower()
    for header in (b"list-unsubscribe:", b"list-unsubscribe-post:"):
        if b"\r\n" + header not in b"\r\n" + head:
            s.add("unsubscribe.headers", f"the message has no {header.decode()[:-1]} header")
