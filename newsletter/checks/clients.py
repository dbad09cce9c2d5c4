"""Client support: the HTML and CSS features the rendered email uses that a target client
(NEWSLETTER_TARGET_CLIENTS) does not support, by the caniemail.com data kept in
caniemail.json (MIT licence; scripts/refresh_caniemail.py refreshes it).

Features are found in the finished HTML: its tags and attributes, the properties and
values of its inline styles and <style> blocks, their at-rules and selectors. A feature a
theme uses on purpose, knowing a client ignores it (rounded corners Outlook squares
off), is listed under `degrades_gracefully` in its theme.yaml and not reported.
"""

from __future__ import annotations

import functools
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from newsletter.checks import Subject

DATA = Path(__file__).with_name("caniemail.json")

# Short names for the clients people mean, as caniemail's family/platform keys. gmail is
# Gmail's webmail and apps; its mobile webmail, which keeps no <style> at all, is
# gmail-mobile-webmail.
ALIASES = {
    "gmail": ("gmail/desktop-webmail", "gmail/ios", "gmail/android"),
    "outlook-windows": ("outlook/windows",),
    "outlook-macos": ("outlook/macos",),
    "outlook-com": ("outlook/outlook-com",),
}

_DECLARATION = re.compile(r"(?<![\w-])(-?[a-z][a-z-]*)\s*:\s*([^;{}]+)", re.I)
_UNIT = re.compile(r"(?<![\w#.-])\d*\.?\d+(%|(?:px|em|rem|pt|vh|vw|ch|ex)\b)")
_PSEUDO = re.compile(r"(?<!:)::?([a-z-]+)")


@functools.lru_cache(maxsize=1)
def data() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return loaded


@functools.lru_cache(maxsize=1)
def _support_keys() -> tuple[str, ...]:
    """Every family/platform the data knows."""
    return tuple(
        sorted({key for feature in data()["features"].values() for key in feature["support"]})
    )


def client_keys(names: list[str]) -> dict[str, list[str]]:
    """Each client name, and the caniemail family/platform keys it stands for: a family
    (gmail: every platform), family-platform (outlook-windows), or an alias."""
    keys = _support_keys()
    found: dict[str, list[str]] = {}
    for name in names:
        name = name.strip().lower()
        if name in ALIASES:
            found[name] = list(ALIASES[name])
            continue
        matching = [k for k in keys if k.split("/")[0] == name or k.replace("/", "-") == name]
        found[name] = matching
    return found


def known_clients() -> list[str]:
    """Every name client_keys() understands."""
    keys = _support_keys()
    families = {key.split("/")[0] for key in keys}
    return sorted(families | {key.replace("/", "-") for key in keys} | set(ALIASES))


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.features: dict[str, str] = {}
        self.styles: list[str] = []
        self.inline: list[str] = []
        self._in_style = False

    def see(self, feature: str, evidence: str) -> None:
        self.features.setdefault(feature, evidence)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.see(f"html-{tag}", f"<{tag}>")
        if re.fullmatch(r"h[1-6]", tag):
            self.see("html-h1-h6", f"<{tag}>")
        if tag in ("ul", "ol", "li"):
            self.see("html-lists", f"<{tag}>")
        if tag == "style":
            self._in_style = True
        if tag == "a":
            href = values.get("href") or ""
            if href.startswith("mailto:"):
                self.see("html-mailto-links", "mailto:")
            elif href.startswith("#"):
                self.see("html-anchor-links", 'href="#')
        if tag == "img":
            extension = (values.get("src") or "").rsplit(".", 1)[-1].lower()
            self.see(f"image-{'jpg' if extension == 'jpeg' else extension}", f".{extension}")
        if tag == "meta" and values.get("name") == "color-scheme":
            self.see("html-meta-color-scheme", 'name="color-scheme"')
        for name, value in values.items():
            if name == "style" and value:
                self.inline.append(value)
            elif name == "loading":
                self.see("html-loading-attribute", f"{name}=")
            else:
                self.see(f"html-{name}", f'{name}="')

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, text: str) -> None:
        if self._in_style:
            self.styles.append(text)

    def handle_comment(self, text: str) -> None:
        self.see("html-comments", "<!--")

    def handle_decl(self, decl: str) -> None:
        self.see("html-doctype", "<!doctype")


