"""The sending engine with real processes, signals and servers: kills at random points,
senders sharing a campaign, stalled and dead senders, servers that drip or stop, a second
Ctrl-C, a lost outbox, a locked database, and workers with schedules and controls."""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.audience.db import subscribers
from newsletter.sending.runner import AWAITING
from newsletter.sending.tables import campaigns, deliveries
from tests.conftest import ROOT, SAMPLE
from tests.sending.smtp_server import FaultHandler, Received, Server, free_port

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
CONNECTIONS = 2
# The most a kill can leave accepted but unrecorded (the README's bound): the messages on
# the wire, one a connection, plus the outcomes awaiting their commit.
BOUND = CONNECTIONS + AWAITING


def env_for(db_url: str, port: int | None, **extra: str) -> dict[str, str]:
    media = ("NEWSLETTER_MEDIA_DIR", "NEWSLETTER_MEDIA_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_") or k in media}
    env |= {
        "NEWSLETTER_DATABASE_URL": db_url,
        "NEWSLETTER_SECRET_KEY": "engine-test-key",
        "NEWSLETTER_TEMPLATES_DIR": str(ROOT / "templates"),
        "NEWSLETTER_SEGMENTS_FILE": str(ROOT / "segments.yaml"),
        "NEWSLETTER_SMTP_CONNECTIONS": str(CONNECTIONS),
        "NEWSLETTER_SMTP_TIMEOUT": "5",
        "NEWSLETTER_SMTP_RETRY_DELAY": "0",
        "NEWSLETTER_WORKER_POLL": "0.2",
    }
    if port is not None:
        env |= {
            "NEWSLETTER_SMTP_HOST": "127.0.0.1",
            "NEWSLETTER_SMTP_PORT": str(port),
            "NEWSLETTER_SMTP_SECURITY": "none",
        }
    env |= {f"NEWSLETTER_{k.upper()}": v for k, v in extra.items()}
    return env


def newsletter(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )


