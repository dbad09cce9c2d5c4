"""The loop back, end to end: a campaign goes out to a real SMTP server; bounces, a
complaint, a mailto unsubscribe, an auto-reply and a stray message come back into a
mailbox; `newsletter mailbox process` acts on them; the next campaign skips exactly the
people who bounced, complained or left."""

from __future__ import annotations

import mailbox
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from newsletter.audience.subscribers import get_subscriber
from newsletter.cli import app
from tests.conftest import ROOT, SAMPLE
from tests.sending.smtp_server import FaultHandler, Received, Server

runner = CliRunner()
CORPUS = ROOT / "tests" / "data" / "mailbox"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def dsn(item: Received, status: str, action: str = "failed", *, copy: bool = True) -> bytes:
    """A Postfix-style RFC 3464 report, sent to the message's own return path, about it,
    returning its headers (or, copy=False, a stranger's)."""
    template = (CORPUS / "rfc3464-postfix-hard.eml").read_text().replace("\r\n", "\n")
    head, _, _ = template.partition("Content-Type: text/rfc822-headers\n\n")
    returned = item.data.split(b"\r\n\r\n", 1)[0].decode().replace("\r\n", "\n")
    if not copy:
        returned = "From: someone@else.org\nSubject: not ours\nMessage-ID: <x@else.org>"
    template = f"{head}Content-Type: text/rfc822-headers\n\n{returned}\n\n--B1--\n"
    text = template.replace("bounces+c1-7-0123456789ab@example.org", item.mail_from)
    text = text.replace("ana.perez@example.com", item.rcpt).replace("5.1.1", status)
    text = text.replace("Action: failed", f"Action: {action}")
    text = text.replace("<20210531090001.AB12@mx.example.com>", f"<dsn.{item.rcpt}>")
    return text.replace("\n", "\r\n").encode()


def complaint(item: Received) -> bytes:
    """An ARF report whose returned copy is the message itself (no address given)."""
    headers = item.data.split(b"\r\n\r\n", 1)[0].decode()
    return (
        "From: feedback@arf.mail.yahoo.com\r\nTo: fbl@example.org\r\n"
        "Subject: complaint\r\nMessage-ID: <arf.x@yahoo.com>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n"
        "--R\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
        "Version: 1\r\n\r\n"
        f"--R\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n\r\n--R--\r\n"
    ).encode()


def mailto_unsubscribe(item: Received) -> bytes:
    target = item.message["List-Unsubscribe"]
    match = re.search(r"mailto:([^?]+)\?subject=unsubscribe%20([^>]+)>", target)
    assert match
    return (
        f"From: {item.rcpt}\r\nTo: {match.group(1)}\r\nSubject: unsubscribe {match.group(2)}\r\n"
        f"Message-ID: <unsub.{item.rcpt}>\r\n\r\n"
    ).encode()


