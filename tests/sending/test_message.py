"""Message building: multipart/alternative, safe headers, deterministic bytes."""

from __future__ import annotations

import datetime as dt
import email
import email.policy

import pytest

from newsletter.build import sample_message
from newsletter.errors import NewsletterError
from newsletter.render import Personalized, RenderedIssue
from newsletter.sending.message import address, build_message, check_headers
from newsletter.settings import Settings

BODY = Personalized(html="<p>Hi</p>", text="Hi\n")
WHEN = dt.datetime(2021, 5, 31, 9, tzinfo=dt.UTC)


def _message(**changes: object) -> bytes:
    args: dict[str, object] = {
        "sender": address("news@example.org", "News"),
        "to": address("ana@example.org", "Ana"),
        "subject": "Hello",
        "body": BODY,
        "message_id": "<1@example.org>",
        "date": WHEN,
    }
    args.update(changes)
    return build_message(**args)  # type: ignore[arg-type]


def test_sample_message_is_deterministic(sample_rendered: RenderedIssue) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    first = sample_message(sample_rendered, settings)
    assert first == sample_message(sample_rendered, settings)
    parsed = email.message_from_bytes(first, policy=email.policy.SMTP)
    assert parsed["Date"] == "Mon, 31 May 2021 09:00:00 +0000"
    assert parsed["Message-ID"].startswith("<2021-05.sample.")
    assert b"\r\n" in first and b"\n" not in first.replace(b"\r\n", b"")


def test_non_ascii_names_and_subjects_are_encoded() -> None:
    raw = _message(to=address("jose@example.org", "José Núñez"), subject="Migración: ¿qué hay?")
    parsed = email.message_from_bytes(raw, policy=email.policy.SMTP)
    assert parsed["To"] == "José Núñez <jose@example.org>"
    assert parsed["Subject"] == "Migración: ¿qué hay?"
    assert raw.isascii()


@pytest.mark.parametrize("name", ["Ana\r\nBcc: x@example.org", "=?UTF-8?Q?=0A?=Bcc: x", "A\x00"])
def test_names_that_could_inject_headers_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        address("ana@example.org", name)


def test_subject_injection_is_refused() -> None:
    with pytest.raises(ValueError, match="one line"):
        _message(subject="Hi\nBcc: x@example.org")


def test_check_headers_refuses_unexpected_headers() -> None:
    raw = _message()
    smuggled = raw.replace(b"Subject: Hello\r\n", b"Subject: Hello\r\nBcc: all@example.org\r\n")
    with pytest.raises(NewsletterError, match="unexpected header 'Bcc'"):
        check_headers(smuggled)
    check_headers(raw)


def test_address_needs_an_at_sign() -> None:
    with pytest.raises(NewsletterError, match="is not an email address"):
        address("not-an-address")