def live(env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return newsletter(env, "send", str(SAMPLE), "--live", "--yes", *extra)


def finish(process: subprocess.Popen[bytes], timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out.decode(), err.decode()


def people(engine: sa.Engine, tmp_path: Path, count: int) -> str:
    """r0@ ... r{count-1}@example.com on the default list; the URL for subprocesses."""
    from newsletter.audience.csvio import import_csv

    csv = tmp_path / "people.csv"
    csv.write_text("email,name\n" + "".join(f"r{i}@example.com,R {i}\n" for i in range(count)))
    import_csv(engine, csv, list_name="bulletin", default_list="bulletin")
    return engine.url.render_as_string(hide_password=False)


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def states(engine: sa.Engine) -> Counter[str]:
    with engine.connect() as conn:
        return Counter(conn.execute(sa.select(deliveries.c.status)).scalars())


def everyone(count: int) -> set[str]:
    return {f"r{i}@example.com" for i in range(count)}


def assert_duplicates_are_the_same_message(received: list[Received]) -> Counter[str]:
    copies = Counter(r.rcpt for r in received)
    for rcpt, n in copies.items():
        if n > 1:
            ids = {r.message["Message-ID"] for r in received if r.rcpt == rcpt}
            assert len(ids) == 1, (rcpt, ids)
    return copies


def test_sigkill_at_ten_random_points_then_reconcile(engine: sa.Engine, tmp_path: Path) -> None:
    count = 1000
    db_url = people(engine, tmp_path, count)
    handler = FaultHandler()
    rng = random.Random(20210531)
    kills = 0
    unrecorded: list[int] = []
    with Server(handler) as server:
        env = env_for(db_url, server.port)
        while kills < 10:
            base = len(handler.received)
            sender = live(env)
            # Once it is sending, a random moment within the next 0.2 s.
            wait_for(lambda b=base, p=sender: len(handler.received) > b or p.poll() is not None)
            time.sleep(rng.uniform(0, 0.2))
            if sender.poll() is not None:
                break  # it finished before this kill
            os.kill(sender.pid, signal.SIGKILL)
            sender.wait()
            kills += 1
            with engine.connect() as conn:
                recorded = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(deliveries)
                    .where(deliveries.c.status == "sent")
                ).scalar_one()
            # Accepted by the server but not recorded: what the next run sends again.
            unrecorded.append(len(set(r.rcpt for r in handler.received)) - recorded)
        code, _, err = finish(live(env))
        assert code == 0, err
        copies = assert_duplicates_are_the_same_message(handler.received)
    assert kills >= 10, "the campaign finished before ten kills"
    assert set(copies) == everyone(count)  # nobody lost
    duplicates = sum(copies.values()) - count
    assert all(0 <= n <= BOUND for n in unrecorded), unrecorded
    assert duplicates <= sum(unrecorded)
    assert states(engine) == Counter({"sent": count})
    print(f"\n{kills} kills: unrecorded at each {unrecorded}; {duplicates} duplicates in all")


@pytest.mark.parametrize("senders", [2, 3])
def test_senders_started_together_share_one_campaign(
    engine: sa.Engine, tmp_path: Path, senders: int
) -> None:
    if senders == 3 and engine.dialect.name == "sqlite":
        pytest.skip("three senders are the PostgreSQL case; two cover SQLite")
    count = 240
    db_url = people(engine, tmp_path, count)
    handler = FaultHandler()
    with Server(handler) as server:
        env = env_for(db_url, server.port, smtp_rate="60")
        running = [live(env) for _ in range(senders)]
        results = [finish(p) for p in running]
    assert all(code == 0 for code, _, _ in results), results
    copies = Counter(r.rcpt for r in handler.received)
    assert copies == Counter(dict.fromkeys(everyone(count), 1))  # each exactly once
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(campaigns)).scalar_one() == 1
    sent_by = [int(out.splitlines()[-1].split(": ")[1].split(" sent")[0]) for _, out, _ in results]
    assert sum(sent_by) == count
    assert sum(1 for n in sent_by if n > 0) >= 2, sent_by  # they really shared it


def _in_a_transaction(engine: sa.Engine) -> bool:
    """Whether another connection holds a transaction open (so a stopped process would
    keep its locks)."""
    if engine.dialect.name == "sqlite":
        probe = sqlite3.connect(engine.url.database, timeout=0)  # type: ignore[arg-type]
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()
    with engine.connect() as conn:
        busy = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
            )
        ).scalar_one()
    return bool(busy)


def stall(process: subprocess.Popen[bytes], engine: sa.Engine) -> None:
    """SIGSTOP the process between two of its transactions. A process stopped inside a
    write transaction holds SQLite's one write lock, and everybody waits for it: that is
    SQLite, not the leases under test."""
    for _ in range(200):
        os.kill(process.pid, signal.SIGSTOP)
        time.sleep(0.05)
        if not _in_a_transaction(engine):
            return
        os.kill(process.pid, signal.SIGCONT)
        time.sleep(random.uniform(0.005, 0.05))
    pytest.fail("the sender never paused between transactions")


def test_a_stalled_sender_keeps_its_rows_and_nobody_gets_two(
    engine: sa.Engine, tmp_path: Path
) -> None:
    count = 120
    db_url = people(engine, tmp_path, count)
    handler = FaultHandler()
    with Server(handler) as server:
        env = env_for(db_url, server.port, smtp_rate="40", smtp_lease="30")
        first = live(env)
        wait_for(lambda: len(handler.received) >= 20)
        stall(first, engine)  # alive, holding leases, not renewing them
        try:
            with engine.connect() as conn:
                held = set(
                    conn.execute(
                        sa.select(deliveries.c.subscriber_id).where(
                            deliveries.c.status == "sending"
                        )
                    ).scalars()
                )
            assert held
            code, _, err = finish(live(env_for(db_url, server.port)))
            assert code == 0, err
            with engine.connect() as conn:
                still = dict(
                    conn.execute(
                        sa.select(deliveries.c.subscriber_id, deliveries.c.status).where(
                            deliveries.c.subscriber_id.in_(held)
                        )
                    ).all()
                )
            # The second sender left every row the live first one holds alone.
            assert set(still.values()) == {"sending"}
        finally:
            os.kill(first.pid, signal.SIGCONT)
        code, _, err = finish(first)
        assert code == 0, err
    assert Counter(r.rcpt for r in handler.received) == Counter(dict.fromkeys(everyone(count), 1))
    assert states(engine) == Counter({"sent": count})


