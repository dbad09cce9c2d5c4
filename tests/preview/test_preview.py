"""The preview in a real browser (Debian's chromium through Playwright), against the real
server on 127.0.0.1, with the issue edited on disk."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.issue import load_issue
from newsletter.preview.server import make_server
from newsletter.preview.state import Preview
from newsletter.settings import load_settings
from tests.conftest import ROOT, SAMPLE, axe_violations, copy_sample
from tests.sending.smtp_server import FaultHandler, Server, free_port


class Running:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.preview = Preview(path=path, settings=load_settings())
        self.preview.rebuild()
        self.server = make_server(self.preview, port=self.port)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def get(self, path: str, host: str | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host or f"127.0.0.1:{self.port}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()


@pytest.fixture
def issue(tmp_path: Path) -> Path:
    return copy_sample(tmp_path / "issues")


@pytest.fixture
def served(issue: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    monkeypatch.setenv("NEWSLETTER_SEGMENTS_FILE", str(ROOT / "segments.yaml"))
    with Running(issue) as running:
        yield running


@pytest.fixture
def page(browser, served: Running):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(served.url)
    page.wait_for_function("window.__preview.shown >= 1")
    yield page
    page.close()


def frame_text(page) -> str:  # type: ignore[no-untyped-def]
    return page.frame_locator("#frame").locator("body").inner_text()


def test_the_frame_shows_every_article_title(page) -> None:  # type: ignore[no-untyped-def]
    text = frame_text(page)
    for article in load_issue(SAMPLE).issue.articles():
        assert article.title in text


def test_the_page_passes_axe_and_shows_the_inbox_row_and_the_findings(page) -> None:  # type: ignore[no-untyped-def]
    assert axe_violations(page) == []
    assert page.inner_text("#inbox-from") == "Regional Migration News"
    assert page.inner_text("#inbox-subject") == "Regional Migration News: May 2021"
    assert page.inner_text("#inbox-preheader").startswith("— Fair recruitment")
    # The findings sit beside the email, in view without scrolling, and are counted.
    box = page.locator("#findings").bounding_box()
    assert box and box["y"] < 900
    assert page.inner_text("#findings-count") == "No findings"
    assert page.is_visible("#no-findings")
    # The tabs work from the keyboard, and the page stays clean on each.
    page.focus("#tab-html")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#tab-text", "aria-selected") == "true"
    assert page.is_visible("#text") and axe_violations(page) == []


def test_mobile_width_stacks_without_horizontal_scroll(page) -> None:  # type: ignore[no-untyped-def]
    page.click("[data-width=mobile]")
    page.wait_for_function("document.getElementById('frame').getBoundingClientRect().width <= 376")
    frame = page.frame_locator("#frame")
    sizes = frame.locator("html").evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert sizes[0] <= sizes[1] <= 375
    image = frame.locator("img").first.bounding_box()
    title = frame.locator("h3").first.bounding_box()
    assert image and title
    assert image["y"] + image["height"] <= title["y"], "the image column sits above the text"


def test_dark_mode_toggle(page) -> None:  # type: ignore[no-untyped-def]
    def background() -> str:
        return (
            page.frame_locator("#frame")
            .locator("body")
            .evaluate("b => getComputedStyle(b).backgroundColor")
        )

    assert background() == "rgb(238, 241, 245)"
    page.click("[data-scheme=dark]")
    page.wait_for_function("window.__preview.shownAt > 0")
    page.wait_for_timeout(300)
    assert background() == "rgb(13, 17, 23)"


def test_editing_the_file_updates_the_page_without_a_reload(page, issue: Path) -> None:  # type: ignore[no-untyped-def]
    page.evaluate("window.__marker = 'same page'")
    shown = page.evaluate("window.__preview.shown")
    issue.write_text(
        issue.read_text(encoding="utf-8").replace("Labour migration", "Work and migration", 1),
        encoding="utf-8",
    )
    page.wait_for_function(f"window.__preview.shown > {shown}", timeout=5000)
    assert "WORK AND MIGRATION" in frame_text(page)
    assert page.evaluate("window.__marker") == "same page"


def test_local_images_show_from_disk_and_a_changed_image_re_renders(page, issue: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    frame = page.frame_locator("#frame")
    images = "[...document.images].map(i => [i.getAttribute('src'), i.naturalWidth])"
    frame.locator("img").last.evaluate("i => i.decode()")
    shown = frame.locator("html").evaluate(images)
    assert len(shown) == 7
    for src, natural in shown:
        assert src.startswith("/media/") and natural > 0, (src, natural)
    # The editor replaces a photo with another of the same name: the preview follows.
    before = page.evaluate("window.__preview.shown")
    Image.new("RGB", (1600, 800), "#c23b52").save(
        issue.parent / "images" / "2021-05" / "recruitment-exchange.jpg", "JPEG"
    )
    page.wait_for_function(f"window.__preview.shown > {before}", timeout=5000)
    frame.locator("img").nth(1).evaluate("i => i.decode()")
    after = frame.locator("html").evaluate(images)
    assert after[1][0] != shown[1][0] and after[1][1] == 1072  # twice 536, the new file
    assert [a for a in after if a[0] != shown[after.index(a)][0]] == [after[1]]


def test_the_edition_switch_shows_each_language_and_flags_stale_items(page, issue: Path) -> None:  # type: ignore[no-untyped-def]
    assert page.locator("#edition-label").is_visible()
    assert page.locator("#edition option").all_inner_texts() == ["en", "es"]
    before = page.evaluate("window.__preview.shown")
    page.select_option("#edition", "es")
    page.wait_for_function(f"window.__preview.shown > {before}", timeout=5000)
    text = frame_text(page)
    assert "MIGRACIÓN LABORAL" in text and "Hola, Alex:" in text
    assert page.frame_locator("#frame").locator("html").get_attribute("lang") == "es"
    # The source changes under the translation: the findings say which item went stale.
    shown = page.evaluate("window.__preview.shown")
    issue.write_text(
        issue.read_text(encoding="utf-8").replace("Labour migration", "Work and migration", 1),
        encoding="utf-8",
    )
    page.wait_for_function(f"window.__preview.shown > {shown}", timeout=5000)
    warnings = page.locator("#warnings li").all_inner_texts()
    assert any("2021-05.es.yaml" in w and "translation.stale" in w for w in warnings), warnings
    assert "MIGRACIÓN LABORAL" in frame_text(page)  # still the Spanish edition


def test_editing_the_theme_changes_the_colours(
    browser, issue: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import shutil

    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    monkeypatch.setenv("NEWSLETTER_TEMPLATES_DIR", str(templates))
    monkeypatch.setenv("NEWSLETTER_SEGMENTS_FILE", str(ROOT / "segments.yaml"))
    with Running(issue) as running:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(running.url)
        page.wait_for_function("window.__preview.shown >= 1")

        def background() -> str:
            body = page.frame_locator("#frame").locator("body")
            return str(body.evaluate("b => getComputedStyle(b).backgroundColor"))

        assert background() == "rgb(238, 241, 245)"
        shown = page.evaluate("window.__preview.shown")
        theme = templates / "default" / "theme.yaml"
        theme.write_text(theme.read_text().replace('page: "#eef1f5"', 'page: "#f5eeee"'))
        page.wait_for_function(f"window.__preview.shown > {shown}", timeout=5000)
        assert background() == "rgb(245, 238, 238)"
        page.close()


def test_a_broken_save_shows_the_error_over_the_last_good_render(page, issue: Path) -> None:  # type: ignore[no-untyped-def]
    good = issue.read_text(encoding="utf-8")
    issue.write_text(good.replace("date: 2021-05-31", "date: 31 May"), encoding="utf-8")
    page.wait_for_selector("#error:not([hidden])", timeout=5000)
    assert (
        page.inner_text("#error-lines")
        == f"{issue}:5:7: date: '31 May' is not a date; write it as YYYY-MM-DD"
    )
    assert "RCM countries exchange good practices" in frame_text(page)  # the last good render
    issue.write_text(good, encoding="utf-8")
    page.wait_for_selector("#error", state="hidden", timeout=5000)


def test_tabs_show_text_headers_and_source(page) -> None:  # type: ignore[no-untyped-def]
    page.click("[data-tab=text]")
    assert "More on the recruitment exchange: https://example.org/news/2021/05/" in page.inner_text(
        "#text"
    )
    page.click("[data-tab=headers]")
    headers = page.inner_text("#headers")
    for name in ("From", "To", "Subject", "Preheader", "List-Unsubscribe"):
        assert name in headers
    page.click("[data-tab=source]")
    assert page.inner_text("#source").startswith("<!doctype html>")
    assert "KB of 102 KB" in page.inner_text("#size")


def test_the_test_send_button_delivers_to_a_real_smtp_server(
    browser,
    issue: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    handler = FaultHandler()
    with Server(handler) as smtp:
        for name, value in {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp.port),
            "SMTP_SECURITY": "none",
            "SECRET_KEY": "preview-test",
            "TEST_RECIPIENTS": "editor@example.org",
        }.items():
            monkeypatch.setenv(f"NEWSLETTER_{name}", value)
        with Running(issue) as running:
            page = browser.new_page()
            page.goto(running.url)
            page.click("#send")
            # It says who it will go to before anything is sent.
            assert page.inner_text("#send-to") == (
                "Send a test copy (the en edition), marked [TEST], to editor@example.org?"
            )
            assert handler.received == []
            page.click("#send-go")
            page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('Test sent')",
                timeout=10000,
            )
            assert "editor@example.org (250" in page.inner_text("#status")
            assert page.get_attribute("#status", "class") == "status sent"
            page.close()
    assert [r.rcpt for r in handler.received] == ["editor@example.org"]
    assert handler.received[0].message["Subject"] == "[TEST] Regional Migration News: May 2021"


def test_posts_without_the_csrf_token_are_refused(served: Running) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    conn.request("POST", "/test-send", body="{}", headers={"Content-Type": "application/json"})
    assert conn.getresponse().status == 403
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    conn.request(
        "POST",
        "/test-send",
        body="{}",
        headers={"X-CSRF-Token": served.preview.csrf, "Origin": "http://evil.example"},
    )
    assert conn.getresponse().status == 403


@pytest.mark.parametrize(
    "path",
    [
        "/static/../server.py",
        "/static/%2e%2e/server.py",
        "/static/..%2fstate.py",
        "/static/../../settings.py",
        "/etc/passwd",
    ],
)
def test_paths_that_leave_the_served_folder_get_404(served: Running, path: str) -> None:
    status, body = served.get(path)
    assert status == 404
    assert b"def " not in body


def test_a_host_that_is_not_loopback_is_refused(served: Running) -> None:
    assert served.get("/", host="attacker.example")[0] == 400
    assert served.get("/", host=f"localhost:{served.port}")[0] == 200


def _first_name(engine, email: str, first: str) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from newsletter.audience.db import subscribers

    with engine.begin() as conn:
        conn.execute(
            sa.update(subscribers)
            .where(subscribers.c.email == email)
            .values(attributes={"first_name": first})
        )


def test_preview_as_a_subscriber(engine, issue: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    runner.invoke(app, ["subscribers", "add", "ana@example.com", "--name", "Ana <b>Pérez</b>"])
    _first_name(engine, "ana@example.com", "Ana <b>")
    with Running(issue) as running:
        running.preview.select("ana@example.com")
        status, body = running.get("/text")
        assert status == 200
        assert "Hello Ana <b>," in body.decode()
        _, body = running.get("/email")
        assert "Hello Ana &lt;b&gt;," in body.decode()
    result = runner.invoke(app, ["preview", str(issue), "--as", "nobody@example.com", "--no-open"])
    assert (result.exit_code, result.stderr) == (1, "Error: no subscriber 'nobody@example.com'\n")


def test_the_picker_previews_as_a_subscriber(browser, engine, issue: Path) -> None:  # type: ignore[no-untyped-def]
    CliRunner().invoke(app, ["subscribers", "add", "ana@example.com", "--name", "Ana Pérez"])
    _first_name(engine, "ana@example.com", "Ana")
    with Running(issue) as running:
        page = browser.new_page()
        page.goto(running.url)
        page.wait_for_function("document.querySelectorAll('#as option').length > 1")
        shown = page.evaluate("window.__preview.shown")
        page.select_option("#as", "ana@example.com")
        page.wait_for_function(f"window.__preview.shown > {shown}")
        assert "Hello Ana," in frame_text(page)
        page.close()


def test_the_command_prints_the_url_binds_loopback_and_stops_on_ctrl_c(issue: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_TEMPLATES_DIR"] = str(ROOT / "templates")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "newsletter",
            "preview",
            str(issue),
            "--port",
            str(port),
            "--no-open",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert line == f"Previewing {issue} at http://127.0.0.1:{port}/ (Ctrl-C to stop)\n"
        out = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True
        ).stdout
        if out:  # ss is not on every machine
            assert [line.split()[3] for line in out.splitlines()] == [f"127.0.0.1:{port}"]
    finally:
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert rest.endswith("Stopped.\n")


def test_the_page_lists_the_check_warnings(page, issue: Path) -> None:  # type: ignore[no-untyped-def]
    assert page.inner_text("#warnings") == ""
    text = issue.read_text(encoding="utf-8")
    issue.write_text(
        text.replace('subject: "Regional Migration News: May 2021"', 'subject: "Act now!!"'),
        encoding="utf-8",
    )
    page.wait_for_function(
        "document.getElementById('warnings').textContent.includes('subject.punctuation')",
        timeout=5000,
    )
    assert f"{issue}:3:10: warning subject.punctuation" in page.inner_text("#warnings")
