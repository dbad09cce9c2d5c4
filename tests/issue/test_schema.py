"""The issue schema and its errors: every problem at its exact line and column."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.errors import InputError, NewsletterError
from newsletter.issue import load_issue, parse_issue
from tests.conftest import CONTENT, MINIMAL_ISSUE, SAMPLE, SHARED_CONTENT

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bad_issues"
BAD_FILES = sorted(CORPUS.glob("*.yaml"))


def test_corpus_is_not_empty() -> None:
    assert len(BAD_FILES) >= 8


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.stem)
def test_bad_issue_reports_every_problem_at_its_place(path: Path) -> None:
    expected = [f"{path}:{line}" for line in path.with_suffix(".expected").read_text().splitlines()]
    with pytest.raises(NewsletterError) as info:
        load_issue(path)
    assert info.value.lines() == expected


def test_sample_has_every_news_item_with_its_exact_title() -> None:
    raw = CONTENT.read_text(encoding="utf-8")
    blocks = [b.strip() for b in re.split(r"\n\s*\n", raw) if b.strip()]
    titles = blocks[0::2]
    issue = load_issue(SAMPLE).issue
    assert sorted(a.title for a in issue.articles()) == sorted(titles)
    assert len(titles) == 9


def test_content_copy_matches_the_shared_content() -> None:
    if not SHARED_CONTENT.exists():
        pytest.skip("no shared content beside this checkout")
    assert CONTENT.read_bytes() == SHARED_CONTENT.read_bytes()


def test_minimal_issue_gets_defaults() -> None:
    issue = parse_issue(MINIMAL_ISSUE, "x.yaml").issue
    assert issue.audience == "everyone"
    assert issue.template == "default"
    assert issue.language == "en"
    # The button's label and the nameless greeting come from the theme, in the language.
    assert issue.sections[0].articles[0].cta is None and issue.name_fallback is None


def test_yaml_words_stay_text() -> None:
    """`subject: No` is the word No, not the boolean false."""
    issue = parse_issue(MINIMAL_ISSUE.replace("subject: Hello", "subject: No"), "x.yaml").issue
    assert issue.subject == "No"


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ('"a\\nBcc: x@example.org"', "must be on one line (it goes into a mail header)"),
        ('"a\\rb"', "must be on one line (it goes into a mail header)"),
        ('"a\\0b"', "must not contain control characters (it goes into a mail header)"),
        (
            '"=?UTF-8?Q?=0A?=x"',
            "must not contain '=?' (mail programs read it as an encoded header)",
        ),
    ],
)
def test_header_values_refuse_injection(subject: str, message: str) -> None:
    text = MINIMAL_ISSUE.replace("subject: Hello", f"subject: {subject}")
    with pytest.raises(InputError) as info:
        parse_issue(text, "x.yaml")
    assert info.value.lines() == [f"x.yaml:1:10: subject: {message}"]


def test_image_needs_alt_text() -> None:
    text = MINIMAL_ISSUE.replace(
        "        link: https://example.org/one\n",
        "        link: https://example.org/one\n"
        "        image:\n"
        "          src: https://example.org/a.png\n"
        "          alt: ''\n",
    )
    with pytest.raises(InputError) as info:
        parse_issue(text, "x.yaml")
    assert info.value.lines() == [
        "x.yaml:13:16: sections[0].articles[0].image.alt: must not be empty"
    ]


def test_markdown_images_and_relative_links_are_refused() -> None:
    text = MINIMAL_ISSUE.replace("summary: Text.", "summary: '[a](page.html)'")
    with pytest.raises(InputError) as info:
        parse_issue(text, "x.yaml")
    assert info.value.lines() == [
        "x.yaml:9:18: sections[0].articles[0].summary: the link 'page.html' is not a full web "
        "address; write it as https://..."
    ]


def test_aliases_cannot_blow_up() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += (
            f"{'abcdefghi'[i]}: &{'abcdefghi'[i]} ["
            + ", ".join([f"*{'abcdefghi'[i - 1]}"] * 10)
            + "]\n"
        )
    with pytest.raises(NewsletterError, match="too many values"):
        parse_issue(bomb, "bomb.yaml")


@pytest.mark.parametrize("name", ["bad name.yaml", "x=?y.yaml", "a\u2028b.yaml", "-x.yaml"])
def test_a_file_name_that_cannot_be_a_slug_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(MINIMAL_ISSUE, encoding="utf-8")
    with pytest.raises(NewsletterError) as info:
        load_issue(path)
    assert info.value.lines() == [
        f"{path}: the file name '{path.stem}' cannot name an issue; use letters, digits, "
        "dashes and underscores, such as 2021-06.yaml"
    ]


@pytest.mark.parametrize(
    "link",
    ["javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,hi", "file:///x", "tel:1"],
)
def test_markdown_links_take_only_https_http_and_mailto(link: str) -> None:
    text = MINIMAL_ISSUE.replace("intro: Hi.", f"intro: 'See [this]({link}).'")
    with pytest.raises(NewsletterError) as info:
        parse_issue(text, "x.yaml")
    scheme = link.split(":")[0].lower()
    assert info.value.lines() == [
        f"x.yaml:4:8: intro: the link '{link}' uses {scheme}:, which an email may not carry; "
        "links must be https://, http:// or mailto:"
    ]