def _css(features: dict[str, str], css: str, *, block: bool) -> None:
    def see(feature: str, evidence: str) -> None:
        features.setdefault(feature, evidence)

    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    for media in re.findall(r"@media([^{]*)\{", css):
        see("css-at-media", "@media")
        if "prefers-color-scheme" in media:
            see("css-at-media-prefers-color-scheme", "prefers-color-scheme")
    if block:
        for selectors in re.findall(r"([^{}@]+)\{", css):
            for selector in selectors.split(","):
                selector = selector.strip()
                if not selector or selector.startswith("@"):
                    continue
                for pseudo in _PSEUDO.findall(re.sub(r"\[[^\]]*\]", "", selector)):
                    kind = "element" if f"::{pseudo}" in selector else "class"
                    see(f"css-pseudo-{kind}-{pseudo}", f":{pseudo}")
                if "[" in selector:
                    see("css-selector-attribute", selector)
                if ">" in selector:
                    see("css-selector-child", selector)
                if "+" in selector:
                    see("css-selector-adjacent-sibling", selector)
                if "~" in selector:
                    see("css-selector-general-sibling", selector)
    for prop, value in _DECLARATION.findall(css):
        prop, value = prop.lower(), value.strip().lower()
        see(f"css-{prop}", f"{prop}:")
        if prop == "display":
            see(f"css-display-{value.split()[0]}", f"display:{value}")
        if "!important" in value:
            see("css-important", "!important")
        for unit in _UNIT.findall(value):
            see(f"css-unit-{'percent' if unit == '%' else unit}", f"{prop}: {value}")
        for function in ("rgb", "rgba", "linear-gradient", "radial-gradient", "calc", "var"):
            if f"{function}(" in value:
                name = {"calc": "css-unit-calc", "var": "css-variables"}.get(
                    function, f"css-{function}"
                )
                see(name, f"{function}(")


def features_of(html: str) -> dict[str, str]:
    """The caniemail features the HTML uses, each with a piece of evidence."""
    parser = _Html()
    parser.feed(html)
    found = dict(parser.features)
    for block in parser.styles:
        _css(found, block, block=True)
    for style in parser.inline:
        _css(found, style, block=False)
    return found


def unsupported(html: str, clients: list[str]) -> list[tuple[str, str, list[str]]]:
    """(feature, evidence, the clients that do not support it) for each feature of the
    HTML that a client does not support in its latest version tested."""
    features = data()["features"]
    keys = client_keys(clients)
    result = []
    for feature, evidence in sorted(features_of(html).items()):
        known = features.get(feature)
        if known is None:
            continue
        refusing = []
        for name, wanted in keys.items():
            no = [k for k in wanted if known["support"].get(k, "u").startswith("n")]
            if no and len(no) < len(wanted):  # some of the family's platforms
                refusing.append(f"{name} ({', '.join(k.split('/')[1] for k in no)})")
            elif no:
                refusing.append(name)
        if refusing:
            result.append((feature, evidence, refusing))
    return result


def check(s: Subject) -> None:
    from newsletter.render import theme_settings

    theme, template = theme_settings(s.settings, s.issue_file.issue.template)
    accepted = (
        set((theme.get("degrades_gracefully") or {}).keys())
        if isinstance(theme.get("degrades_gracefully"), dict)
        else set(theme.get("degrades_gracefully") or [])
    )
    lines = template.read_text(encoding="utf-8").splitlines() if template.is_file() else []
    features = data()["features"]
    names = s.settings.client_list()
    unknown = [name for name, keys in client_keys(names).items() if not keys]
    for name in unknown:
        s.add(
            "client.unknown",
            f"NEWSLETTER_TARGET_CLIENTS: '{name}' is not a client of the caniemail data "
            f"(such as {', '.join(known_clients()[:8])}...)",
        )
    known = [name for name in names if name not in unknown]
    for feature, evidence, refusing in unsupported(s.rendered.html, known):
        if feature in accepted:
            continue
        # From the theme (or the MJML it compiles to): the template, at the line that
        # writes it when one does.
        where: dict[str, Any] = {"file": str(template)}
        words = evidence.split(":")[0].strip('<>"= ').split()
        needle = words[0] if words else ""
        for number, line in enumerate(lines, 1):
            if needle and needle in line:
                where = {"file": str(template), "line": number}
                break
        s.add(
            "client.unsupported",
            f"{features[feature]['title']} ({feature}) is not supported by "
            f"{', '.join(refusing)}; if the email reads well without it, list it under "
            "degrades_gracefully in theme.yaml",
            where,
        )
