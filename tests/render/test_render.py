"""The rendered email: structure, theme requirements, determinism and safe personalization."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from newsletter.errors import RenderError, TemplateError
from newsletter.issue import IssueFile, parse_issue
from newsletter.render import PersonalValues, RenderedIssue, render_issue
from newsletter.render.versions import sample_values as sample_recipient
from newsletter.settings import Settings
from tests.conftest import MINIMAL_ISSUE, ROOT, SAMPLE


class Page(HTMLParser):
    """Collects what the structure checks look at: text, tags with attributes, styles."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False
        self.feed(document)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.fixture(scope="module")
def personal(sample_rendered: RenderedIssue) -> tuple[str, str]:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    copy = sample_rendered.personalize(sample_recipient(settings, "2021-05"))
    return copy.html, copy.text


def test_every_article_title_is_in_html_and_text(
    sample_issue: IssueFile, personal: tuple[str, str]
) -> None:
    page_text = Page(personal[0]).plain()
    for article in sample_issue.issue.articles():
        assert article.title in page_text
        assert f"\n{article.title}\n" in personal[1]


def test_links_are_absolute_and_images_have_alt_text(personal: tuple[str, str]) -> None:
    page = Page(personal[0])
    hrefs = [a["href"] for a in page.all("a")]
    assert len(hrefs) > 20
    for href in hrefs:
        assert href and re.match(r"^(https://|mailto:)", href), href
    images = page.all("img")
    assert len(images) == 7  # the theme's logo and six article pictures
    for img in images:
        assert img["src"] and img["src"].startswith("https://newsletter.example.org/media/")
        assert img["width"].isdigit() and img["height"].isdigit(), img
    logo, *pictures = images
    assert logo["alt"] == ""  # beside the name it shows: screen readers skip it
    for img in pictures:
        assert img.get("alt"), img


def test_text_part_writes_links_out(sample_issue: IssueFile, personal: tuple[str, str]) -> None:
    text = personal[1]
    for article in sample_issue.issue.articles():
        assert f"{article.cta}: {article.link}\n" in text
    assert "Write to us at news@example.org before 20 June." in text
    assert "Unsubscribe: https://newsletter.example.org/unsubscribe/sample-token\n" in text
    assert "<p>" not in text and "**" not in text


def test_output_is_compiled_and_inlined(sample_rendered: RenderedIssue) -> None:
    out = sample_rendered.html
    assert out.startswith("<!doctype html>")
    assert "<mj-" not in out
    # Inlined: the theme's text colour sits on the elements themselves.
    assert re.search(r'<div style="[^"]*color:#1f2937', out)
    # !important survives inside the media queries that make the mobile layout.
    media = re.findall(r"@media[^{]*\{(.*?\})\s*\}", out, flags=re.S)
    assert any("max-width: 480px" in m or "!important" in m for m in media)
    mobile = [
        m
        for m in re.findall(
            r"@media only screen and \(max-width: 480px\)\s*\{(.*?\})\s*\}", out, re.S
        )
    ]
    assert mobile and all("!important" in m for m in mobile)
    dark = re.findall(r"@media \(prefers-color-scheme: dark\)\s*\{(.*?\})\s*\}", out, re.S)
    assert dark and dark[0].count("!important") >= 10


def test_theme_basics(sample_rendered: RenderedIssue, personal: tuple[str, str]) -> None:
    page = Page(sample_rendered.html)
    assert page.all("html")[0]["lang"] == "en"
    metas = {m.get("name"): m.get("content") for m in page.all("meta")}
    assert metas["color-scheme"] == "light dark"
    assert metas["viewport"] == "width=device-width, initial-scale=1"
    # The preheader comes first in the body, hidden, followed by filler.
    preheader = re.search(r'<div class="preheader"[^>]*>(.*?)</div>', sample_rendered.html, re.S)
    assert preheader
    assert html.unescape(preheader.group(1)).startswith(sample_rendered.preheader)
    assert html.unescape(preheader.group(1)).count("\u200c") >= 50
    # The footer links are visible words, not hidden in an image.
    anchors = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', personal[0])
    by_label = {label: href for href, label in anchors}
    assert by_label["Unsubscribe"] == "https://newsletter.example.org/unsubscribe/sample-token"
    assert by_label["View in your browser"] == "https://newsletter.example.org/archive/2021-05/"
    assert by_label["View this email in your browser"] == by_label["View in your browser"]


