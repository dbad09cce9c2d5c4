"""Editions: translations beside the issue, their freshness, the fallback chain, and the
command that starts and updates them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter import languages
from newsletter.cli import app
from newsletter.errors import InputError, NewsletterError
from newsletter.issue import load_issue
from newsletter.services import issues
from newsletter.settings import Settings
from tests.conftest import ROOT, SAMPLE, copy_sample

runner = CliRunner()
SPANISH = SAMPLE.with_name("2021-05.es.yaml")


@pytest.fixture
def bilingual(tmp_path: Path) -> Path:
    """The sample and its Spanish edition, in a folder of their own."""
    source = copy_sample(tmp_path / "issues")
    shutil.copy(SPANISH, source.with_name(SPANISH.name))
    return source


def settings() -> Settings:
    return Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]


def rules(path: Path) -> list[str]:
    report = issues.check(path, settings())
    return [f"{f.rule} {Path(f.file or '').name}:{f.line}: {f.message}" for f in report.findings]


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("es", "es"),
        ("es-MX", "es"),
        ("pt-br", "pt-BR"),
        ("pt-PT", "pt"),
        ("pt", "pt"),
        ("fr", "en"),
        (None, "en"),
        ("", "en"),
    ],
)
def test_the_fallback_chain(language: str | None, expected: str) -> None:
    assert languages.pick(language, ["en", "es", "pt", "pt-BR"], "en") == expected


def test_the_sample_has_a_complete_fresh_spanish_edition() -> None:
    assert rules(SAMPLE) == []
    everything = issues.editions(load_issue(SAMPLE))
    assert list(everything) == ["en", "es"]
    spanish = everything["es"].issue
    assert spanish.language == "es"
    assert spanish.subject == "Noticias Regionales sobre Migración: mayo de 2021"
    source = load_issue(SAMPLE).issue
    for mine, theirs in zip(spanish.articles(), source.articles(), strict=True):
        assert mine.title != theirs.title and mine.link == theirs.link
        assert (mine.image is None) == (theirs.image is None)
        if mine.image and theirs.image:
            assert mine.image.src == theirs.image.src and mine.image.alt != theirs.image.alt


def test_a_changed_source_makes_its_translated_item_stale(bilingual: Path) -> None:
    text = bilingual.read_text(encoding="utf-8")
    bilingual.write_text(text.replace("Labour migration", "Work and migration"), "utf-8")
    found = rules(bilingual)
    assert len(found) == 1
    [stale] = found
    line = next(
        n
        for n, row in enumerate(SPANISH.read_text(encoding="utf-8").splitlines(), 1)
        if row.startswith("- source:")
    )
    assert stale.startswith(f"translation.stale 2021-05.es.yaml:{line}: the section")
    assert "changed in the source since it was translated; update it and set source: " in stale
    # The report is a warning: the Spanish edition still goes out, as translated.
    assert not issues.check(bilingual, settings()).errors


def test_items_missing_from_a_translation_are_errors_at_their_place(bilingual: Path) -> None:
    spanish = bilingual.with_name("2021-05.es.yaml")
    lines = spanish.read_text(encoding="utf-8").splitlines(keepends=True)
    # Take the last article's summary out, and mark the first article still to do.
    at = next(n for n, row in enumerate(lines) if row.lstrip().startswith("- source: dc437f71"))
    lines.insert(at + 1, "    todo: true\n")
    text = "".join(lines)
    text = text[: text.rindex("    summary:")] + text[text.rindex("    cta:") :]
    spanish.write_text(text, encoding="utf-8")
    found = rules(bilingual)
    assert [f.split(":")[0] for f in found] == [
        "translation.missing 2021-05.es.yaml",
        "translation.missing 2021-05.es.yaml",
    ]
    assert found[0].endswith(
        "the article 'RCM countries exchange good practices on recrui…' is still to translate"
    )
    assert found[1].endswith("is still to translate (no summary)")
    assert issues.check(bilingual, settings()).errors


def test_a_translated_item_the_source_no_longer_has_is_reported(bilingual: Path) -> None:
    text = bilingual.read_text(encoding="utf-8")
    start = text.index('      - title: "RCM Member Countries')
    end = text.index("  - title: Security and protection")
    bilingual.write_text(text[:start] + "\n" + text[end:], encoding="utf-8")
    found = rules(bilingual)
    kinds = sorted(f.split(" ")[0] for f in found)
    assert "translation.orphan" in kinds
    [orphan] = [f for f in found if f.startswith("translation.orphan")]
    assert "this article translates nothing: the source's section 'Labour migration' has 1" in (
        orphan
    )


def test_a_broken_translation_names_its_line_and_the_source_item(bilingual: Path) -> None:
    spanish = bilingual.with_name("2021-05.es.yaml")
    text = spanish.read_text(encoding="utf-8")
    spanish.write_text(text.replace("    cta: Más sobre la nueva unidad", "    cta: ''"), "utf-8")
    with pytest.raises(InputError) as info:
        issues.editions(load_issue(bilingual))
    [line] = info.value.lines()
    row = next(n for n, r in enumerate(text.splitlines(), 1) if "Más sobre la nueva unidad" in r)
    assert line.startswith(f"{spanish}:{row}:")
    assert "sections[1].articles[1].cta" in line
    assert line.endswith(
        "(translates the article 'Panama expands border security services to guar…')"
    )


def test_a_translation_is_not_an_issue_of_its_own() -> None:
    with pytest.raises(NewsletterError, match=r"this is the 'es' translation of 2021-05\.yaml"):
        load_issue(SPANISH)


def test_translate_starts_a_file_then_adds_what_it_lacks(tmp_path: Path) -> None:
    source = copy_sample(tmp_path / "issues")
    result = runner.invoke(app, ["translate", str(source), "--lang", "pt-br"])
    assert result.exit_code == 0, result.output
    target = source.with_name("2021-05.pt-BR.yaml")
    assert result.stdout == f"Created {target}: 13 items to translate (todo: true).\n"
    found = rules(source)
    missing = [f for f in found if f.startswith("translation.missing 2021-05.pt-BR.yaml")]
    assert len(missing) == 13
    # The default theme speaks English and Spanish: its words are English in pt-BR.
    [words] = [f for f in found if f not in missing]
    assert words.startswith("theme.strings 2021-05.yaml:None: the 'pt-BR' edition: the theme")
    # The translator does the issue's own texts; the source gains an article.
    text = target.read_text(encoding="utf-8").replace("todo: true\n", "", 1)
    target.write_text(text, encoding="utf-8")
    assert len(rules(source)) == 12 + 1
    issue_text = source.read_text(encoding="utf-8").replace(
        "        cta: More on the free course\n",
        "        cta: More on the free course\n"
        "      - title: One more\n        summary: Text.\n        link: https://example.org/x\n",
    )
    source.write_text(issue_text, encoding="utf-8")
    again = runner.invoke(app, ["translate", str(source), "--lang", "pt-BR"])
    assert again.stdout == f"Updated {target}: 1 items added to translate.\n"
    assert target.read_text(encoding="utf-8").count("todo: true\n") == 13
    assert "One more" in target.read_text(encoding="utf-8")
    nothing = runner.invoke(app, ["translate", str(source), "--lang", "pt-BR"])
    assert nothing.stdout.startswith(f"{target} has every item")


def test_translate_refuses_the_source_language(tmp_path: Path) -> None:
    source = copy_sample(tmp_path / "issues")
    result = runner.invoke(app, ["translate", str(source), "--lang", "en"])
    assert result.exit_code == 1
    assert "is already in 'en'" in result.stderr
    bad = runner.invoke(app, ["translate", str(source), "--lang", "not a language"])
    assert bad.exit_code == 1 and "--lang:" in bad.stderr
