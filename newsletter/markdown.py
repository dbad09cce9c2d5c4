"""Editor Markdown to HTML and to plain text.

Raw HTML in Markdown is switched off, so editor text is always escaped; links must be
absolute because an email has no base URL.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

from newsletter.fields import absolute_url


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable(["image", "html_block", "html_inline"])
    return md


class _EveryLink(MarkdownIt):
    """The same parser without markdown-it's link filter, which silently turns a
    javascript: or data: link into plain text: validation must see every link written."""

    def validateLink(self, url: str) -> bool:
        return True


@lru_cache(maxsize=1)
def _every_link() -> MarkdownIt:
    md = _EveryLink("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable(["image", "html_block", "html_inline"])
    return md


def to_html(source: str) -> str:
    """Markdown to an HTML fragment, with editor text escaped."""
    return str(_parser().render(source)).strip()


def links(source: str) -> list[str]:
    """Every link target written in the Markdown, in order."""
    return [
        str(token.attrs.get("href", ""))
        for token in _inline_tokens(_parser().parse(source))
        if token.type == "link_open"
    ]


def check(source: str) -> None:
    """Raise ValueError for what an email cannot carry: relative links, and any scheme but
    https, http and mailto."""
    written = [
        str(token.attrs.get("href", ""))
        for token in _inline_tokens(_every_link().parse(source))
        if token.type == "link_open"
    ]
    for href in written:
        if href.lower().startswith("mailto:"):
            continue
        scheme = href.split(":", 1)[0].lower() if ":" in href else ""
        if scheme and scheme.isalpha() and scheme not in ("http", "https"):
            raise ValueError(
                f"the link '{href}' uses {scheme}:, which an email may not carry; "
                "links must be https://, http:// or mailto:"
            )
        try:
            absolute_url(href)
        except ValueError:
            raise ValueError(
                f"the link '{href}' is not a full web address; write it as https://..."
            ) from None


def _inline_tokens(tokens: list[Token]) -> Iterator[Token]:
    for token in tokens:
        if token.children:
            yield from token.children
        else:
            yield token


def to_text(source: str, width: int = 72) -> str:
    """Markdown to readable plain text: paragraphs wrapped, links written as URLs."""
    blocks: list[str] = []
    prefix = ""
    bullet_stack: list[str] = []
    joins_previous = False
    for token in _parser().parse(source):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            bullet_stack.append("- " if token.type == "bullet_list_open" else "1. ")
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            bullet_stack.pop()
            joins_previous = False
        elif token.type == "list_item_open":
            prefix = bullet_stack[-1] if bullet_stack else "- "
        elif token.type == "list_item_close":
            joins_previous = True
        elif token.type == "inline":
            text = _inline_text(token.children or [])
            indent = "  " * max(len(bullet_stack) - 1, 0)
            wrapped = _wrap(text, width, indent + prefix, indent + " " * len(prefix))
            if joins_previous and prefix and blocks:
                # Items of one list sit on consecutive lines.
                blocks[-1] += "\n" + wrapped
            else:
                blocks.append(wrapped)
            prefix = ""
            joins_previous = False
        elif token.type in ("code_block", "fence"):
            blocks.append(token.content.rstrip("\n"))
        elif token.type == "hr":
            blocks.append("-" * 20)
    return "\n\n".join(blocks)


def _inline_text(children: list[Token]) -> str:
    out: list[str] = []
    hrefs: list[str] = []
    starts: list[int] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type in ("softbreak",):
            out.append(" ")
        elif child.type == "hardbreak":
            out.append("\n")
        elif child.type == "link_open":
            hrefs.append(str(child.attrs.get("href", "")))
            starts.append(len(out))
        elif child.type == "link_close" and hrefs:
            href = hrefs.pop()
            label = "".join(out[starts.pop() :])
            if label.strip() != href.removeprefix("mailto:"):
                out.append(f" <{href}>")
    return "".join(out)


def _wrap(text: str, width: int, first: str, rest: str) -> str:
    lines: list[str] = []
    for i, part in enumerate(text.split("\n")):
        lines.extend(
            textwrap.wrap(
                part,
                width=width,
                initial_indent=first if i == 0 else rest,
                subsequent_indent=rest,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [first if i == 0 else rest]
        )
    return "\n".join(lines)
