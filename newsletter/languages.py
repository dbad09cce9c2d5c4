"""Languages: which edition or catalog serves a language, its writing direction, and dates
in its words (Babel).

A language is a tag such as es, pt or pt-BR. A reader whose language has no edition of
its own gets the nearest one: pt-BR, then pt, then the issue's own language.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.errors import Location, NewsletterError

if TYPE_CHECKING:
    from babel import Locale


def canonical(tag: str) -> str:
    """es, pt-BR, zh-Hant-TW: the primary language in lower case, a region in upper."""
    parts = tag.strip().replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        out.append(part.upper() if len(part) == 2 else part.title() if len(part) == 4 else part)
    return "-".join(out)


def _nearest(tag: str) -> list[str]:
    """pt-BR, then pt."""
    parts = canonical(tag).split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def chain(tag: str | None, last: str) -> list[str]:
    """The languages to try for tag, nearest first: pt-BR, pt, then last."""
    return list(dict.fromkeys([*(_nearest(tag) if tag else []), canonical(last)]))


def pick(tag: str | None, available: Iterable[str], last: str) -> str:
    """The nearest of available for tag, by chain(); last when none is nearer."""
    have = {canonical(a): a for a in available}
    for candidate in chain(tag, last):
        if candidate in have:
            return have[candidate]
    return last


@functools.lru_cache(maxsize=64)
def _locale(tag: str) -> Locale | None:
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(canonical(tag), sep="-")
    except (UnknownLocaleError, ValueError):
        return None


def known(tag: str) -> bool:
    """Whether Babel knows the language (so its dates and direction are right)."""
    return _locale(tag) is not None


def direction(tag: str) -> str:
    """rtl for languages written right to left (ar, he, fa, ur...), ltr otherwise."""
    locale = _locale(tag)
    order = getattr(locale, "character_order", "left-to-right")
    return "rtl" if order == "right-to-left" else "ltr"


def month(day: dt.date, tag: str) -> str:
    """The month and year in the language's words: May 2021, mayo de 2021."""
    from babel.dates import format_skeleton

    locale = _locale(tag) or _locale("en")
    return format_skeleton("yMMMM", day, locale=locale)


def long_date(day: dt.date, tag: str) -> str:
    """31 May 2021, 31 de mayo de 2021."""
    from babel.dates import format_date

    locale = _locale(tag) or _locale("en")
    return format_date(day, "long", locale=locale)


def name(tag: str, in_language: str | None = None) -> str:
    """The language's own name (español), or its name in another language."""
    locale = _locale(tag)
    if locale is None:
        return tag
    shown = locale.get_display_name(_locale(in_language or tag) or locale)
    return str(shown or tag)


def catalog(
    folder: Path, language: str, read: Callable[[Path], dict[str, Any]]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The strings of folder/LANG.yaml for language, nearest first (pt-BR, pt), each one
    it lacks in English (en.yaml); and the keys that fell back to English. read loads a
    file into a mapping ({} when it does not exist)."""
    found: dict[str, str] = {}
    tried = chain(language, "en")
    for tag in reversed(tried):
        path = folder / f"{tag}.yaml"
        for key, value in read(path).items():
            if not isinstance(value, str):
                raise NewsletterError(f"the string '{key}' is not text", Location(str(path)))
            found[str(key)] = value
    if canonical(language).split("-")[0] == "en":
        return found, ()
    own: set[str] = set()
    for tag in tried[:-1]:
        own |= set(read(folder / f"{tag}.yaml"))
    return found, tuple(sorted(set(read(folder / "en.yaml")) - own))


WORDS = Path(__file__).parent / "words"


@functools.lru_cache(maxsize=32)
def _read_words(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


class Words:
    """The words of the public pages and the confirmation email in one language."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.strings, _ = catalog(WORDS, language, _read_words)

    def __call__(self, key: str, **values: object) -> str:
        """The string for key with {name}-style values filled in (plain text: pages
        escape it as they show it)."""
        text = self.strings.get(key, key)
        for name, value in values.items():
            text = text.replace(f"{{{name}}}", str(value))
        return text

    @property
    def direction(self) -> str:
        return direction(self.language)


def spoken() -> list[str]:
    """The languages the public pages and the confirmation email speak."""
    return sorted(p.stem for p in WORDS.glob("*.yaml"))


@functools.lru_cache(maxsize=32)
def words(language: str | None) -> Words:
    """The words in the spoken language nearest language (English when none is)."""
    return Words(pick(language, spoken(), "en"))


def negotiate(accept_language: str, available: Iterable[str], last: str) -> str:
    """The best of available for an Accept-Language header (RFC 9110: tags with quality
    weights), or last."""
    wanted: list[tuple[float, int, str]] = []
    for n, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and quality > 0 and len(tag) <= 35:
            wanted.append((-quality, n, tag))
    have = list(available)
    for _, _, tag in sorted(wanted):
        for candidate in _nearest(tag):
            if candidate in have:
                return candidate
    return last
