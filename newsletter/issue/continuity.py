"""Months and years an issue mentions, against its date.

An issue's own words (subject, preheader, intro, closing) name its month: "May 2021",
"That is all for May", and often the next one ("news for the June issue before 20 June").
Starting the next issue from this one moves those names on by a month; a mention of any
other month, or of another year, is most likely left over from an earlier issue.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

# The issue's own texts, where its month is named; articles report on any date.
OWN_TEXTS = ("subject", "preheader", "intro", "closing")
_YEAR = re.compile(r"\b(19|20)\d{2}\b")


@functools.lru_cache(maxsize=16)
def _months(language: str) -> tuple[re.Pattern[str], dict[str, int]]:
    """A pattern finding month names in the language (in English too, which editors
    often leave in), and the month each name stands for."""
    from babel.dates import get_month_names

    from newsletter import languages

    names: dict[str, int] = {}
    for tag in dict.fromkeys([languages.canonical(language), "en"]):
        if not languages.known(tag):
            continue
        for context in ("format", "stand-alone"):
            locale = tag.replace("-", "_")
            for number, name in get_month_names("wide", context, locale=locale).items():
                # A language that capitalises its months (May) is matched as written, so
                # that "you may" is no month; one that does not (mayo), in any case.
                forms = {name, name.upper()}
                if name[:1].islower():
                    forms |= {name.capitalize()}
                for form in forms:
                    names[form] = number
    alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    return re.compile(rf"(?<!\w)({alternatives})(?!\w)"), names


def _next(day: dt.date) -> dt.date:
    return (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def disagreements(text: str, language: str, date: dt.date) -> list[tuple[int, str]]:
    """(offset in text, what it says) of every month or year that is neither the issue's
    nor the next month's."""
    pattern, names = _months(language)
    following = _next(date)
    fine_months = {date.month, following.month}
    fine_years = {date.year, following.year}
    found = []
    for match in pattern.finditer(text):
        if names[match.group(1)] not in fine_months:
            found.append((match.start(), f"'{match.group(1)}' is not the month of the issue"))
    for match in _YEAR.finditer(text):
        if int(match.group(0)) not in fine_years:
            found.append((match.start(), f"'{match.group(0)}' is not the year of the issue"))
    return sorted(found)


def shift(text: str, language: str, old: dt.date, new: dt.date) -> str:
    """text with its mentions of old's month (and the month after) moved to new's, and
    old's year to new's, keeping each word's capitals."""
    pattern, names = _months(language)
    moves = {old.month: new.month, _next(old).month: _next(new).month}
    years = {old.year: new.year, _next(old).year: _next(new).year}
    wanted = {number: name for name, number in _own_names(language).items()}

    def month(match: re.Match[str]) -> str:
        word = match.group(1)
        number = names[word]
        if number not in moves:
            return word
        name = wanted.get(moves[number], word)
        if word.isupper() and len(word) > 1:
            return name.upper()
        return name[:1].upper() + name[1:] if word[:1].isupper() else name

    def year(match: re.Match[str]) -> str:
        return str(years.get(int(match.group(0)), match.group(0)))

    return _YEAR.sub(year, pattern.sub(month, text))


def _own_names(language: str) -> dict[str, int]:
    """The month names of the language itself, as its dates write them."""
    from babel.dates import get_month_names

    from newsletter import languages

    tag = languages.canonical(language) if languages.known(language) else "en"
    names = get_month_names("wide", "format", locale=tag.replace("-", "_"))
    return {name: number for number, name in names.items()}


def shift_own_texts(text: str, language: str, old: dt.date, new: dt.date) -> str:
    """The YAML text of an issue with shift() applied to its own texts only (the
    top-level subject, preheader, intro and closing, each to the next top-level key)."""
    out: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        top = re.match(r"([A-Za-z_]+):", line)
        if top:
            inside = top.group(1) in OWN_TEXTS
        out.append(shift(line, language, old, new) if inside else line)
    return "".join(out)
