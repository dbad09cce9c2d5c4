"""The three rendering stages: Jinja to MJML, MJML to HTML, CSS inlining.

Each stage turns its library's failure into a TemplateError or RenderError that names
the template and the line.
"""

from __future__ import annotations

import logging
import re
import traceback
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from mjml import mjml2html
from premailer import Premailer, merge_style

from newsletter.errors import Location, RenderError, TemplateError


def _skip_inline_style_validation() -> None:
    """premailer 3.10 ignores disable_validation when it re-reads an element's own style
    attribute (merge_styles calls csstext_to_pairs with validate left at True). cssutils'
    validation compiles some 25 large regexes on first use: about 70 ms of a cold build,
    for output that is byte-identical (a test checks that on the sample)."""
    original = merge_style.csstext_to_pairs
    if getattr(original, "unvalidated", False):
        return

    def unvalidated(csstext: str, validate: bool = False) -> list[tuple[str, str]]:
        return original(csstext, validate=False)  # type: ignore[no-any-return]

    unvalidated._lock = original._lock  # type: ignore[attr-defined]  # the body looks it up by name
    unvalidated.unvalidated = True  # type: ignore[attr-defined]
    unvalidated.original = original  # type: ignore[attr-defined]
    merge_style.csstext_to_pairs = unvalidated


_skip_inline_style_validation()


_AUTOESCAPED = (".mjml.j2", ".html.j2", ".mjml", ".html")


def _autoescape(name: str | None) -> bool:
    return name is None or name.endswith(_AUTOESCAPED)


@lru_cache(maxsize=8)
def environment(templates_dir: Path) -> jinja2.Environment:
    """A Jinja environment over one templates folder: autoescaped, strict about names."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=True,
        # Compiled templates are kept in a per-user temporary folder, keyed by source checksum.
        bytecode_cache=jinja2.FileSystemBytecodeCache(),
    )


def render_template(templates_dir: Path, name: str, context: dict[str, Any]) -> str:
    """Render one template, reporting any failure as templates/NAME:LINE: message."""
    env = environment(templates_dir)
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(
            f"template not found: {exc.name}", Location(str(templates_dir / str(exc.name)))
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        where = Location(str(templates_dir / (exc.name or name)), exc.lineno)
        raise TemplateError(f"template syntax error: {exc.message}", where) from None
    except Exception as exc:
        # Jinja rewrites tracebacks so that template frames carry the template's own line.
        line = None
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename.endswith((*_AUTOESCAPED, ".j2", ".txt")):
                line = frame.lineno
                break
        message = exc.message if isinstance(exc, jinja2.TemplateError) else str(exc)
        raise TemplateError(
            f"template error: {message}", Location(str(templates_dir / name), line)
        ) from None


_POSITION = re.compile(r"^(?P<what>.*?)(?: at position (?P<start>\d+):(?P<end>\d+))?$")


def compile_mjml(source: str, template: str) -> str:
    """MJML to HTML. MJML offsets become a line and column in the Jinja output."""
    try:
        html = mjml2html(source, disable_comments=True, fonts={})
    except ValueError as exc:
        match = _POSITION.match(str(exc))
        what = match.group("what") if match else str(exc)
        if match and match.group("start"):
            offset = int(match.group("start"))
            line = source.count("\n", 0, offset) + 1
            column = offset - (source.rfind("\n", 0, offset) + 1) + 1
            snippet = source[offset : int(match.group("end"))]
            raise TemplateError(
                f"MJML error: {what} near '{snippet}' (line {line}, column {column} of the "
                "MJML this template produced)",
                Location(template),
            ) from None
        raise TemplateError(f"MJML error: {what}", Location(template)) from None
    # mjml-python passes unknown tags through silently.
    leftover = re.search(r"<mj-[a-z-]+", html)
    if leftover:
        raise TemplateError(f"MJML error: unknown tag {leftover.group(0)}>", Location(template))
    return html


def _important_in_media(html: str) -> int:
    count = 0
    for block in re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.S | re.I):
        for media in re.findall(r"@media[^{]*\{(.*?\})\s*\}", block, flags=re.S):
            count += media.count("!important")
    return count


# MJML's reset (table, td { border-collapse...; mso-table-lspace... } and kin) is for
# clients that read <style> in the head anyway (Outlook, Apple Mail, Gmail): inlined, the
# same 70 characters went onto every table and cell, about 9 KB of the sample.
_MJML_RESET = '<style type="text/css">\n#outlook a {'


def inline_css(html: str) -> str:
    """Inline CSS with premailer, set up against the pitfalls measured on this output."""
    html = html.replace(_MJML_RESET, _MJML_RESET.replace(">", ' data-premailer="ignore">', 1), 1)
    inliner = Premailer(
        html,
        # The default strips !important inside media queries and breaks the mobile layout.
        strip_important=False,
        keep_style_tags=True,
        allow_network=False,
        allow_loading_external_files=False,
        disable_link_rewrites=True,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
        remove_classes=False,
        # MJML floats no images; the option re-parses styles with validation on regardless.
        align_floating_images=False,
        # premailer copies a CSS width or height into the attribute: an image's
        # style="width:100%" would replace its width="536", and Outlook on Windows, which
        # reads the attribute, would show a 1072-pixel file at 1072 pixels.
        disable_basic_attributes=["width", "height"],
    )
    out = str(inliner.transform())
    # premailer drops MJML's lowercase doctype, which sends clients into quirks mode.
    if not out.lstrip().lower().startswith("<!doctype"):
        out = "<!doctype html>\n" + out
    return out


def check_html(html: str, compiled: str, template: str) -> None:
    """Structural checks on the finished HTML."""
    if "<mj-" in html:
        raise RenderError("MJML tags left in the output", Location(template))
    if not html.lstrip().lower().startswith("<!doctype html>"):
        raise RenderError("the output has no doctype", Location(template))
    before, after = _important_in_media(compiled), _important_in_media(html)
    if after < before:
        raise RenderError(
            f"!important was stripped from media queries ({before} before inlining, {after} "
            "after); the mobile layout would break",
            Location(template),
        )
