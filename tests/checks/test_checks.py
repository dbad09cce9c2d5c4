"""Each check rule with an issue that fails it and one that passes, through the real
render pipeline; --links against a local HTTP server; --spam with SpamAssassin."""

from __future__ import annotations

import dataclasses
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.checks import RULES, check_issue
from newsletter.checks.links import check_links, user_agent
from newsletter.checks.spam import check_spam
from newsletter.cli import app
from newsletter.issue import parse_issue
from newsletter.render import render_issue
from newsletter.render.personalize import Spliced
from newsletter.settings import Settings
from tests.conftest import MINIMAL_ISSUE, ROOT, SAMPLE

runner = CliRunner()
GOOD_PREHEADER = "A short line for the inbox that says what this issue is about."


def issue_text(**changes: str) -> str:
    text = MINIMAL_ISSUE.replace("A short line for the inbox", GOOD_PREHEADER)
    for old, new in changes.items():
        text = text.replace(old, new)
    return text


def rules_of(
    text: str, settings: Settings | None = None, path: str = "issues/x.yaml", **kwargs: object
) -> set[str]:
    settings = settings or Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]
    issue_file = parse_issue(text, path)
    rendered = render_issue(issue_file, settings)
    return {f.rule for f in check_issue(issue_file, rendered, settings, **kwargs).findings}  # type: ignore[arg-type]


def test_the_sample_passes_every_rule() -> None:
    assert rules_of(SAMPLE.read_text(encoding="utf-8"), path=str(SAMPLE)) == set()


def test_every_rule_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for rule in RULES:
        assert f"`{rule}`" in readme, rule


def _with_articles(n: int, words: int = 330) -> str:
    body = " ".join(["migration"] * words)
    articles = "".join(
        f"      - title: Article {i}\n        summary: {body}\n        link: https://example.org/{i}\n"
        f"        cta: Read article {i}\n"
        for i in range(n)
    )
    return issue_text().replace(
        "      - title: One\n        summary: Text.\n        link: https://example.org/one\n",
        articles,
    )


def test_size_rules() -> None:
    seen: dict[str, int] = {}
    for n in range(1, 60, 2):
        found = rules_of(_with_articles(n)) & {"size.clipped", "size.near-clip"}
        for rule in found:
            seen.setdefault(rule, n)
        if "size.clipped" in found:
            break
    assert set(seen) == {"size.near-clip", "size.clipped"}
    assert seen["size.near-clip"] < seen["size.clipped"]
    assert "size.near-clip" not in rules_of(_with_articles(1))


IMAGE = "        image:\n          src: {src}\n          alt: A picture\n"


def _with_image(src: str) -> str:
    return issue_text().replace(
        "        link: https://example.org/one\n",
        "        link: https://example.org/one\n" + IMAGE.format(src=src),
    )


def test_image_https_rule_points_at_the_yaml_line() -> None:
    settings = Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]
    issue_file = parse_issue(_with_image("http://example.org/a.png"), "issues/x.yaml")
    findings = check_issue(issue_file, render_issue(issue_file, settings), settings).findings
    [finding] = [f for f in findings if f.rule == "image.https"]
    assert (finding.file, finding.line, finding.column) == ("issues/x.yaml", 12, 16)
    assert "image.https" not in rules_of(_with_image("https://example.org/a.png"))