class Box:
    """The mailbox the reports arrive in: a Maildir, or Dovecot over IMAPS."""

    def __init__(self, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kind = kind
        if kind == "maildir":
            self.maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
            monkeypatch.setenv("NEWSLETTER_MAILBOX_URL", f"maildir:{tmp_path / 'Maildir'}")
        else:
            from tests.mta import PrivateDovecot, dovecot_available
            from tests.sending.smtp_server import free_port

            if not dovecot_available():
                pytest.skip("needs Debian's dovecot-imapd and root (.ci/setup --dev)")
            import tempfile

            # Dovecot's own users must reach it: not under pytest's private folder.
            self.folder = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-"))
            self.folder.chmod(0o755)
            self.dovecot = PrivateDovecot(
                self.folder / "dovecot", free_port(), "reports", "imap-Pa55"
            ).start()
            monkeypatch.setenv("NEWSLETTER_MAILBOX_URL", self.dovecot.url())
            monkeypatch.setenv("NEWSLETTER_MAILBOX_PASSWORD", "imap-Pa55")
            monkeypatch.setenv("NEWSLETTER_MAILBOX_CA_FILE", str(self.dovecot.cert))

    def add(self, raw: bytes, folder: str = "INBOX") -> None:
        if self.kind == "maildir":
            box = self.maildir if folder == "INBOX" else self.maildir.get_folder(folder)
            box.add(raw)
        else:
            self.dovecot.append(raw, folder)

    def count(self, folder: str) -> int:
        if self.kind == "maildir":
            box = self.maildir if folder == "INBOX" else self.maildir.get_folder(folder)
            return len(box)
        return self.dovecot.count(folder)

    def contents(self, folder: str) -> list[bytes]:
        if self.kind == "maildir":
            box = self.maildir.get_folder(folder)
            return [box.get_bytes(k) for k in box.iterkeys()]
        client = self.dovecot.imap()
        try:
            client.select(f'"{folder}"', readonly=True)
            _, data = client.uid("SEARCH", "ALL")
            found = []
            for uid in data[0].split():
                _, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
                found += [bytes(p[1]) for p in parts if isinstance(p, tuple)]
            return found
        finally:
            client.logout()

    def close(self) -> None:
        if self.kind != "maildir":
            import shutil

            self.dovecot.stop()
            shutil.rmtree(self.folder, ignore_errors=True)


def sent(monkeypatch: pytest.MonkeyPatch) -> FaultHandler:
    """Campaign 1 sent live to a real SMTP server; what it received."""
    handler = FaultHandler()
    with Server(handler) as server:
        monkeypatch.setenv("NEWSLETTER_SMTP_PORT", str(server.port))
        assert run("send", str(SAMPLE), "--live", "--yes")[0] == 0
    return handler


@pytest.fixture
def audience(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, published_media: str
) -> sa.Engine:
    rows = "".join(f"p{i}@example.com,Person {i}\n" for i in range(1, 9))
    (tmp_path / "people.csv").write_text("email,name\n" + rows)
    assert run("subscribers", "import", str(tmp_path / "people.csv"))[0] == 0
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "mailbox-test-key")
    monkeypatch.setenv("NEWSLETTER_SEGMENTS_FILE", str(ROOT / "segments.yaml"))
    monkeypatch.setenv("NEWSLETTER_SMTP_SECURITY", "none")
    monkeypatch.setenv("NEWSLETTER_SMTP_HOST", "127.0.0.1")
    return engine


