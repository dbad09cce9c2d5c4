"""What a message that came back is: a bounce (RFC 3464 delivery status, or the formats
MTAs write without it), a delay, a complaint (RFC 5965 feedback report), a mailto
unsubscribe, an auto-reply, or unrecognised.

Classification reads the message only; matching it to a delivery (the VERP tag first,
then our headers in the returned copy, then the address) and acting on it are elsewhere.
Nothing here trusts the message: every field is bounded, and a message that cannot be
parsed is unrecognised, never an error.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message

Kind = str  # "bounce" | "delayed" | "complaint" | "unsubscribe" | "autoreply" | "unrecognised"

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([45]\d\d)[ -]")
_ADDRESS = re.compile(r"<?([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253})>?")
_TEMPORARY = re.compile(
    r"temporar|try again|retry|mailbox (is )?full|over quota|quota exceeded|deferred|delayed",
    re.I,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery status notification|delivery (has )?failed|mail delivery failed|"
    r"returned mail|failure notice|delivery failure|could not be delivered|non-?delivery|"
    r"mail system error|message not delivered",
    re.I,
)
_AUTOREPLY_SUBJECT = re.compile(
    r"^(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|"
    r"respuesta autom[aá]tica|r[eé]ponse automatique|fuera de la oficina|away from|"
    r"on vacation|vacation reply)",
    re.I,
)
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery (subsystem|system)", re.I)


@dataclass
class Classified:
    kind: Kind
    # The recipient the report is about (Final-Recipient, the complaint's Original-Rcpt-To,
    # the address named in a bounce), if it names one.
    recipient: str | None = None
    status: str | None = None  # an enhanced status code, such as 5.1.1
    hard: bool = False
    diagnostic: str = ""
    token: str | None = None  # a mailto unsubscribe's token
    # Our own headers, found in the copy a report returns.
    campaign: str | None = None
    subscriber: str | None = None
    message_id: str | None = None  # the report's own Message-ID
    details: dict[str, str] = field(default_factory=dict)


def parse(raw: bytes) -> Message | None:
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception:  # the parser is lenient; anything it still chokes on is unrecognised
        return None


def _blocks(part: Message) -> list[Message]:
    """The messages inside a message/* part (the blocks of a delivery status)."""
    payload = part.get_payload()
    return [m for m in payload if isinstance(m, Message)] if isinstance(payload, list) else []


def _bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _text(value: object, limit: int = 300) -> str:
    """A header's value as one line of text: encoded words decoded, raw UTF-8 read."""
    if isinstance(value, email.header.Header) or "=?" in str(value or ""):
        try:
            parts = email.header.decode_header(value)  # type: ignore[arg-type]
        except (ValueError, LookupError, email.errors.HeaderParseError):
            parts = [(str(value), None)]
        text = "".join(
            chunk.decode(_charset(charset), "replace") if isinstance(chunk, bytes) else chunk
            for chunk, charset in parts
        )
    else:
        text = str(value or "")
    return " ".join(text.split())[:limit]


def _charset(name: str | None) -> str:
    """A header's charset, or UTF-8 where it is unknown (raw 8-bit) or not one Python has."""
    import codecs

    if not name or name == "unknown-8bit":
        return "utf-8"
    try:
        codecs.lookup(name)
    except LookupError:
        return "utf-8"
    return name


def _address(value: str) -> str | None:
    """The address in a field such as `rfc822; someone@example.com`."""
    _, _, rest = value.rpartition(";")
    match = _ADDRESS.search(rest or value)
    return match.group(1).lower() if match else None


def _our_headers(part: Message, found: Classified) -> None:
    """X-Newsletter-* and Message-ID of the returned copy (message/rfc822 or headers)."""
    original: Message | None = None
    if part.get_content_type() == "message/rfc822":
        original = next(iter(_blocks(part)), None)
    elif part.get_content_type() in ("text/rfc822-headers", "message/rfc822-headers"):
        original = parse(_bytes(part))
    if original is None:
        return
    found.campaign = found.campaign or _text(original.get("X-Newsletter-Campaign"), 64) or None
    found.subscriber = (
        found.subscriber or _text(original.get("X-Newsletter-Subscriber"), 20) or None
    )
    found.details.setdefault("original_message_id", _text(original.get("Message-ID"), 200))


def _delivery_status(message: Message) -> Classified | None:
    """RFC 3464: only Action: failed is a bounce (5.x.x hard, 4.x.x soft); delayed is a
    delay; delivered, relayed and expanded are nothing to act on."""
    found: Classified | None = None
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            blocks = _blocks(part)
            for block in blocks[1:] or blocks:
                action = _text(block.get("Action"), 20).lower()
                if not action:
                    continue
                status = _STATUS.search(_text(block.get("Status"), 20))
                code = ".".join(status.groups()) if status else None
                recipient = _address(
                    _text(block.get("Final-Recipient") or block.get("Original-Recipient"))
                )
                diagnostic = _text(block.get("Diagnostic-Code"))
                if action == "failed":
                    hard = code is None or code.startswith("5")
                    found = Classified("bounce", recipient, code, hard, diagnostic)
                    break
                if action == "delayed" and found is None:
                    found = Classified("delayed", recipient, code, False, diagnostic)
            if found is not None and found.kind == "bounce":
                break
    if found is None:
        return None
    for part in message.walk():
        _our_headers(part, found)
    return found


def _feedback_report(message: Message) -> Classified | None:
    """RFC 5965 (ARF): a complaint, with the complainer's address when given."""
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        fields = next(iter(_blocks(part)), None) or parse(_bytes(part) + b"\r\n")
        if fields is None:
            continue
        feedback = _text(fields.get("Feedback-Type"), 40).lower()
        found = Classified("complaint", diagnostic=f"feedback type {feedback or 'unknown'}")
        found.recipient = _address(_text(fields.get("Original-Rcpt-To")))
        found.details["feedback_type"] = feedback
        for inner in message.walk():
            _our_headers(inner, found)
        return found
    return None


def _unsubscribe(message: Message, unsubscribe_address: str) -> Classified | None:
    """A mail to the List-Unsubscribe mailto, with `unsubscribe TOKEN` as its subject."""
    targets = " ".join(
        _text(message.get(h), 500) for h in ("To", "Delivered-To", "X-Original-To", "Cc")
    ).lower()
    if unsubscribe_address.lower() not in targets:
        return None
    subject = _text(message.get("Subject"), 300)
    match = re.search(r"unsubscribe\s+([A-Za-z0-9_.=-]{10,200})", subject, re.I)
    return Classified(
        "unsubscribe",
        token=match.group(1) if match else None,
        diagnostic="" if match else "no token in the subject",
        recipient=_address(_text(message.get("From"))),
    )


def _autoreply(message: Message) -> bool:
    submitted = _text(message.get("Auto-Submitted"), 40).lower()
    if submitted and submitted != "no":
        return True
    if any(message.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponse")):
        return True
    precedence = _text(message.get("Precedence"), 20).lower()
    if precedence == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECT.search(_text(message.get("Subject"), 200)))


def _body_text(message: Message, limit: int = 20_000) -> str:
    chunks = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            chunks.append(_bytes(part)[:limit].decode("utf-8", "replace"))
        elif part.get_content_type() == "message/rfc822":
            break  # the returned copy: its text is ours, not the report's
    return "\n".join(chunks)[:limit]


def _other_bounce(message: Message) -> Classified | None:
    """Bounces without RFC 3464 (qmail, Exim, Exchange, some providers): from a mailer
    daemon, with a subject that says so, naming an address and a status."""
    sender = _text(message.get("From"), 200)
    subject = _text(message.get("Subject"), 200)
    if not (_DAEMON.search(sender) or _BOUNCE_SUBJECT.search(subject)):
        return None
    body = _body_text(message)
    status = _STATUS.search(body)
    code = _SMTP_CODE.search(body)
    recipient = None
    for match in _ADDRESS.finditer(body):
        candidate = match.group(1).lower()
        if not _DAEMON.search(candidate) and "bounces+" not in candidate:
            recipient = candidate
            break
    if status is None and code is None and recipient is None:
        return None
    temporary = bool(_TEMPORARY.search(body)) and not re.search(r"permanent", body, re.I)
    if status is not None:
        hard = status.group(1) == "5" and not temporary
        status_text: str | None = ".".join(status.groups())
    elif code is not None:
        hard = code.group(1).startswith("5") and not temporary
        status_text = None
    else:
        hard = not temporary
        status_text = None
    line = next(
        (ln.strip() for ln in body.splitlines() if _STATUS.search(ln) or _SMTP_CODE.search(ln)),
        "",
    )
    found = Classified("bounce", recipient, status_text, hard, _text(line))
    for part in message.walk():
        _our_headers(part, found)
    return found


def classify(raw: bytes, *, unsubscribe_address: str) -> Classified:
    """What the message is. Never raises."""
    message = parse(raw)
    if message is None:
        return Classified("unrecognised", diagnostic="cannot be parsed")
    found = (
        _feedback_report(message)
        or _delivery_status(message)
        or _unsubscribe(message, unsubscribe_address)
    )
    # A mailer daemon's message is a bounce if it reads like one, whatever its
    # Auto-Submitted says; anyone else's automatic answer is an auto-reply, never a bounce.
    if found is None and _DAEMON.search(_text(message.get("From"), 200)):
        found = _other_bounce(message)
    if found is None and _autoreply(message):
        found = Classified("autoreply")
    if found is None:
        found = _other_bounce(message) or Classified("unrecognised")
    found.message_id = _text(message.get("Message-ID"), 200) or None
    return found
