"""The CLI as a user sees it, through CliRunner: exact output and exit codes."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.services import issues
from newsletter.settings import Settings
from tests.conftest import ROOT, SAMPLE, copy_sample

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_validate_sample_is_ok() -> None:
    assert run("validate", str(SAMPLE)) == (0, f"{SAMPLE}: ok\n", "")


def test_validate_reports_every_problem_one_line_each(write_issue: Callable[..., Path]) -> None:
    path = write_issue(
        "subject: Hi\npreheadr: x\ndate: 2021-05-31\nintro: Hi.\n"
        "sections:\n  - title: A\n    articles:\n      - title: T\n        summary: S\n"
        "        link: example.org\nclosing: Bye.\n"
    )
    code, out, err = run("validate", str(path), str(SAMPLE))
    assert code == 1
    assert out == f"{SAMPLE}: ok\n"
    assert err == (
        f"{path}:2:1: preheadr: unknown key; did you mean 'preheader'?\n"
        f"{path}:10:15: sections[0].articles[0].link: 'example.org' is not a full web address; "
        "write it as https://...\n"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, ": no such issue file"),
        (b"", ": issue file is empty"),
        (b"# just a comment\n", ": issue file holds only comments"),
        (
            b"subject: caf\xe9\n",
            ":1:13: issue file is not UTF-8 text (byte 0xe9); save it as UTF-8",
        ),
        (
            b"- subject: Hi\n- preheader: x\n",
            ":1:1: an issue file must be a mapping of keys (such as subject: ...), not a list",
        ),
        (b"subject: " + b"x" * (10 * 1024 * 1024), ": issue file is 10.0 MB; the limit is 1.0 MB"),
    ],
    ids=["missing", "empty", "comments", "not-utf8", "list", "10MB"],
)
def test_unreadable_files_give_one_clear_line(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "issue.yaml"
    if content is not None:
        path.write_bytes(content)
    assert run("validate", str(path)) == (1, "", f"{path}{expected}\n")


def test_validate_with_no_files_is_a_usage_error() -> None:
    code, _, err = run("validate")
    assert code == 2
    assert "Missing argument" in err


def test_build_writes_web_text_and_sample_message(tmp_path: Path) -> None:
    out = tmp_path / "site"
    code, stdout, stderr = run("build", str(SAMPLE), "--out", str(out))
    assert (code, stderr) == (0, "")
    folder = out / "2021-05"
    assert stdout.splitlines()[1].startswith(f"  {folder / 'index.html'}   web version, ")
    assert stdout.endswith(f"Open {folder / 'index.html'} in a browser to see it.\n")
    html = (folder / "index.html").read_text(encoding="utf-8")
    text = (folder / "index.txt").read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    # The web version is for everyone: no greeting, no subscriber's links, but the date.
    assert "Hello" not in text and "Unsubscribe" not in text
    assert text.startswith("Regional Migration News - May 31, 2021\n")
    assert "Subscribe: https://newsletter.example.org/signup?lang=en" in text
    message = email.message_from_bytes(
        (folder / "message.eml").read_bytes(), policy=email.policy.SMTP
    )
    assert message["Subject"] == "Regional Migration News: May 2021"
    assert message["To"] == "Alex Reader <alex.reader@example.org>"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert "Hello Alex," in message.get_body(("plain",)).get_content()


def test_build_default_folder_is_build(tmp_path: Path) -> None:
    code, _, _ = run("build", str(SAMPLE))
    assert code == 0
    assert (tmp_path / "build" / "2021-05" / "index.html").exists()


def test_build_refuses_an_invalid_issue(write_issue: Callable[..., Path], tmp_path: Path) -> None:
    path = write_issue("subject: Hi\n")
    code, out, err = run("build", str(path))
    assert code == 1
    assert out == ""
    assert err.splitlines()[0] == f"{path}:1:1: preheader: is required"
    assert not (tmp_path / "build").exists()


def test_new_starts_from_the_latest_issue(write_issue: Callable[..., Path], tmp_path: Path) -> None:
    copy_sample(tmp_path / "issues")
    copy_sample(
        tmp_path / "issues",
        SAMPLE.read_text(encoding="utf-8").replace("2021-05-31", "2021-04-30"),
        "2021-04.yaml",
    )
    code, out, err = run("new", "2021-06")
    assert (code, err) == (0, "")
    created = Path("issues/2021-06.yaml")
    assert (
        out == f"Created {created} from issues/2021-05.yaml. "
        f"Edit it, then run: newsletter validate {created}\n"
    )
    text = created.read_text(encoding="utf-8")
    assert "\ndate: 2021-06-01\n" in text
    # The issue's own texts move on a month (May to June, and the June deadline to July);
    # everything else, the articles' dates included, is the copy it was.
    sample = SAMPLE.read_text(encoding="utf-8")
    changed = [
        (a, b) for a, b in zip(sample.splitlines(), text.splitlines(), strict=True) if a != b
    ]
    assert changed == [
        (
            'subject: "Regional Migration News: May 2021"',
            'subject: "Regional Migration News: June 2021"',
        ),
        ("date: 2021-05-31", "date: 2021-06-01"),
        (
            "  Welcome to the May edition of **Regional Migration News**, a monthly round-up of "
            "what",
            "  Welcome to the June edition of **Regional Migration News**, a monthly round-up of "
            "what",
        ),
        (
            "  That is all for May. Do you have news from your organization for the June issue?",
            "  That is all for June. Do you have news from your organization for the July issue?",
        ),
        (
            "  Write to us at [news@example.org](mailto:news@example.org) before 20 June.",
            "  Write to us at [news@example.org](mailto:news@example.org) before 20 July.",
        ),
    ]
    assert run("validate", str(created))[0] == 0
    # Its date moved on again without its words: the check says where.
    created.write_text(text.replace("date: 2021-06-01", "date: 2021-08-01"), encoding="utf-8")
    report = issues.check(created, Settings(templates_dir=ROOT / "templates", _env_file=None))  # type: ignore[call-arg]
    places = [(f.rule, f.line) for f in report.findings if f.rule == "date.mismatch"]
    assert places == [("date.mismatch", 3), ("date.mismatch", 11)] + [
        ("date.mismatch", 143)
    ] * 2 + [("date.mismatch", 144)]


def test_new_refuses_to_overwrite(write_issue: Callable[..., Path]) -> None:
    write_issue()
    assert run("new", "2021-05") == (
        1,
        "",
        "issues/2021-05.yaml: already exists; pick another name or edit it\n",
    )


def test_new_refuses_a_path_as_name(write_issue: Callable[..., Path]) -> None:
    write_issue()
    code, _, err = run("new", "../etc/x")
    assert code == 1
    assert (
        err == "Error: '../etc/x' is not a name; use letters, digits, dashes and underscores, "
        "e.g. 2021-06\n"
    )


def _leaf_commands(group, prefix=()):  # type: ignore[no-untyped-def]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_command_has_help_with_an_example() -> None:
    import typer.main

    commands = list(_leaf_commands(typer.main.get_command(app)))
    assert len(commands) >= 15
    for path in commands:
        code, out, _ = run(*path, "--help")
        assert code == 0
        assert "Example: newsletter " + " ".join(path) in out, path


def test_every_command_is_in_the_readme() -> None:
    import typer.main

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in _leaf_commands(typer.main.get_command(app)):
        assert "newsletter " + " ".join(path) in readme, path


def test_the_console_script_keeps_output_and_exit_codes(tmp_path: Path) -> None:
    """The console script, as a process: output, files and exit codes."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_TEMPLATES_DIR"] = str(ROOT / "templates")

    def newsletter(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = newsletter("build", str(SAMPLE), "--out", "site")
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("Open site/2021-05/index.html in a browser to see it.\n")
    assert (tmp_path / "site" / "2021-05" / "message.eml").stat().st_size > 50_000
    missing = newsletter("validate", "nope.yaml")
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        1,
        "",
        "nope.yaml: no such issue file\n",
    )
    assert newsletter("frobnicate").returncode == 2


def test_the_console_script_ends_normally(tmp_path: Path) -> None:
    """No os._exit: atexit handlers run (coverage relies on them), after the output."""
    import subprocess
    import sys

    code = (
        "import atexit, sys; atexit.register(lambda: print('atexit ran'));"
        "sys.argv = ['newsletter', 'validate', 'nope.yaml'];"
        "from newsletter.console import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "atexit ran\n",
        "nope.yaml: no such issue file\n",
    )
