"""Signed tokens for unsubscribe, preference and confirmation links.

A token carries the subscriber id, a scope (a campaign, a list, a purpose) and the time it
was made, never the email address, with an HMAC-SHA256 over all three. Tokens signed with
a previous key (NEWSLETTER_SECRET_KEY_PREVIOUS, comma-separated) still verify, so rotating
the key breaks no link already sent.
"""

from __future__ import annotations

import base64
import hmac
import re
import time

from newsletter.errors import NewsletterError
from newsletter.settings import Settings

# Only for the outbox, which reaches nobody: links signed with it are worthless elsewhere.
DEVELOPMENT_KEY = "development key: set NEWSLETTER_SECRET_KEY before sending for real"


class BadToken(NewsletterError):
    """A link that was forged, tampered with, mangled or has expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_key(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    if settings.smtp_host:
        raise NewsletterError(
            "NEWSLETTER_SECRET_KEY is not set; it signs the unsubscribe links in every message"
        )
    return DEVELOPMENT_KEY


def _keys(settings: Settings) -> list[str]:
    previous = settings.secret_key_previous
    older = previous.get_secret_value().split(",") if previous else []
    return [signing_key(settings), *(k.strip() for k in older if k.strip())]


def _mac(key: str, payload: str) -> bytes:
    return hmac.digest(key.encode("utf-8"), payload.encode("utf-8"), "sha256")[:16]


def sign(key: str, subscriber_id: int, scope: str, *, now: float | None = None) -> str:
    if "." in scope:
        raise ValueError("a token scope cannot contain '.'")
    issued = int(now if now is not None else time.time())
    payload = f"{subscriber_id}.{scope}.{issued}"
    return f"{_b64(payload.encode('utf-8'))}.{_b64(_mac(key, payload))}"


def verify(
    settings: Settings, token: str, *, max_age: float | None = None, now: float | None = None
) -> tuple[int, str]:
    """(subscriber id, scope) of a genuine token, else BadToken."""
    try:
        encoded, mac = token.split(".")
        payload = _unb64(encoded).decode("utf-8")
        given = _unb64(mac)
        subscriber, scope, issued = payload.split(".")
        subscriber_id, issued_at = int(subscriber), int(issued)
    except (ValueError, UnicodeDecodeError):
        raise BadToken("this link is not valid") from None
    if not any(hmac.compare_digest(_mac(k, payload), given) for k in _keys(settings)):
        raise BadToken("this link is not valid")
    if max_age is not None and (now if now is not None else time.time()) - issued_at > max_age:
        raise BadToken("this link has expired")
    return subscriber_id, scope


# What a token is for. Each page accepts only the kinds it serves: a preferences token does
# not unsubscribe, a list token does not open the data download.
CAMPAIGN, LIST, TEST, PREFERENCES, CONFIRM = "campaign", "list", "test", "prefs", "confirm"


def campaign_scope(campaign_id: int) -> str:
    """The List-Unsubscribe link of a campaign's message (and its mailto)."""
    return f"c{campaign_id}"


# How long a signup's confirmation link works (seconds).
CONFIRM_MAX_AGE = 7 * 24 * 3600


def confirm_scope(list_name: str) -> str:
    return f"confirm-{list_name}"


def kind_of(scope: str) -> str | None:
    if scope[:1] == "c" and scope[1:].isdigit():
        return CAMPAIGN
    if scope.startswith("l-") and len(scope) > 2:
        return LIST
    if scope.startswith("confirm-") and len(scope) > 8:
        return CONFIRM
    if scope in (TEST, PREFERENCES):
        return scope
    return None


def verify_for(
    settings: Settings,
    token: str,
    kinds: frozenset[str],
    *,
    max_age: float | None = None,
    now: float | None = None,
) -> tuple[int, str]:
    """(subscriber id, scope) of a genuine token whose kind is one of kinds, else BadToken
    with the reason (which names no token and no address)."""
    subscriber_id, scope = verify(settings, token, max_age=max_age, now=now)
    kind = kind_of(scope)
    if kind not in kinds:
        raise BadToken(f"a {kind or 'unknown'} link cannot be used here")
    return subscriber_id, scope


# The return path: each message's envelope sender is bounces+TAG@domain (VERP), with TAG a
# short signed pair, so a bounce names the delivery it is about whatever the returned copy
# kept of our headers. Kinds: c (a campaign's delivery: campaign, subscriber), t (a test
# send: stamp, number), k (a confirmation email: subscriber, time).
VERP_KINDS = ("c", "t", "k")
_VERP = re.compile(r"([ctk])(\d{1,20})-(\d{1,20})-([0-9a-f]{12})")


def _verp_mac(key: str, kind: str, first: int, second: int) -> str:
    tag = f"verp.{kind}.{first}.{second}".encode()
    return hmac.digest(key.encode("utf-8"), tag, "sha256")[:6].hex()


def bounce_address(settings: Settings) -> str:
    return settings.bounce_address or f"bounces@{settings.sender_domain()}"


def return_path(settings: Settings, key: str, kind: str, first: int, second: int) -> str:
    """The envelope sender for one message: bounces+TAG@domain."""
    assert kind in VERP_KINDS
    local, _, domain = bounce_address(settings).rpartition("@")
    tag = f"{kind}{first}-{second}-{_verp_mac(key, kind, first, second)}"
    return f"{local}+{tag}@{domain}"


def read_return_path(settings: Settings, address: str) -> tuple[str, int, int] | None:
    """(kind, first, second) of a genuine VERP address of ours, else None (any key, the
    current or a previous one, may have signed it)."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base_local, _, base_domain = bounce_address(settings).rpartition("@")
    if domain.lower() != base_domain.lower() or "+" not in local:
        return None
    prefix, _, tag = local.partition("+")
    match = _VERP.fullmatch(tag.lower())
    if prefix.lower() != base_local.lower() or match is None:
        return None
    kind, first, second, mac = match[1], int(match[2]), int(match[3]), match[4]
    try:
        keys = _keys(settings)
    except NewsletterError:
        return None
    if not any(hmac.compare_digest(_verp_mac(k, kind, first, second), mac) for k in keys):
        return None
    return kind, first, second