def test_a_resumed_bilingual_campaign_keeps_everyone_on_their_edition(
    engine: sa.Engine, tmp_path: Path
) -> None:
    from newsletter.audience.csvio import import_csv

    count = 300
    spoken = ["es", "en", "pt-BR", "es-MX", ""]  # pt-BR: no edition of its own -> en
    csv = tmp_path / "people.csv"
    csv.write_text(
        "email,name,language\n"
        + "".join(f"r{i}@example.com,R {i},{spoken[i % 5]}\n" for i in range(count))
    )
    import_csv(engine, csv, list_name="bulletin", default_list="bulletin")
    db_url = engine.url.render_as_string(hide_password=False)
    wanted = {
        f"r{i}@example.com": "es" if spoken[i % 5].startswith("es") else "en" for i in range(count)
    }
    handler = FaultHandler()
    with Server(handler) as server:
        first = live(env_for(db_url, server.port, smtp_rate="300"))
        wait_for(lambda: len(handler.received) >= 60)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        # Everyone changes language after the campaign was made: their rows keep the
        # edition they were given.
        with engine.begin() as conn:
            conn.execute(sa.update(subscribers).values(language="es"))
        code, out, err = finish(live(env_for(db_url, server.port)))
        assert code == 0, err
        assert "resuming campaign 1" in out
        copies = assert_duplicates_are_the_same_message(handler.received)
    assert set(copies) == everyone(count)
    assert sum(copies.values()) - count <= BOUND
    for item in handler.received:
        language = wanted[item.rcpt]
        assert item.message["Content-Language"] == language, item.rcpt
        subject = str(item.message["Subject"])
        assert subject.startswith("Noticias" if language == "es" else "Regional"), item.rcpt
    assert states(engine) == Counter({"sent": count})
    with engine.connect() as conn:
        editions = Counter(conn.execute(sa.select(deliveries.c.edition)).scalars())
    assert editions == Counter({"es": 120, "en": 180})


def test_a_dead_senders_rows_go_to_the_next_sender(engine: sa.Engine, tmp_path: Path) -> None:
    count = 120
    db_url = people(engine, tmp_path, count)
    handler = FaultHandler()
    with Server(handler) as server:
        slow = env_for(db_url, server.port, smtp_rate="40", smtp_lease="2")
        first = live(slow)
        wait_for(lambda: len(handler.received) >= 20)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        code, _, err = finish(live(env_for(db_url, server.port, smtp_lease="2")))
        assert code == 0, err
        copies = assert_duplicates_are_the_same_message(handler.received)
    assert set(copies) == everyone(count)
    assert sum(copies.values()) - count <= BOUND
    assert states(engine) == Counter({"sent": count})


