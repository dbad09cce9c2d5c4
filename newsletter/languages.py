"""Languages: which edition or catalog serves a language, its writing direction, and dates
in its words (Babel).

A language is a tag such as es, pt or pt-BR. A reader whose language has no edition of
its own gets the nearest one: pt-BR, then pt, then the issue's own language.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babel import Locale


def canonical(tag: str) -> str:
    """es, pt-BR, zh-Hant-TW: the primary language in lower case, a region in upper."""
    parts = tag.strip().replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        out.append(part.upper() if len(part) == 2 else part.title() if len(part) == 4 else part)
    return "-".join(out)


def chain(tag: str | None, last: str) -> list[str]:
    """The languages to try for tag, nearest first: pt-BR, pt, then last."""
    tried: list[str] = []
    if tag:
        parts = canonical(tag).split("-")
        tried = ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
    return list(dict.fromkeys([*tried, canonical(last)]))


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
