"""Per-recipient fields, carried through rendering as opaque tokens and filled by splicing.

The rendered issue is split once at its tokens. Filling a recipient's values is then a
join of literal pieces and escaped values: no second template pass runs over editor text
or subscriber data, so `{{ 7*7 }}` in either stays literal. Placeholders are letters and
digits only, so neither MJML nor premailer's href rewriting can alter them. (The signed
tokens in links are another thing: newsletter/tokens.py.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import re
from dataclasses import dataclass

from markupsafe import Markup

# Field name -> how its value is checked before it is escaped for HTML.
# Append only: a frozen campaign's render refers to fields by their place.
FIELDS: tuple[str, ...] = (
    "name",
    "email",
    "unsubscribe_url",
    "view_online_url",
    "preferences_url",
    "greeting",
)
_URL_FIELDS = frozenset({"unsubscribe_url", "view_online_url", "preferences_url"})
_SPACE = re.compile(r"\s")  # str.isspace's characters


@dataclass(frozen=True)
class PersonalValues:
    """The values one recipient's copy is filled with."""

    email: str
    unsubscribe_url: str
    view_online_url: str
    name: str = ""
    # Where "Preferences" leads; without one, the unsubscribe page (which links to them).
    preferences_url: str = ""
    # The subscriber's first_name attribute, for the greeting ("Hello Karla,"); without
    # one the greeting names nobody ("Hello,"), rather than "Hello Ríos, Karla,".
    first_name: str = ""


class Placeholders:
    """Placeholder tokens for one render; the nonce keeps them out of reach of content."""

    def __init__(self, seed: str, *, nonce: str | None = None) -> None:
        self.nonce = nonce or hashlib.sha256(seed.encode("utf-8")).hexdigest()[:12]
        if not re.fullmatch(r"[0-9a-f]{12}", self.nonce):
            raise ValueError("a placeholder nonce is 12 hexadecimal digits")
        self.pattern = re.compile(rf"NLX{self.nonce}(\d\d)")

    def token(self, field: str) -> Markup:
        return Markup(f"NLX{self.nonce}{FIELDS.index(field):02d}")

    def recipient(self) -> dict[str, Markup]:
        return {
            "name": self.token("name"),
            "email": self.token("email"),
            "greeting": self.token("greeting"),
        }

    def links(self) -> dict[str, Markup]:
        return {
            "unsubscribe": self.token("unsubscribe_url"),
            "view_online": self.token("view_online_url"),
            "preferences": self.token("preferences_url"),
        }


@dataclass(frozen=True)
class Spliced:
    """A document split at its tokens: literal, field index, literal, field index, ..."""

    parts: tuple[str | int, ...]

    @classmethod
    def split(cls, document: str, tokens: Placeholders) -> Spliced:
        pieces = tokens.pattern.split(document)
        parts: list[str | int] = []
        for i, piece in enumerate(pieces):
            parts.append(int(piece) if i % 2 else piece)
        return cls(tuple(parts))

    def fields(self) -> set[str]:
        return {FIELDS[p] for p in self.parts if isinstance(p, int)}

    def fill(self, values: tuple[str, ...]) -> str:
        return "".join(values[p] if isinstance(p, int) else p for p in self.parts)


def values_for(
    recipient: PersonalValues,
    fallback_name: str,
    *,
    for_html: bool,
    greetings: tuple[str, str] = ("", ""),
) -> tuple[str, ...]:
    """The recipient's values in FIELDS order, escaped for HTML or cleaned for text.
    greetings: the theme's greeting with a {name} and without one."""
    if not recipient.preferences_url:
        recipient = dataclasses.replace(recipient, preferences_url=recipient.unsubscribe_url)
    for field in (f for f in FIELDS if f in _URL_FIELDS):  # a fixed order, for the message
        url = getattr(recipient, field)
        if not url.startswith(("https://", "http://")) or _SPACE.search(url):
            raise ValueError(f"{field} must be an absolute http(s) URL, got {url!r}")
    name = " ".join(recipient.name.split()) or fallback_name
    first = " ".join(recipient.first_name.split())[:60]
    named, plain = greetings
    greeting = named.replace("{name}", first) if first and named else plain
    raw = (
        name,
        recipient.email,
        recipient.unsubscribe_url,
        recipient.view_online_url,
        recipient.preferences_url,
        greeting,
    )
    if for_html:
        return tuple(html.escape(v, quote=True) for v in raw)
    return tuple(" ".join(v.split()) for v in raw)