def _luminance(hex_color: str) -> float:
    channels = [int(hex_color.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_helper_matches_known_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_theme_colours_meet_wcag_aa(scheme: str, sample_rendered: RenderedIssue) -> None:
    theme = yaml.safe_load((ROOT / "templates" / "default" / "theme.yaml").read_text())
    palette = theme[scheme]
    for fg, bg in theme["pairs"]:
        ratio = contrast(palette[fg], palette[bg])
        assert ratio >= 4.5, f"{scheme}: {fg} on {bg} is {ratio:.2f}:1"
    # The palette is what the email really uses.
    for value in palette.values():
        assert value in sample_rendered.html, value


def test_render_is_deterministic(sample_issue: IssueFile, sample_rendered: RenderedIssue) -> None:
    again = render_issue(sample_issue, Settings(_env_file=None))  # type: ignore[call-arg]
    assert again.html == sample_rendered.html
    assert again.text == sample_rendered.text
    assert again.content_hash == sample_rendered.content_hash


def test_render_is_deterministic_across_processes(sample_rendered: RenderedIssue) -> None:
    code = (
        "from newsletter.issue import load_issue; from newsletter.render import render_issue;"
        "from newsletter.settings import Settings;"
        f"print(render_issue(load_issue({str(SAMPLE)!r}), Settings(_env_file=None)).content_hash)"
    )
    hashes = set()
    for seed in ("1", "2"):
        env = {"PYTHONHASHSEED": seed, "NEWSLETTER_TEMPLATES_DIR": str(ROOT / "templates")}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        hashes.add(out.stdout.strip())
    assert hashes == {sample_rendered.content_hash}


def test_content_hash_follows_the_content(settings: Settings) -> None:
    first = render_issue(parse_issue(MINIMAL_ISSUE, "a.yaml"), settings)
    second = render_issue(parse_issue(MINIMAL_ISSUE.replace("Text.", "Text!"), "a.yaml"), settings)
    assert len(first.content_hash) == 64
    assert first.content_hash != second.content_hash


RECIPIENT = PersonalValues(
    email="ana@example.org",
    name="<script>x</script> {{ 7*7 }}",
    first_name="<script>x</script> {{ 7*7 }}",
    unsubscribe_url="https://n.example.org/u/abc?x=1&y=2",
    view_online_url="https://n.example.org/archive/a/",
)


def test_editor_text_is_never_template_code(settings: Settings) -> None:
    text = MINIMAL_ISSUE.replace("title: One", "title: 'Seven {{ 7*7 }} <b>bold</b>'").replace(
        "summary: Text.", "summary: 'Sum {{ 7*7 }} {% if true %}yes{% endif %} <i>x</i>'"
    )
    copy = render_issue(parse_issue(text, "a.yaml"), settings).personalize(RECIPIENT)
    assert "49" not in copy.html and "49" not in copy.text
    assert "Seven {{ 7*7 }} &lt;b&gt;bold&lt;/b&gt;" in copy.html
    assert "Sum {{ 7*7 }} {% if true %}yes{% endif %} &lt;i&gt;x&lt;/i&gt;" in copy.html
    assert "<b>bold</b>" not in copy.html
    assert "Seven {{ 7*7 }} <b>bold</b>" in copy.text
    assert "Sum {{ 7*7 }} {% if true %}yes{% endif %} <i>x</i>" in copy.text


def test_subscriber_data_is_escaped_and_never_evaluated(settings: Settings) -> None:
    copy = render_issue(parse_issue(MINIMAL_ISSUE, "a.yaml"), settings).personalize(RECIPIENT)
    assert "Hello &lt;script&gt;x&lt;/script&gt; {{ 7*7 }}," in copy.html
    assert "<script>" not in copy.html
    assert "Hello <script>x</script> {{ 7*7 }}," in copy.text
    assert 'href="https://n.example.org/u/abc?x=1&amp;y=2"' in copy.html
    assert "Unsubscribe: https://n.example.org/u/abc?x=1&y=2\n" in copy.text


def test_a_name_that_looks_like_a_placeholder_stays_a_name(settings: Settings) -> None:
    rendered = render_issue(parse_issue(MINIMAL_ISSUE, "a.yaml"), settings)
    token = re.search(r"NLX[0-9a-f]{12}02", rendered.html)
    assert token, "the unsubscribe placeholder is in the rendered HTML"
    copy = rendered.personalize(
        PersonalValues(
            email="a@example.org",
            name=token.group(0),
            first_name=token.group(0),
            unsubscribe_url="https://n.example.org/u/1",
            view_online_url="https://n.example.org/v",
        )
    )
    assert f"Hello {token.group(0)}," in copy.text


def test_the_greeting_names_a_first_name_or_nobody(settings: Settings) -> None:
    def greeting(issue_text: str, **person: str) -> str:
        rendered = render_issue(parse_issue(issue_text, "a.yaml"), settings)
        copy = rendered.personalize(
            PersonalValues(
                email="a@example.org",
                unsubscribe_url="https://x.org/u",
                view_online_url="https://x.org/v",
                **person,
            )
        )
        [line] = [row for row in copy.text.splitlines() if row.startswith("Hello")]
        assert f">{line}</p>" in copy.html
        return line

    # Never the full name, which may be "Ríos, Karla".
    assert greeting(MINIMAL_ISSUE, name="Ríos, Karla") == "Hello,"
    assert greeting(MINIMAL_ISSUE, name="Ríos, Karla", first_name="Karla") == "Hello Karla,"
    # An issue's name_fallback is who the greeting addresses without a first name.
    assert greeting(MINIMAL_ISSUE + "name_fallback: friend\n") == "Hello friend,"


def test_personalize_refuses_a_url_that_is_not_one(settings: Settings) -> None:
    rendered = render_issue(parse_issue(MINIMAL_ISSUE, "a.yaml"), settings)
    with pytest.raises(ValueError, match="unsubscribe_url must be an absolute"):
        rendered.personalize(
            PersonalValues(
                email="a@x.org",
                unsubscribe_url="javascript:alert(1)",
                view_online_url="https://x.org/v",
            )
        )


def test_splicing_matches_plain_replacement(sample_rendered: RenderedIssue) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    recipient = sample_recipient(settings, "2021-05")
    nonce = re.search(r"NLX([0-9a-f]{12})", sample_rendered.html).group(1)  # type: ignore[union-attr]
    expected = sample_rendered.html
    for index, value in enumerate(
        (
            recipient.name,
            recipient.email,
            recipient.unsubscribe_url,
            recipient.view_online_url,
            recipient.preferences_url,
            f"Hello {recipient.first_name},",
        )
    ):
        expected = expected.replace(f"NLX{nonce}{index:02d}", html.escape(value))
    assert sample_rendered.personalize(recipient).html == expected


# Broken themes: errors name the template and the line.


@pytest.fixture
def theme_copy(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", target)
    return target


def _break(theme: Path, old: str, new: str) -> None:
    path = theme / "default" / "issue.mjml.j2"
    source = path.read_text()
    assert old in source
    path.write_text(source.replace(old, new, 1))


def _render_with(templates: Path) -> RenderedIssue:
    settings = Settings(templates_dir=templates, _env_file=None)  # type: ignore[call-arg]
    return render_issue(parse_issue(MINIMAL_ISSUE, "a.yaml"), settings)


def test_template_syntax_error_names_template_and_line(theme_copy: Path) -> None:
    _break(theme_copy, "{%- for section in sections %}", "{%- for section in sections %}{% if %}")
    line = next(
        i
        for i, text in enumerate(
            (theme_copy / "default" / "issue.mjml.j2").read_text().splitlines(), 1
        )
        if "{% if %}" in text
    )
    with pytest.raises(TemplateError) as info:
        _render_with(theme_copy)
    assert str(info.value) == (
        f"{theme_copy}/default/issue.mjml.j2:{line}: template syntax error: "
        "Expected an expression, got 'end of statement block'"
    )


def test_undefined_variable_names_template_and_line(theme_copy: Path) -> None:
    _break(theme_copy, "{{ issue.subject }}", "{{ issue.subjekt }}")
    with pytest.raises(TemplateError) as info:
        _render_with(theme_copy)
    line = next(
        n
        for n, text in enumerate((theme_copy / "default/issue.mjml.j2").read_text().splitlines(), 1)
        if "issue.subjekt" in text
    )
    assert str(info.value).startswith(
        f"{theme_copy}/default/issue.mjml.j2:{line}: template error: "
    )
    assert "subjekt" in str(info.value)


def test_mjml_error_names_template_and_place(theme_copy: Path) -> None:
    _break(
        theme_copy, '<mj-divider css-class="rule" />', '<mj-divider css-class="rule">x</mj-divider>'
    )
    with pytest.raises(TemplateError) as info:
        _render_with(theme_copy)
    message = str(info.value)
    assert message.startswith(f"{theme_copy}/default/issue.mjml.j2: MJML error: unexpected token")
    assert re.search(r"\(line \d+, column \d+ of the MJML this template produced\)$", message)


def test_unknown_mjml_tag_is_an_error(theme_copy: Path) -> None:
    _break(theme_copy, '<mj-divider css-class="rule" />', "<mj-fancy-divider />")
    with pytest.raises(TemplateError, match="MJML error: unknown tag <mj-fancy-divider>"):
        _render_with(theme_copy)


def test_theme_without_unsubscribe_link_is_refused(theme_copy: Path) -> None:
    path = theme_copy / "default" / "issue.txt.j2"
    path.write_text(
        path.read_text().replace('{{ say("unsubscribe") }}: {{ links.unsubscribe }}', "")
    )
    with pytest.raises(RenderError, match="has no unsubscribe link"):
        _render_with(theme_copy)


def test_unknown_theme_is_reported_at_the_issue(settings: Settings) -> None:
    issue = parse_issue(MINIMAL_ISSUE + "template: fancy\n", "issues/a.yaml")
    with pytest.raises(TemplateError) as info:
        render_issue(issue, settings)
    assert (
        str(info.value) == f"issues/a.yaml: template 'fancy' not found in {settings.templates_dir}/"
    )


def test_skipping_premailer_inline_validation_changes_nothing(
    sample_issue: IssueFile, settings: Settings
) -> None:
    """engine skips the cssutils validation premailer does on inline styles; prove that
    validated and unvalidated parsing agree on every inline style of the sample."""
    from premailer import merge_style

    from newsletter.render import engine, render_mjml

    compiled = engine.compile_mjml(render_mjml(sample_issue, settings), "sample")
    styles = set(re.findall(r'style="([^"]*)"', compiled))
    assert len(styles) > 30
    original = merge_style.csstext_to_pairs.original  # type: ignore[attr-defined]
    for style in styles:
        assert original(html.unescape(style), validate=True) == original(
            html.unescape(style), validate=False
        ), style