@pytest.mark.parametrize("kind", ["maildir", "imap"])
def test_the_loop_back(
    audience: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    kind: str,
) -> None:
    if kind == "imap" and audience.dialect.name != "sqlite":
        pytest.skip("the IMAP server is the point here; SQLite is enough beside it")
    handler = FaultHandler()
    box = Box(kind, tmp_path, monkeypatch)
    request.addfinalizer(box.close)
    with Server(handler) as server:
        monkeypatch.setenv("NEWSLETTER_SMTP_PORT", str(server.port))
        assert run("send", str(SAMPLE), "--live", "--yes")[0] == 0
        sent = {r.rcpt: r for r in handler.received}
        assert len(sent) == 8

        box.add(dsn(sent["p1@example.com"], "5.1.1"))  # hard: bounced
        box.add(dsn(sent["p2@example.com"], "4.2.2"))  # soft, once: still active
        box.add(dsn(sent["p3@example.com"], "4.4.1", action="delayed"))  # a delay: nothing
        box.add(complaint(sent["p4@example.com"]))  # complained
        box.add(mailto_unsubscribe(sent["p5@example.com"]))  # unsubscribed
        box.add((CORPUS / "out-of-office-auto-submitted.eml").read_bytes())
        box.add((CORPUS / "human-reply.eml").read_bytes())
        stranger = dsn(sent["p6@example.com"], "5.1.1", copy=False)
        stranger = stranger.replace(b"p6@example.com", b"x@else.org")
        box.add(stranger.replace(b"bounces+c1-", b"bounces+c9-"))  # no delivery of ours
        code, out, err = run("mailbox", "process")
        assert code == 0, (out, err)
        assert out.splitlines()[-1] == (
            "Mailbox: 1 bounce, 1 soft-bounce, 1 delayed, 1 complaint, 1 unsubscribe, "
            "1 autoreply, 1 unmatched, 1 unrecognised"
        )
        status = {
            f"p{i}@example.com": get_subscriber(audience, f"p{i}@example.com").status
            for i in range(1, 9)
        }
        assert status == {
            "p1@example.com": "bounced",
            "p2@example.com": "active",
            "p3@example.com": "active",
            "p4@example.com": "complained",
            "p5@example.com": "unsubscribed",
            "p6@example.com": "active",
            "p7@example.com": "active",
            "p8@example.com": "active",
        }
        # Nothing deleted: everything filed, the stray message for a person.
        assert box.count("INBOX") == 0
        assert box.count("Processed") == 7
        assert box.count("Unrecognised") == 1
        # The evidence is shown.
        _, shown, _ = run("subscribers", "show", "p1@example.com")
        assert "bounce (campaign 1): 5.1.1" in shown
        assert "report <dsn.p1@example.com>" in shown
        _, shown, _ = run("campaigns", "show", "1")
        assert "came back: 1 bounce, 1 complaint, 1 delayed, 1 soft-bounce, 1 unsubscribe" in shown

        # The same reports again (a crash before they were filed): nothing more happens.
        for raw in box.contents("Processed"):
            box.add(raw)
        code, out, _ = run("mailbox", "process")
        assert out.splitlines()[-1] == "Mailbox: 7 already"
        with audience.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 5

        # The next campaign skips exactly those who bounced, complained or left.
        handler.received.clear()
        assert run("send", str(SAMPLE), "--live", "--yes", "--new-campaign")[0] == 0
        assert sorted(r.rcpt for r in handler.received) == [
            f"p{i}@example.com" for i in (2, 3, 6, 7, 8)
        ]


