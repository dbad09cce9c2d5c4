"""Signed tokens for unsubscribe and preference links.

A token carries the subscriber id and a scope (a list name, or a campaign), never the
email address, and an HMAC-SHA256 over both. Tokens signed with a previous key (listed in
NEWSLETTER_OLD_SECRET_KEYS) still verify, so rotating the key breaks no link already sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from newsletter.errors import NewsletterError
from newsletter.settings import Settings

# Only for the outbox, which reaches nobody: links signed with it are worthless elsewhere.
DEVELOPMENT_KEY = "development key: set NEWSLETTER_SECRET_KEY before sending for real"


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


def _mac(key: str, payload: str) -> bytes:
    return hmac.new(key.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).digest()[:16]


def sign(key: str, subscriber_id: int, scope: str) -> str:
    payload = f"{subscriber_id}.{scope}"
    return f"{_b64(payload.encode('utf-8'))}.{_b64(_mac(key, payload))}"


def verify(settings: Settings, token: str) -> tuple[int, str]:
    """(subscriber id, scope) of a genuine token, else NewsletterError."""
    try:
        encoded, mac = token.split(".")
        payload = _unb64(encoded).decode("utf-8")
        given = _unb64(mac)
        subscriber, scope = payload.split(".", 1)
    except (ValueError, UnicodeDecodeError):
        raise NewsletterError("this link is not valid") from None
    keys = [
        signing_key(settings),
        *(k.strip() for k in settings.old_secret_keys.split(",") if k.strip()),
    ]
    if not any(hmac.compare_digest(_mac(k, payload), given) for k in keys):
        raise NewsletterError("this link is not valid")
    return int(subscriber), scope
