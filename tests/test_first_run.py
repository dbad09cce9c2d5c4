"""The first run, as a new user makes it, in real processes: `newsletter init`, an import,
a live send to the outbox, and `newsletter serve` answering the links in those emails."""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import ROOT, copy_sample
from tests.sending.smtp_server import free_port


def newsletter(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_init_makes_a_project_that_checks_and_keeps_what_exists(tmp_path: Path) -> None:
    done = newsletter(tmp_path, "init", "bulletin", "--name", "Boletín de Prueba")
    assert done.returncode == 0, done.stderr
    project = tmp_path / "bulletin"
    made = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert {".env", ".gitignore", "segments.yaml", "templates/default/issue.mjml.j2"} <= made
    [issue] = (project / "issues").glob("*.yaml")
    assert re.fullmatch(r"\d{4}-\d{2}\.yaml", issue.name)
    env = (project / ".env").read_text()
    key = re.search(r"^NEWSLETTER_SECRET_KEY=(\S{40,})$", env, re.M)
    assert key and "NEWSLETTER_BASE_URL=http://127.0.0.1:8000" in env
    assert "NEWSLETTER_FROM_NAME=Boletín de Prueba" in env
    assert ".env" in (project / ".gitignore").read_text().splitlines()
    check = newsletter(project, "check", str(issue.relative_to(project)), "--strict")
    assert "0 errors" in check.stderr + check.stdout, check.stdout + check.stderr
    # Again: nothing is overwritten, the key least of all.
    again = newsletter(project, "init")
    assert again.returncode == 0 and "Created" not in again.stdout
    assert (project / ".env").read_text() == env


def test_a_project_without_a_theme_folder_uses_the_packaged_one(tmp_path: Path) -> None:
    copy_sample(tmp_path / "issues")
    done = newsletter(tmp_path, "build", "issues/2021-05.yaml")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "templates").exists()
    assert "Regional Migration News" in (tmp_path / "build/2021-05/index.html").read_text()


def test_after_the_main_job_serve_answers_the_links_in_the_emails(tmp_path: Path) -> None:
    copy_sample(tmp_path / "issues")
    for name in ("segments.yaml", "sample-subscribers.csv"):
        shutil.copy(ROOT / name, tmp_path / name)
    assert newsletter(tmp_path, "init").returncode == 0
    port = free_port()  # the user's choice of port, in .env and on the command line
    env_file = tmp_path / ".env"
    env_file.write_text(env_file.read_text().replace(":8000", f":{port}"))
    for args in (
        ("subscribers", "import", "sample-subscribers.csv"),
        ("send", "issues/2021-05.yaml", "--live", "--yes"),
    ):
        done = newsletter(tmp_path, *args)
        assert done.returncode == 0, done.stderr
    assert "insecure development key" not in done.stderr
    [first, *_] = sorted((tmp_path / "outbox" / "2021-05").glob("*.eml"))
    message = email.message_from_bytes(first.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    links = re.findall(rf"http://127\.0\.0\.1:{port}/(?:unsubscribe|preferences)/\S+", text)
    assert len(links) == 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/signup", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr
                time.sleep(0.1)
        for link in links:
            with urllib.request.urlopen(link, timeout=10) as response:
                assert response.status == 200
                assert "This link does not work" not in response.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=10)