class DripServer:
    """Speaks SMTP until the message's final dot, then answers a line a second forever
    (a multi-line 250 that never ends)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 drip ESMTP\r\n")
            in_data = False
            for line in lines:
                if in_data:
                    if line == b".\r\n":
                        while not self.stop.is_set():
                            try:
                                conn.sendall(b"250-still thinking\r\n")
                            except OSError:
                                return
                            time.sleep(1)
                        return
                    continue
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-drip\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    in_data = True
                    conn.sendall(b"354 go on\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_a_server_that_drips_forever_meets_the_deadline(engine: sa.Engine, tmp_path: Path) -> None:
    db_url = people(engine, tmp_path, 3)
    server = DripServer()
    try:
        started = time.monotonic()
        code, out, err = finish(live(env_for(db_url, server.port, smtp_timeout="2")), timeout=60)
        took = time.monotonic() - started
    finally:
        server.close()
    assert code == 0, err
    assert out.splitlines()[-2] == "Campaign 1: 0 sent, 3 deferred, 0 failed, 0 skipped"
    assert took < 30  # bounded by the deadline, not by the server
    with engine.connect() as conn:
        replies = set(
            conn.execute(sa.select(deliveries.c.reply).where(deliveries.c.status == "deferred"))
            .scalars()
            .all()
        )
    assert replies == {"no complete answer within 2 s; cut off"}


SINK = """
import sys, time
from aiosmtpd.controller import Controller
class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(sys.argv[2], "a") as log:
            log.write(envelope.rcpt_tos[0] + "\\n")
        return "250 queued"
controller = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_a_server_that_stops_answering_defers_and_the_retry_sends(
    engine: sa.Engine, tmp_path: Path
) -> None:
    count = 60
    db_url = people(engine, tmp_path, count)
    port, log = free_port(), tmp_path / "sink.log"
    log.touch()
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK, str(port), str(log)], stdout=subprocess.PIPE
    )
    try:
        assert sink.stdout is not None and sink.stdout.readline() == b"ready\n"
        env = env_for(db_url, port, smtp_rate="20", smtp_timeout="2")
        sender = live(env)
        wait_for(lambda: len(log.read_text().splitlines()) >= 10)
        os.kill(sink.pid, signal.SIGSTOP)  # the server hangs mid-send
        code, out, err = finish(sender, timeout=90)
        assert code == 1, (out, err)  # paused after failures in a row, not hung
        assert "deferred" in out
        os.kill(sink.pid, signal.SIGCONT)
        done = states(engine)
        assert done["sending"] == 0
        for _ in range(3):
            code, out, err = finish(live(env_for(db_url, port, smtp_timeout="5")))
            if states(engine) == Counter({"sent": count}):
                break
        assert states(engine) == Counter({"sent": count}), (out, err)
    finally:
        os.kill(sink.pid, signal.SIGCONT)
        sink.kill()
        sink.wait()
    accepted = Counter(log.read_text().splitlines())
    assert set(accepted) == everyone(count)


def test_a_second_ctrl_c_cuts_off_and_records_everything(engine: sa.Engine, tmp_path: Path) -> None:
    count = 200
    db_url = people(engine, tmp_path, count)
    handler = FaultHandler(on_message=lambda _item: time.sleep(0.05))  # a slow relay
    with Server(handler) as server:
        env = env_for(db_url, server.port)
        sender = live(env)
        wait_for(lambda: len(handler.received) >= 20)
        os.kill(sender.pid, signal.SIGINT)
        time.sleep(0.02)
        os.kill(sender.pid, signal.SIGINT)
        code, out, err = finish(sender, timeout=60)
        assert code == 130, (out, err)
        assert "Traceback" not in err
        assert "Stopped. Run the same command again to resume where it left off." in out
        assert states(engine)["sending"] == 0  # nothing left half-written
        code, _, err = finish(live(env))
        assert code == 0, err
        copies = assert_duplicates_are_the_same_message(handler.received)
    assert set(copies) == everyone(count)
    assert sum(copies.values()) - count <= BOUND
    assert states(engine) == Counter({"sent": count})


