"""Field types shared by the issue schema, the settings and later the audience."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, StringConstraints

# Everything that can end or split a header line somewhere along the way: CR and LF,
# the other C0 controls and DEL, NEL (U+0085) and the Unicode line and paragraph
# separators, which str.splitlines() and some mail libraries treat as line breaks.
_LINE_BREAKS = "\r\n\x85\u2028\u2029\x0b\x0c\x1c\x1d\x1e"
_BREAK = re.compile(f"[{_LINE_BREAKS}]")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x80-\x9f\u2028\u2029]")


def header_problem(value: str) -> str | None:
    """Why value cannot go into a mail header, or None when it can.

    Python 3.11.7 writes an encoded word such as =?UTF-8?Q?=0A?= back out as a real
    newline (CVE-2024-6923), so '=?' is refused along with every line break and control.
    """
    if _BREAK.search(value):
        return "must be on one line (it goes into a mail header)"
    if _CONTROL.search(value):
        return "must not contain control characters (it goes into a mail header)"
    if "=?" in value:
        return "must not contain '=?' (mail programs read it as an encoded header)"
    return None


def header_safe(value: str) -> str:
    """value, or ValueError when it could split or smuggle a mail header."""
    problem = header_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def absolute_url(value: str) -> str:
    """An http(s) address with a host, written out in full."""
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if any(c.isspace() for c in value):
        raise ValueError(f"'{value}' contains a space; encode it as %20")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"'{value}' is not a full web address; write it as https://...")
    return value


_LOCAL_IMAGE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\.(?:jpe?g|png|gif|webp)", re.I)


def image_source(value: str) -> str:
    """An image's address (https://...) or a path to an image beside the issue file
    (images/2021-05/photo.jpg), never outside its folder."""
    value = value.strip()
    if "://" in value or value.startswith(("http:", "https:")):
        return absolute_url(value)
    if _LOCAL_IMAGE.fullmatch(value) and ".." not in value.split("/") and "//" not in value:
        return value
    raise ValueError(
        f"'{value}' is neither a full web address nor the path of an image beside the issue, "
        "such as images/photo.jpg"
    )


def is_local(source: str) -> bool:
    return "://" not in source


_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def language_tag(value: str) -> str:
    if not _LANGUAGE.fullmatch(value):
        raise ValueError(f"'{value}' is not a language code such as en, es or pt-BR")
    return value


def slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError(f"'{value}' is not a name; use letters, digits, dashes and underscores")
    return value


def ascii_address(address: str) -> str | None:
    """The address as plain SMTP can carry it (IDNA domain), or None when the part before
    the @ is not ASCII, which needs SMTPUTF8."""
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        return None
    if domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return None


HeaderText = Annotated[str, StringConstraints(min_length=1), AfterValidator(header_safe)]
AbsoluteURL = Annotated[str, AfterValidator(absolute_url)]
ImageSource = Annotated[str, AfterValidator(image_source)]
Slug = Annotated[str, AfterValidator(slug)]
Language = Annotated[str, AfterValidator(language_tag)]
