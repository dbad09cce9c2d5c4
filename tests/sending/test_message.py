"""Message building: multipart/alternative, safe headers, deterministic bytes."""

from __future__ import annotations

import datetime as dt
import email
import email.policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.errors import NewsletterError
from newsletter.render import Personalized, PersonalValues, RenderedIssue
from newsletter.sending.message import (
    Addressee,
    DkimSigner,
    MessageTemplate,
    address,
    build_message,
    check_headers,
    record_digest,
    sample_message,
)
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


# The fast path: a campaign's message built once, each recipient spliced in.


VIEW = "https://newsletter.example.org/archive/2021-05/"


def _template(rendered: RenderedIssue, **kwargs: object) -> MessageTemplate:
    return MessageTemplate(
        rendered,
        sender=address("newsletter@example.org", "Regional Migration News"),
        subject="Noticias de migración: mayo",
        list_id='"Regional Migration News" <bulletin.example.org>',
        campaign="campaign-7",
        view_online_url=VIEW,
        **kwargs,  # type: ignore[arg-type]
    )


def _to(name: str = "José Núñez <script>x</script>") -> Addressee:
    return Addressee(
        subscriber_id=42,
        email="jose@example.com",
        name=name,
        message_id="<c7.s42.abc@example.org>",
        unsubscribe_url="https://newsletter.example.org/unsubscribe/tok?a=1&b=2",
        unsubscribe_mailto="mailto:unsubscribe@example.org?subject=unsubscribe%20tok",
        first_name=name,
    )


def test_spliced_bytes_parse_exactly_like_the_slow_way(sample_rendered: RenderedIssue) -> None:
    to = _to()
    date = "Mon, 31 May 2021 09:00:00 GMT"
    fast = email.message_from_bytes(
        _template(sample_rendered).build(to, date=date), policy=email.policy.SMTP
    )
    body = sample_rendered.personalize(
        PersonalValues(
            email=to.email,
            name=to.name,
            first_name=to.first_name,
            unsubscribe_url=to.unsubscribe_url,
            view_online_url=VIEW,
        )
    )
    slow = email.message_from_bytes(
        build_message(
            sender=address("newsletter@example.org", "Regional Migration News"),
            to=address(to.email, to.name.replace("<", "").replace(">", "")),
            subject="Noticias de migración: mayo",
            body=body,
            message_id=to.message_id,
            date=WHEN,
            extra_headers={
                "List-Id": '"Regional Migration News" <bulletin.example.org>',
                "List-Unsubscribe": f"<{to.unsubscribe_url}>, <{to.unsubscribe_mailto}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "X-Newsletter-Campaign": "campaign-7",
                "X-Newsletter-Subscriber": "42",
            },
        ),
        policy=email.policy.SMTP,
    )
    for name in (
        "From",
        "Subject",
        "Message-ID",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "X-Newsletter-Campaign",
        "X-Newsletter-Subscriber",
        "MIME-Version",
    ):
        assert fast[name] == slow[name], name
    assert fast["To"].addresses[0].addr_spec == slow["To"].addresses[0].addr_spec == to.email
    assert fast["To"].addresses[0].display_name == to.name
    assert fast.get_content_type() == slow.get_content_type() == "multipart/alternative"
    for kind in ("plain", "html"):
        assert fast.get_body((kind,)).get_content() == slow.get_body((kind,)).get_content()
    assert (
        "Hello José Núñez &lt;script&gt;x&lt;/script&gt;," in fast.get_body(("html",)).get_content()
    )


def test_spliced_message_is_ascii_with_short_lines(sample_rendered: RenderedIssue) -> None:
    raw = _template(sample_rendered).build(_to("X" * 150))
    assert raw.isascii()
    head, body = raw.split(b"\r\n\r\n", 1)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert max(len(line) for line in head.split(b"\r\n")) < 998


def test_a_name_with_a_line_break_is_dropped_not_sent(sample_rendered: RenderedIssue) -> None:
    raw = _template(sample_rendered).build(_to("Eve\r\nBcc: all@example.net"))
    msg = email.message_from_bytes(raw, policy=email.policy.SMTP)
    assert msg["To"] == "jose@example.com"
    assert "Bcc" not in msg