@pytest.fixture
def theme(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", target)
    return target


def _edit(theme: Path, name: str, old: str, new: str) -> Settings:
    path = theme / "default" / name
    source = path.read_text()
    assert old in source
    path.write_text(source.replace(old, new))
    return Settings(templates_dir=theme, _env_file=None)  # type: ignore[call-arg]


def test_image_alt_and_width_rules(theme: Path) -> None:
    text = _with_image("https://example.org/a.png")
    assert not rules_of(text) & {"image.alt", "image.width"}
    settings = _edit(theme, "issue.mjml.j2", 'alt="{{ image.alt }}"', 'alt=""')
    assert "image.alt" in rules_of(text, settings)
    settings = _edit(
        theme,
        "issue.mjml.j2",
        '<mj-raw>\n      <div class="preheader"',
        '<mj-raw>\n      <img src="https://example.org/pixel.png" alt="pixel">'
        '\n      <div class="preheader"',
    )
    assert "image.width" in rules_of(text, settings)


def test_image_height_rule() -> None:
    assert "image.height" in rules_of(_with_image("https://example.org/a.png"))
    sized = _with_image("https://example.org/a.png") + ""
    sized = sized.replace("alt: A picture\n", "alt: A picture\n          height: 120\n")
    assert "image.height" not in rules_of(sized)


def test_link_rules(theme: Path) -> None:
    assert "link.insecure" in rules_of(
        issue_text(**{"link: https://example.org/one": "link: http://example.org/one"})
    )
    assert "link.mailto" in rules_of(
        issue_text(**{"summary: Text.": "summary: '[write](mailto:not-an-address)'"})
    )
    assert "link.mailto" not in rules_of(
        issue_text(**{"summary: Text.": "summary: '[write](mailto:news@example.org)'"})
    )
    settings = _edit(
        theme,
        "issue.mjml.j2",
        "<p>{{ recipient.greeting }}</p>",
        '<p>{{ recipient.greeting }} <a href="">here</a> '
        '<a href="https://example.org/?u={{ "{{" }}name}}">there</a></p>',
    )
    found = rules_of(issue_text(), settings)
    assert {"link.empty", "link.placeholder"} <= found
    two = issue_text().replace(
        "closing: Bye.",
        "      - title: Two\n        summary: Text.\n        link: https://example.org/two\n"
        "        cta: Read more\n"
        "closing: Bye.",
    )
    assert "link.duplicate-text" in rules_of(two)
    assert "link.duplicate-text" not in rules_of(
        two.replace("cta: Read more", "cta: Read the second")
    )


@pytest.mark.parametrize(
    ("subject", "rule"),
    [
        (
            "Regional Migration News, May 2021: every story from the region, "
            "with the links to read more",
            "subject.length",
        ),
        ("BIG NEWS FROM THE REGION THIS MONTH", "subject.shouting"),
        ("Act now!! Free course", "subject.punctuation"),
        ("Win $$ today", "subject.punctuation"),
    ],
)
def test_subject_rules(subject: str, rule: str) -> None:
    assert rule in rules_of(issue_text(**{"subject: Hello": f"subject: '{subject}'"}))
    assert not {r for r in rules_of(issue_text()) if r.startswith("subject.")}


@pytest.mark.parametrize("length", [20, 120])
def test_preheader_rule(length: int) -> None:
    assert "preheader.length" in rules_of(issue_text(**{GOOD_PREHEADER: "x" * length}))
    assert "preheader.length" not in rules_of(issue_text())


def test_unsubscribe_and_plain_text_rules(theme: Path) -> None:
    settings = Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]
    issue_file = parse_issue(issue_text(), "issues/x.yaml")
    rendered = render_issue(issue_file, settings)
    no_link = dataclasses.replace(rendered, _html=Spliced(("<!doctype html><p>hi</p>",)))
    assert "unsubscribe.link" in {
        f.rule for f in check_issue(issue_file, no_link, settings).findings
    }
    bare = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nhi\r\n"
    found = {f.rule for f in check_issue(issue_file, rendered, settings, message=bare).findings}
    assert "unsubscribe.headers" in found
    empty = dataclasses.replace(rendered, _text=Spliced(("  ",)))
    assert "text.empty" in {f.rule for f in check_issue(issue_file, empty, settings).findings}
    settings = _edit(theme, "issue.txt.j2", "{{ article.title }}\n", "\n")
    assert "text.article" in rules_of(issue_text(), settings)


def test_dkim_rules(tmp_path: Path) -> None:
    import subprocess

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    settings = Settings(
        templates_dir=ROOT / "templates",
        dkim_domain="example.org",
        dkim_selector="nl",
        dkim_key_file=key,
        _env_file=None,
    )  # type: ignore[call-arg]
    assert not {r for r in rules_of(issue_text(), settings) if r.startswith("dkim.")}
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
        check=True,
        capture_output=True,
    )
    assert {r for r in rules_of(issue_text(), settings) if r.startswith("dkim.")} == {
        "dkim.algorithm"
    }
    key.write_text("not a key")
    assert "dkim.signature" in rules_of(issue_text(), settings)


