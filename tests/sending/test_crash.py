"""SIGKILL a live send halfway, resume it, and reconcile what the server received with
the ledger: nobody lost, duplicates only from rows in flight, with the same Message-ID."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.audience.db import subscribers
from newsletter.sending.tables import deliveries
from tests.sending.smtp_server import FaultHandler, Server
from tests.sending.test_engine import env_for, live, people


def _env(tmp_path: Path, port: int, db_url: str, rate: str) -> dict[str, str]:
    return env_for(db_url, port, smtp_rate=rate)


def _send(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return live(env)


def _subscribe(engine: sa.Engine, tmp_path: Path, people_count: int) -> str:
    return people(engine, tmp_path, people_count)


def test_sigkill_mid_campaign_then_resume(engine: sa.Engine, tmp_path: Path) -> None:
    people = 120
    db_url = _subscribe(engine, tmp_path, people)
    handler = FaultHandler()
    with Server(handler) as server:
        sender = _send(_env(tmp_path, server.port, db_url, rate="40"))
        deadline = time.monotonic() + 60
        while len(handler.received) < 50 and time.monotonic() < deadline and sender.poll() is None:
            time.sleep(0.02)
        assert sender.poll() is None, sender.communicate()
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait()
        with engine.connect() as conn:
            states = dict(
                conn.execute(sa.select(deliveries.c.subscriber_id, deliveries.c.status)).all()
            )
            emails = dict(conn.execute(sa.select(subscribers.c.id, subscribers.c.email)).all())
        in_flight = {emails[sid] for sid, state in states.items() if state == "sending"}
        received_before = len(handler.received)
        assert 0 < received_before < people
        assert in_flight, "the kill landed while a batch was claimed"
        assert len(in_flight) <= 40  # one claimed batch: about a second at 40 messages/s

        again = _send(_env(tmp_path, server.port, db_url, rate="0"))
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err.decode()
        resent = len(in_flight)
        assert (
            f"({resent} sent again after an interrupted run, with the same Message-ID)"
            in out.decode()
        )

        copies = Counter(r.rcpt for r in handler.received)
        assert set(copies) == {f"r{i}@example.com" for i in range(people)}  # nobody lost
        duplicates = {rcpt for rcpt, n in copies.items() if n > 1}
        assert duplicates <= in_flight  # duplicates only from rows that were in flight
        assert max(copies.values()) <= 2
        for rcpt in duplicates:
            ids = {r.message["Message-ID"] for r in handler.to(rcpt)}
            assert len(ids) == 1, (rcpt, ids)
        with engine.connect() as conn:
            final = set(conn.execute(sa.select(deliveries.c.status)).scalars())
        assert final == {"sent"}

        # And a third run sends nothing at all.
        count = len(handler.received)
        third = _send(_env(tmp_path, server.port, db_url, rate="0"))
        third.communicate(timeout=60)
        assert third.returncode == 0
        assert len(handler.received) == count


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def test_ctrl_c_stops_cleanly_and_resumes(engine: sa.Engine, tmp_path: Path) -> None:
    people = 60
    db_url = _subscribe(engine, tmp_path, people)
    handler = FaultHandler()
    with Server(handler) as server:
        sender = _send(_env(tmp_path, server.port, db_url, rate="20"))
        deadline = time.monotonic() + 60
        while len(handler.received) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(sender.pid, signal.SIGINT)
        out, _ = sender.communicate(timeout=60)
        assert sender.returncode == 130
        assert "Stopped. Run the same command again to resume where it left off." in out.decode()
        with engine.connect() as conn:
            states = Counter(conn.execute(sa.select(deliveries.c.status)).scalars())
        assert states["sending"] == 0  # in-flight messages finished; the rest went back
        assert states["sent"] == len(handler.received)
        again = _send(_env(tmp_path, server.port, db_url, rate="0"))
        out, _ = again.communicate(timeout=60)
        assert again.returncode == 0
        assert "sent again" not in out.decode()
        assert Counter(r.rcpt for r in handler.received) == Counter(
            {f"r{i}@example.com": 1 for i in range(people)}
        )
