"""Shared fixtures: the sample issue, settings pinned to the repository's templates,
and a helper that writes an issue file into a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.issue import IssueFile, load_issue
from newsletter.render import RenderedIssue, render_issue
from newsletter.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# Read before the autouse fixture clears every NEWSLETTER_ variable.
POSTGRES_URL = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL", "")
SAMPLE = ROOT / "issues" / "2021-05.yaml"
# The news items the sample issue was written from (a copy of the team's shared content).
CONTENT = ROOT / "tests" / "data" / "regional-migration-news-2021.txt"
SHARED_CONTENT = ROOT.parent / "shared" / "content" / CONTENT.name

MINIMAL_ISSUE = """\
subject: Hello
preheader: A short line for the inbox
date: 2021-05-31
intro: Hi.
sections:
  - title: News
    articles:
      - title: One
        summary: Text.
        link: https://example.org/one
closing: Bye.
"""


def copy_sample(folder: Path, text: str | None = None, name: str = "2021-05.yaml") -> Path:
    """The sample issue (or text) written into folder, with the images beside it, and its
    translations when it is the sample itself."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "images").exists():
        shutil.copytree(SAMPLE.parent / "images", folder / "images")
    path = folder / name
    path.write_text(SAMPLE.read_text(encoding="utf-8") if text is None else text, encoding="utf-8")
    if text is None:
        stem = Path(name).stem
        for translation in SAMPLE.parent.glob(f"{SAMPLE.stem}.*.yaml"):
            language = translation.name.split(".")[1]
            shutil.copy(translation, folder / f"{stem}.{language}.yaml")
    return path


@pytest.fixture(scope="session")
def media_site(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A web server on loopback publishing a media folder, as `newsletter serve` or a
    bucket would: (the folder, its address). A live send over SMTP checks that the
    email's images answer there."""
    import functools
    import http.server
    import threading

    root = tmp_path_factory.mktemp("site")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root / "media", f"http://127.0.0.1:{server.server_address[1]}/media"
    server.shutdown()
    server.server_close()


@pytest.fixture
def published_media(media_site: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Sends in this test publish their images where media_site serves them."""
    folder, url = media_site
    monkeypatch.setenv("NEWSLETTER_MEDIA_DIR", str(folder))
    monkeypatch.setenv("NEWSLETTER_MEDIA_URL", url)
    return url


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's .env or NEWSLETTER_ variables."""
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSLETTER_TEMPLATES_DIR", str(ROOT / "templates"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings() -> Settings:
    return Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def sample_issue() -> IssueFile:
    return load_issue(SAMPLE)


@pytest.fixture(scope="session")
def sample_rendered(sample_issue: IssueFile) -> RenderedIssue:
    return render_issue(sample_issue, Settings(templates_dir=ROOT / "templates", _env_file=None))  # type: ignore[call-arg]


@pytest.fixture
def write_issue(tmp_path: Path) -> Callable[..., Path]:
    def write(text: str = MINIMAL_ISSUE, name: str = "2021-05.yaml") -> Path:
        path = tmp_path / "issues" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    """Debian's chromium driven by Playwright. Skipped only outside CI when absent."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield instance
        instance.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A fresh subscriber database: a real SQLite file, and PostgreSQL too when
    NEWSLETTER_TEST_POSTGRES_URL names one (its tables are dropped first)."""
    import newsletter.audience.db
    import newsletter.mailbox.tables
    import newsletter.sending.tables  # noqa: F401  (declare every table)
    from newsletter.store import make_engine, metadata, upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'subscribers.db'}"
    else:
        url = POSTGRES_URL
        if not url:
            pytest.skip("NEWSLETTER_TEST_POSTGRES_URL is not set")
        with make_engine(url).begin() as conn:
            metadata.drop_all(conn)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
    created = make_engine(url)
    upgrade(created)
    yield created
    created.dispose()


def axe_violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    """What axe-core finds wrong on the page, a line each: rule (impact): elements."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in found
    ]