class _Site(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        if self.path == "/no-head":
            self.send_response(405)
        else:
            self.send_response(200 if self.path in ("/ok", "/no-head") else 404)
        self.end_headers()

    def do_GET(self) -> None:
        self.server.agents.append(self.headers.get("User-Agent"))  # type: ignore[attr-defined]
        self.send_response(200 if self.path in ("/ok", "/no-head") else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_links_are_fetched_and_broken_ones_reported_at_their_line() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    server.agents = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        text = issue_text(
            **{
                "link: https://example.org/one": f"link: {base}/ok",
                "summary: Text.": (
                    f"summary: 'See [this]({base}/missing) and [that]({base}/no-head)'"
                ),
            }
        )
        issue_file = parse_issue(text, "issues/x.yaml")
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        findings = check_links(issue_file, timeout=3, user_agent=user_agent(settings))
    finally:
        server.shutdown()
    assert [(f.rule, f.line, f.column) for f in findings] == [("link.broken", 9, 18)]
    assert findings[0].message == f"{base}/missing answered 404 Not Found"
    assert server.agents and all(a.startswith("newsletter-link-check/") for a in server.agents)  # type: ignore[attr-defined]


INFORMATIONAL = {"HTML_MESSAGE", "NO_RECEIVED", "NO_RELAYS", "ALL_TRUSTED", "MIME_HTML_MOSTLY"}


@pytest.mark.skipif(shutil.which("spamassassin") is None, reason="spamassassin is not installed")
def test_the_sample_is_clean_for_spamassassin() -> None:
    from newsletter.sending.message import sample_message

    settings = Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]
    from newsletter.issue import load_issue

    result, findings = check_spam(
        sample_message(render_issue(load_issue(SAMPLE), settings), settings)
    )
    assert result is not None and result["score"] is not None
    assert result["score"] < 2.0
    header_or_mime = [r for r in result["rules"] if r not in INFORMATIONAL]
    assert header_or_mime == [], header_or_mime
    assert findings == []


def test_spam_without_spamassassin_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = runner.invoke(app, ["check", str(SAMPLE), "--spam"])
    assert result.exit_code == 0
    assert (
        "SpamAssassin is not installed (apt-get install spamassassin); --spam checked nothing\n"
        in result.stdout
    )


def test_check_cli_text_json_and_strict(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(issue_text(**{"subject: Hello": "subject: 'Act now!!'"}))
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0
    assert result.stdout == (
        f"{path}:1:10: warning subject.punctuation: the subject has punctuation that spam filters "
        "score (!!, ??, $$)\n"
        f"{path}: 0 errors, 1 warnings\n"
    )
    assert runner.invoke(app, ["check", str(path), "--strict"]).exit_code == 1
    data = json.loads(runner.invoke(app, ["check", str(path), "--format", "json"]).stdout)
    assert data == {
        "file": str(path),
        "errors": 0,
        "warnings": 1,
        "findings": [
            {
                "rule": "subject.punctuation",
                "severity": "warning",
                "message": "the subject has punctuation that spam filters score (!!, ??, $$)",
                "file": str(path),
                "line": 1,
                "column": 10,
            }
        ],
        "spam": None,
    }
    path.write_text("subject: Hi\n")
    assert runner.invoke(app, ["check", str(path)]).exit_code == 1
    data = json.loads(runner.invoke(app, ["check", str(path), "--format", "json"]).stdout)
    assert data["errors"] == 5 and data["findings"][0]["rule"] == "schema"


def test_check_json_gives_every_schema_error_its_own_place(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(
        issue_text(
            **{
                "subject: Hello": "subjct: Hello",
                "link: https://example.org/one": "link: example.org/one",
            }
        )
    )
    text = runner.invoke(app, ["check", str(path)]).stderr.splitlines()
    data = json.loads(runner.invoke(app, ["check", str(path), "--format", "json"]).stdout)
    places = [(f["line"], f["column"]) for f in data["findings"]]
    assert len(places) == len(set(places)) == len(text) == 2
    for finding, line in zip(data["findings"], text, strict=True):
        where = f"{path}:{finding['line']}:{finding['column']}"
        assert line == f"{where}: error schema: {finding['message']}"


def test_a_live_send_refuses_an_issue_with_check_errors(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEWSLETTER_OUTBOX_DIR", str(tmp_path / "outbox"))
    path = tmp_path / "x.yaml"
    path.write_text(_with_image("http://example.org/a.png"))
    result = runner.invoke(app, ["send", str(path), "--live", "--yes"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:12:16: error image.https: the image 'http://example.org/a.png' is not an "
        "absolute https URL",
        "Error: the checks found 1 error(s); nothing was sent",
    ]
    assert not (tmp_path / "outbox").exists()