def test_an_outbox_that_fails_mid_send_defers_and_leaves_no_temp_files(
    engine: sa.Engine, tmp_path: Path
) -> None:
    count = 80
    db_url = people(engine, tmp_path, count)
    outbox = tmp_path / "outbox"
    env = env_for(db_url, None, outbox_dir=str(outbox), smtp_rate="40")
    sender = live(env)
    folder = outbox / "2021-05"
    wait_for(lambda: folder.is_dir() and len(list(folder.glob("*.eml"))) >= 10)
    # The folder vanishes (a full or lost disk): every later write fails.
    written = folder.rename(tmp_path / "saved")
    folder.write_text("not a folder any more")
    code, out, err = finish(sender)
    assert "Traceback" not in err
    assert code == 1, (out, err)  # paused after failures in a row
    recorded = states(engine)
    assert recorded["sending"] == 0
    assert recorded["sent"] == len(list(written.glob("*.eml")))
    assert not list(written.glob(".*"))  # no temporary file left behind
    folder.unlink()
    written.rename(folder)
    code, _, err = finish(live(env_for(db_url, None, outbox_dir=str(outbox))))
    assert code == 0, err
    assert len(list(folder.glob("*.eml"))) == count
    assert states(engine) == Counter({"sent": count})


def test_a_database_locked_past_the_busy_timeout_is_waited_out(
    engine: sa.Engine, tmp_path: Path
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the write lock is SQLite's")
    count = 60
    db_url = people(engine, tmp_path, count)
    handler = FaultHandler()
    with Server(handler) as server:
        sender = live(env_for(db_url, server.port, smtp_rate="30"))
        wait_for(lambda: len(handler.received) >= 10)
        locker = sqlite3.connect(engine.url.database, timeout=0)  # type: ignore[arg-type]
        locker.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        time.sleep(12)  # longer than the busy timeout (10 s)
        locker.rollback()
        locker.close()
        code, out, err = finish(sender)
    assert code == 0, (out, err)
    assert "Traceback" not in err
    assert Counter(r.rcpt for r in handler.received) == Counter(dict.fromkeys(everyone(count), 1))
    assert states(engine) == Counter({"sent": count})


def _sent(engine: sa.Engine) -> int:
    return states(engine)["sent"]


def test_two_workers_send_a_scheduled_campaign_and_obey_pause_resume_cancel(
    engine: sa.Engine, tmp_path: Path
) -> None:
    count = 150
    db_url = people(engine, tmp_path, count)
    handler = FaultHandler()
    with Server(handler) as server:
        env = env_for(db_url, server.port, smtp_rate="30")
        soon = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 3))
        code, out, err = finish(live(env, "--at", soon))
        assert code == 0, err
        assert "Campaign 1 is scheduled for " in out
        assert _sent(engine) == 0 and len(handler.received) == 0
        workers = [newsletter(env, "worker") for _ in range(2)]
        try:
            wait_for(lambda: len(handler.received) >= 30)
            code, out, _ = finish(newsletter(env, "campaigns", "pause", "1"))
            assert (code, out) == (0, "Campaign 1 is paused\n")
            time.sleep(1)  # what was on the wire lands
            paused_at = len(handler.received)
            time.sleep(2)
            assert len(handler.received) == paused_at  # nobody sends more
            assert finish(newsletter(env, "campaigns", "resume", "1"))[0] == 0
            wait_for(lambda: _sent(engine) == count or any(w.poll() is not None for w in workers))
            assert _sent(engine) == count, (states(engine), [finish(w) for w in workers])
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            outputs = [finish(w) for w in workers]
        assert all(code == 0 for code, _, _ in outputs), outputs
        assert all("worker stopped" in err for _, _, err in outputs)
        assert Counter(r.rcpt for r in handler.received) == Counter(
            dict.fromkeys(everyone(count), 1)
        )
        # A cancelled campaign sends nothing, whoever runs.
        code, _, err = finish(live(env, "--new-campaign", "--at", "2999-01-01 00:00"))
        assert code == 0, err
        assert finish(newsletter(env, "campaigns", "cancel", "2"))[0] == 0
        with engine.begin() as conn:
            conn.execute(sa.update(campaigns).where(campaigns.c.id == 2).values(send_at=None))
        before = len(handler.received)
        assert finish(newsletter(env, "worker", "--once"))[0] == 0
        assert len(handler.received) == before
    with engine.connect() as conn:
        emails = dict(conn.execute(sa.select(subscribers.c.id, subscribers.c.email)).all())
    assert len(emails) == count
