"""A database made by an earlier release upgrades in place, and its campaigns go on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from tests.conftest import ROOT, SAMPLE

runner = CliRunner()


def test_a_version_2_database_upgrades_and_its_campaign_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript((ROOT / "tests" / "data" / "schema-v2.sql").read_text())
    now = "2021-05-31 09:00:00.000000"
    db.execute(
        "INSERT INTO subscribers (id, email, email_key, name, attributes, status, created_at,"
        " updated_at) VALUES (1, 'ana@example.com', 'ana@example.com', 'Ana', '{}', 'active',"
        " ?, ?)",
        (now, now),
    )
    db.execute(
        "INSERT INTO lists (id, name, description, created_at) VALUES (1, 'bulletin', '', ?)",
        (now,),
    )
    db.execute("INSERT INTO subscriptions VALUES (1, 1, 'confirmed', ?, ?)", (now, now))
    db.commit()
    db.close()
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("NEWSLETTER_SEGMENTS_FILE", str(ROOT / "segments.yaml"))
    monkeypatch.setenv("NEWSLETTER_OUTBOX_DIR", str(tmp_path / "outbox"))
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.stdout == "Upgraded the database from schema version 2 to 5\n"
    assert runner.invoke(app, ["send", str(SAMPLE), "--live", "--yes"]).exit_code == 0
    again = runner.invoke(app, ["send", str(SAMPLE), "--live", "--yes", "--new-campaign"])
    assert again.stdout.splitlines()[-1] == "Campaign 2: 1 sent, 0 deferred, 0 failed, 0 skipped"
    assert runner.invoke(app, ["db", "upgrade"]).stdout == (
        "The database is at schema version 5; nothing to do\n"
    )