def test_soft_bounces_count_within_a_window_across_campaigns(
    audience: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = FaultHandler()
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    monkeypatch.setenv("NEWSLETTER_MAILBOX_URL", f"maildir:{tmp_path / 'Maildir'}")
    with Server(handler) as server:
        monkeypatch.setenv("NEWSLETTER_SMTP_PORT", str(server.port))
        for round_ in range(3):
            handler.received.clear()
            extra = ["--new-campaign"] if round_ else []
            assert run("send", str(SAMPLE), "--live", "--yes", *extra)[0] == 0
            item = next(r for r in handler.received if r.rcpt == "p2@example.com")
            box.add(dsn(item, "4.2.2").replace(b"<dsn.", f"<dsn{round_}.".encode()))
            assert run("mailbox", "process")[0] == 0
            expected = "bounced" if round_ == 2 else "active"
            assert get_subscriber(audience, "p2@example.com").status == expected, round_


def test_a_kill_mid_processing_loses_nothing_and_acts_once(
    audience: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    rows = "".join(f"k{i}@example.com,K {i}\n" for i in range(120))
    (tmp_path / "more.csv").write_text("email,name\n" + rows)
    assert run("subscribers", "import", str(tmp_path / "more.csv"))[0] == 0
    handler = FaultHandler()
    with Server(handler) as server:
        monkeypatch.setenv("NEWSLETTER_SMTP_PORT", str(server.port))
        assert run("send", str(SAMPLE), "--live", "--yes")[0] == 0
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    reports = [dsn(r, "5.1.1") for r in handler.received if r.rcpt.startswith("k")]
    for raw in reports:
        box.add(raw)
    env = {k: v for k, v in os.environ.items()}
    env["NEWSLETTER_MAILBOX_URL"] = f"maildir:{tmp_path / 'Maildir'}"
    command = [sys.executable, "-m", "newsletter", "mailbox", "process"]
    kills = 0
    for delay in (0.45, 0.55, 0.65, 0.75, 0.85):
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL)
        time.sleep(delay)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert kills >= 1
    inbox = mailbox.Maildir(tmp_path / "Maildir", create=False)
    assert len(inbox) == 0
    filed = inbox.get_folder("Processed")
    # Every report is filed (one may be filed twice, if a kill fell between its copy and
    # the removal of the original), and each acted on exactly once.
    assert {filed.get_bytes(k) for k in filed.iterkeys()} == set(reports)
    with audience.connect() as conn:
        kinds = conn.execute(sa.text("SELECT kind, count(*) FROM events GROUP BY kind")).all()
    assert dict(kinds) == {"bounce": len(reports)}
    bounced = [
        get_subscriber(audience, f"k{i}@example.com").status == "bounced" for i in range(120)
    ]
    assert all(bounced)


def test_the_worker_reads_the_mailbox(
    audience: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = sent(monkeypatch)
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box.add(dsn(handler.to("p1@example.com")[0], "5.1.1"))
    monkeypatch.setenv("NEWSLETTER_MAILBOX_URL", f"maildir:{tmp_path / 'Maildir'}")
    code, _, err = run("worker", "--once")
    assert code == 0, err
    assert "mailbox: 1 bounce" in err
    assert get_subscriber(audience, "p1@example.com").status == "bounced"


def test_the_worker_wakes_on_new_mail_with_imap_idle(
    audience: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    if audience.dialect.name != "sqlite":
        pytest.skip("the IMAP server is the point here; SQLite is enough beside it")
    box = Box("imap", tmp_path, monkeypatch)
    request.addfinalizer(box.close)
    handler = FaultHandler()
    with Server(handler) as server:
        monkeypatch.setenv("NEWSLETTER_SMTP_PORT", str(server.port))
        assert run("send", str(SAMPLE), "--live", "--yes")[0] == 0
        env = dict(os.environ, NEWSLETTER_WORKER_POLL="60")
        worker = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "worker"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            time.sleep(3)  # started, found nothing, now idling (the poll is a minute)
            box.add(dsn(handler.to("p1@example.com")[0], "5.1.1"))
            deadline = time.monotonic() + 20
            while get_subscriber(audience, "p1@example.com").status != "bounced":
                assert time.monotonic() < deadline, "the worker did not wake on new mail"
                time.sleep(0.2)
        finally:
            worker.send_signal(signal.SIGTERM)
            _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert b"mailbox: 1 bounce" in err


def test_an_mbox_file_is_read_and_filed_beside_it(
    audience: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = sent(monkeypatch)
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    box.add(dsn(handler.to("p1@example.com")[0], "5.1.1"))
    box.add((CORPUS / "human-reply.eml").read_bytes())
    box.flush()
    box.close()
    monkeypatch.setenv("NEWSLETTER_MAILBOX_URL", f"mbox:{path}")
    code, out, err = run("mailbox", "process")
    assert code == 0, err
    assert out.splitlines()[-1] == "Mailbox: 1 bounce, 1 unrecognised"
    assert len(mailbox.mbox(path)) == 0
    assert len(mailbox.mbox(tmp_path / "bounces.mbox.processed")) == 1
    assert len(mailbox.mbox(tmp_path / "bounces.mbox.unrecognised")) == 1
    assert get_subscriber(audience, "p1@example.com").status == "bounced"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "ftp://x",
            "NEWSLETTER_MAILBOX_URL: use imaps://user@host/INBOX, maildir:/path or mbox:/path",
        ),
        (
            "imaps://host/INBOX",
            "NEWSLETTER_MAILBOX_URL: use imaps://user@host/INBOX, maildir:/path or mbox:/path",
        ),
        (
            "maildir:/nonexistent/Maildir",
            "NEWSLETTER_MAILBOX_URL: /nonexistent/Maildir is not a Maildir (no cur/)",
        ),
    ],
)
def test_a_mailbox_url_that_cannot_work_is_one_line(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.setenv("NEWSLETTER_MAILBOX_URL", url)
    code, _, err = run("mailbox", "process")
    assert (code, err) == (1, f"Error: {message}\n")
