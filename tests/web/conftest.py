"""The web service's fixtures: the sample subscribers, and the app in a test client."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient
from typer.testing import CliRunner

from newsletter import tokens
from newsletter.audience.csvio import import_csv
from newsletter.audience.db import subscribers, subscriptions, suppressions
from newsletter.audience.subscribers import get_subscriber
from newsletter.cli import app as cli
from newsletter.settings import load_settings
from newsletter.web.app import create_web_app
from tests.conftest import ROOT

BASE = "https://newsletter.example.org"
KEY = "web-test-secret-key-0123456789"
runner = CliRunner()


@pytest.fixture
def site(engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    monkeypatch.setenv("NEWSLETTER_SEGMENTS_FILE", str(ROOT / "segments.yaml"))
    monkeypatch.setenv("NEWSLETTER_OUTBOX_DIR", str(tmp_path / "outbox"))
    import_csv(
        engine, ROOT / "sample-subscribers.csv", list_name="bulletin", default_list="bulletin"
    )
    runner.invoke(cli, ["lists", "create", "events", "--description", "Event invitations"])
    settings = load_settings()
    client = TestClient(create_web_app(settings), base_url=BASE, cookies=None)
    return client, engine, settings


def snapshot(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        return [
            conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            for table in (subscribers, subscriptions, suppressions)
        ]


def token_for(engine: sa.Engine, email_address: str, scope: str = "c1", key: str = KEY) -> str:
    return tokens.sign(key, get_subscriber(engine, email_address).id, scope)
