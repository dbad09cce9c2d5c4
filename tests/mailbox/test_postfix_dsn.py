"""Real DSNs from a real Postfix: a campaign goes through a private Postfix; the mail to
an unknown local user bounces, the mail to a destination that never answers is delayed;
Postfix writes its reports to our return path; `newsletter mailbox process` reads them."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from newsletter.audience.subscribers import get_subscriber
from newsletter.cli import app
from tests.conftest import ROOT, SAMPLE
from tests.mta import available, reporting_postfix
from tests.sending.smtp_server import free_port

runner = CliRunner()


def test_a_real_postfix_bounce_and_delay_come_back_and_count(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, published_media: str
) -> None:
    if not available():
        pytest.skip("needs Debian's postfix and root")
    if engine.dialect.name != "sqlite":
        pytest.skip("Postfix is the point here; SQLite is enough beside it")
    (tmp_path / "people.csv").write_text(
        "email,name\nalice@users.example.net,Alice\nbob@slow.example.net,Bob\ncarol@example.com,Carol\n"
    )
    assert (
        runner.invoke(app, ["subscribers", "import", str(tmp_path / "people.csv")]).exit_code == 0
    )
    folder = Path(tempfile.mkdtemp(prefix="newsletter-postfix-"))
    folder.chmod(0o755)  # Postfix's own users work in it
    postfix, reports = reporting_postfix(folder, free_port())
    try:
        postfix.start()
        for name, value in {
            "SECRET_KEY": "postfix-dsn-key",
            "SEGMENTS_FILE": str(ROOT / "segments.yaml"),
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(postfix.port),
            "SMTP_SECURITY": "none",
            "MAILBOX_URL": f"maildir:{reports.parent / 'reports'}",
        }.items():
            monkeypatch.setenv(f"NEWSLETTER_{name}", value)
        result = runner.invoke(app, ["send", str(SAMPLE), "--live", "--yes"])
        assert result.exit_code == 0, result.stdout + result.stderr
        assert result.stdout.splitlines()[-1].startswith("Campaign 1: 3 sent")
        deadline = time.monotonic() + 60
        while len(list((reports / "new").glob("*"))) < 2:
            assert time.monotonic() < deadline, postfix.log_text()[-3000:]
            time.sleep(0.2)
        (reports / "tmp").mkdir(exist_ok=True)
        result = runner.invoke(app, ["mailbox", "process"])
        assert result.exit_code == 0, result.stdout + result.stderr
        assert result.stdout.splitlines()[-1] == "Mailbox: 1 bounce, 1 delayed"
    finally:
        postfix.stop()
        shutil.rmtree(folder, ignore_errors=True)
    assert get_subscriber(engine, "alice@users.example.net").status == "bounced"
    assert get_subscriber(engine, "bob@slow.example.net").status == "active"
    assert get_subscriber(engine, "carol@example.com").status == "active"
    shown = runner.invoke(app, ["subscribers", "show", "alice@users.example.net"]).stdout
    assert "bounce (campaign 1): 5.1.1" in shown
    shown = runner.invoke(app, ["subscribers", "show", "bob@slow.example.net"]).stdout
    assert "delayed (campaign 1): 4.4.1" in shown
