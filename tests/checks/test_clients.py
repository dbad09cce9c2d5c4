"""Client support: the features of the rendered email against the caniemail data, for the
target clients, at the template line that writes them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from newsletter.checks import check_issue
from newsletter.checks.clients import DATA, features_of, unsupported
from newsletter.issue import load_issue
from newsletter.render import render_issue
from newsletter.settings import Settings
from tests.conftest import ROOT, SAMPLE


@pytest.fixture
def theme(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", target)
    return target


def findings(settings: Settings) -> list[tuple[str, str, int | None, str]]:
    issue = load_issue(SAMPLE)
    report = check_issue(issue, render_issue(issue, settings), settings)
    return [
        (f.rule, Path(f.file or "").name, f.line, f.message)
        for f in report.findings
        if f.rule.startswith("client.")
    ]


def test_the_data_is_a_dated_copy_with_its_licence() -> None:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    assert data["date"] and len(data["commit"]) == 40
    assert "MIT" in data["source"] and len(data["features"]) > 250
    assert data["features"]["css-display-flex"]["support"]["outlook/windows"].startswith("n")


def test_features_are_found_in_tags_attributes_styles_and_selectors() -> None:
    found = features_of(
        '<!doctype html><html lang="en"><head><style>@media (prefers-color-scheme: dark) '
        "{ .a > b:hover { color: red !important } }</style></head><body>"
        '<div style="display:flex;border-radius:4px;width:50%">'
        '<a href="mailto:x@example.org" target="_blank">x</a><img src="a.webp"></div>'
        "</body></html>"
    )
    for feature in (
        "html-doctype",
        "html-lang",
        "html-style",
        "css-at-media",
        "css-at-media-prefers-color-scheme",
        "css-selector-child",
        "css-pseudo-class-hover",
        "css-important",
        "css-display-flex",
        "css-border-radius",
        "css-unit-percent",
        "html-mailto-links",
        "html-target",
        "image-webp",
    ):
        assert feature in found, feature
    assert "css-display-grid" not in found


def test_the_default_theme_passes_for_the_default_clients() -> None:
    settings = Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]
    assert findings(settings) == []
    # Without the features it knows degrade gracefully, the report has them all, each
    # at the template line that writes it where one does.
    issue = load_issue(SAMPLE)
    html = render_issue(issue, settings).html
    names = {f for f, _, _ in unsupported(html, settings.client_list())}
    assert {"css-border-radius", "css-at-media", "css-at-media-prefers-color-scheme"} <= names
    assert "css-pseudo-class-last-child" not in names  # the theme no longer uses it


def test_a_feature_a_client_lacks_is_reported_at_its_template_line(theme: Path) -> None:
    theme_yaml = theme / "default" / "theme.yaml"
    theme_yaml.write_text(theme_yaml.read_text().split("degrades_gracefully:")[0])
    mjml = theme / "default" / "issue.mjml.j2"
    mjml.write_text(
        mjml.read_text().replace(
            "      h1, h2, h3 { margin: 0; }\n",
            "      h1, h2, h3 { margin: 0; }\n      .summary { display: flex; }\n",
        )
    )
    line = next(
        n for n, row in enumerate(mjml.read_text().splitlines(), 1) if "display: flex" in row
    )
    settings = Settings(templates_dir=theme, _env_file=None)  # type: ignore[call-arg]
    found = {
        message.split(" (")[1].split(")")[0]: (name, at)
        for _, name, at, message in findings(settings)
    }
    assert found["css-display-flex"] == ("issue.mjml.j2", line)
    radius = next(
        n for n, row in enumerate(mjml.read_text().splitlines(), 1) if "border-radius" in row
    )
    assert found["css-border-radius"] == ("issue.mjml.j2", radius)
    [flex] = [m for _, _, _, m in findings(settings) if "css-display-flex" in m]
    assert flex.startswith("display:flex (css-display-flex) is not supported by ")
    assert "outlook-windows" in flex and "degrades_gracefully in theme.yaml" in flex


def test_clients_are_chosen_and_unknown_ones_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_TARGET_CLIENTS", "apple-mail, thunderbird, hotmale")
    settings = Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]
    found = findings(settings)
    assert found[0][0] == "client.unknown"
    assert "'hotmale' is not a client of the caniemail data" in found[0][3]
    monkeypatch.setenv("NEWSLETTER_TARGET_CLIENTS", "gmail;outlook")
    with pytest.raises(ValueError, match="is not a client name such as gmail"):
        Settings(_env_file=None)  # type: ignore[call-arg]