def _dkim_key(kind: str) -> tuple[bytes, bytes]:
    """A private key (PEM) and its DNS record, made here without the code under test."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    else:
        key = ed25519.Ed25519PrivateKey.generate()  # type: ignore[assignment]
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, record


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_dkim_signature_verifies_with_dkimpy_and_covers_list_unsubscribe(
    sample_rendered: RenderedIssue, kind: str
) -> None:
    import dkim

    pem, record = _dkim_key(kind)
    signer = DkimSigner("example.org", "nl2021", pem)
    assert signer.algorithm == f"{kind}-sha256"
    raw = _template(sample_rendered, dkim=signer).build(_to())
    header = email.message_from_bytes(raw, policy=email.policy.SMTP)["DKIM-Signature"]
    signed = {h.strip().lower() for h in header.split("h=", 1)[1].split(";", 1)[0].split(":")}
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "to", "subject"} <= signed
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"nl2021._domainkey.example.org."
        return record

    assert dkim.verify(raw, dnsfunc=dns)
    # The general path, which canonicalizes a whole message itself, signs alike.
    assert dkim.verify(signer.sign(_template(sample_rendered).build(_to())), dnsfunc=dns)
    assert signer.public_record() == record
    for tampered in (
        raw.replace(b"List-Unsubscribe: <https://", b"List-Unsubscribe: <http://", 1),
        raw.replace(b"Hello", b"Hullo", 1),
    ):
        assert not dkim.verify(tampered, dnsfunc=dns)


@pytest.mark.parametrize("kind", ["plain", "rsa"])
def test_the_recorded_fingerprint_is_that_of_the_bytes_sent(
    sample_rendered: RenderedIssue, kind: str
) -> None:
    signer = None if kind == "plain" else DkimSigner("example.org", "nl", _dkim_key(kind)[0])
    built = _template(sample_rendered, dkim=signer).build_recorded(_to())
    assert built.digest == record_digest(built.message)
    end = built.message.index(b"\r\n\r\n") + 4
    head, body = built.message[:end], built.message[end:]
    # Other bytes differ; so does a message whose body, then head, are the same bytes
    # (the head's first lines moved to the end of the body).
    cut = head.index(b"\r\nSubject:") + 2
    for other in (
        built.message.replace(b"Hello", b"Hullo", 1),
        built.message.replace(b"Subject: ", b"Subject:  ", 1),
        head[cut:] + body + head[:cut],
    ):
        assert record_digest(other) != built.digest


@pytest.mark.parametrize(
    "key", [b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_a_dkim_key_that_cannot_sign_is_one_line(key: bytes) -> None:
    with pytest.raises(NewsletterError) as info:
        DkimSigner("example.org", "nl", key)
    assert str(info.value).startswith("NEWSLETTER_DKIM_KEY_FILE does not hold a PEM private key")


def test_rate_limiter_paces_and_caps() -> None:
    from newsletter.sending.ratelimit import RateLimiter

    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(10, clock=lambda: now[0], sleep=sleep)
    for _ in range(30):
        limiter.acquire()
    # A burst of 10, then one every 0.1 s: 30 messages take 2 s.
    assert now[0] == pytest.approx(2.0, abs=0.01)
    hourly = RateLimiter(0, per_hour=3, clock=lambda: now[0], sleep=sleep)
    start = now[0]
    for _ in range(4):
        hourly.acquire()
    assert now[0] - start == pytest.approx(3600, abs=1)


def test_relaxed_body_matches_the_rfc_line_by_line() -> None:
    """RFC 6376 3.4.4 written out line by line, against the whole-body version used."""
    import random
    import re

    from newsletter.sending.dkim import relaxed_body

    wsp = re.compile(rb"[ \t]+")

    def by_lines(body: bytes) -> bytes:
        lines = [wsp.sub(b" ", line).rstrip(b" ") for line in body.split(b"\r\n")]
        while lines and lines[-1] == b"":
            lines.pop()
        return b"".join(line + b"\r\n" for line in lines)

    rng = random.Random(6376)
    for _ in range(20_000):
        body = bytes(rng.choice(b"a \t\r\n") for _ in range(rng.randint(0, 14)))
        assert relaxed_body(body) == by_lines(body), body


@given(st.text(alphabet=".. \t\n=aé\u2028x", max_size=400), st.booleans())
@settings(max_examples=3000, deadline=None)
def test_quoted_printable_pieces_go_out_as_they_are(text: str, long_line: bool) -> None:
    """Each piece decodes to its text, keeps lines to 76 characters, starts no line with
    a dot (no dot-stuffing needed) and holds no tab or space run (its own relaxed form)."""
    import binascii

    from newsletter.sending.dkim import relaxed_lines
    from newsletter.sending.message import _qp

    if long_line:
        text = "." + "a" * 74 + text + "b" * 75
    encoded = _qp(text)
    data = encoded.removesuffix(b"=\r\n") if not text.endswith("\n") else encoded
    assert binascii.a2b_qp(data.replace(b"\r\n", b"\n")) == text.encode()
    lines = encoded.split(b"\r\n")
    assert lines[-1] == b""
    assert all(len(line) <= 76 and not line.startswith(b".") for line in lines), encoded
    assert b"\n" not in encoded.replace(b"\r\n", b"")
    assert relaxed_lines(encoded) == encoded


def test_a_whole_message_needs_no_stuffing_and_hashes_as_it_is(
    sample_rendered: RenderedIssue,
) -> None:
    from newsletter.sending.dkim import relaxed_body

    raw = _template(sample_rendered).build(_to(". Dot\tand  spaces"))
    body = raw.partition(b"\r\n\r\n")[2]
    assert b"\r\n." not in raw and relaxed_body(body) == body


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (b"a\r\n", b"a\r\n.\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b".a\r\n", b"..a\r\n.\r\n"),
        (b"a\r\n.\r\n..b\r\n.", b"a\r\n..\r\n...b\r\n..\r\n.\r\n"),
        (b"", b"\r\n.\r\n"),
    ],
)
def test_dot_stuffing(message: bytes, wire: bytes) -> None:
    from newsletter.sending.transport import dot_stuff

    assert dot_stuff(message) == wire
