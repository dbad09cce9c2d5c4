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
    # The pages speak each subscriber's language; these tests read them in English (the
    # Spanish pages have tests of their own, with subscribers who speak Spanish).
    with engine.begin() as conn:
        conn.execute(sa.update(subscribers).values(language="en"))
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


class Served:
    """The app under a real uvicorn on a loopback port, in a thread."""

    def __init__(self, settings: object) -> None:
        import threading
        import time

        import uvicorn

        from tests.sending.smtp_server import free_port

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_web_app(settings),  # type: ignore[arg-type]
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def one_click(self, token: str) -> int:
        """The RFC 8058 POST a mailbox provider sends; returns the status."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(
            "POST",
            f"/unsubscribe/{token}",
            body="List-Unsubscribe=One-Click",
            headers={
                "Host": "newsletter.example.org",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        response = conn.getresponse()
        self.location = response.getheader("Location")
        return response.status

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
