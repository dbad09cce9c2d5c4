"""Sending against a real aiosmtpd server with injected faults. Nothing here mocks
smtplib, aiosmtplib or the database."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from newsletter.audience.db import subscribers
from newsletter.audience.subscribers import get_subscriber, unsubscribe
from newsletter.cli import app
from newsletter.sending.tables import campaigns, deliveries
from newsletter.sending.transport import SmtpTransport
from newsletter.settings import Settings
from tests.conftest import ROOT, SAMPLE, copy_sample
from tests.sending.smtp_server import (
    FaultHandler,
    GreetingServer,
    Server,
    free_port,
    refusing_logins,
)

runner = CliRunner()
PASSWORD = "s3cret-Pa55word"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def audience(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, published_media: str
) -> sa.Engine:
    """Five subscribers on the default list, and the settings a send needs (its images
    published where they answer)."""
    rows = "".join(f"p{i}@example.com,Person {i},Pat {i}\n" for i in range(1, 6))
    (tmp_path / "people.csv").write_text("email,name,first_name\n" + rows)
    assert run("subscribers", "import", str(tmp_path / "people.csv"))[0] == 0
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("NEWSLETTER_SEGMENTS_FILE", str(ROOT / "segments.yaml"))
    monkeypatch.setenv("NEWSLETTER_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("NEWSLETTER_SMTP_RETRY_DELAY", "0")
    monkeypatch.setenv("NEWSLETTER_SMTP_CONNECTIONS", "2")
    monkeypatch.setenv("NEWSLETTER_SMTP_TIMEOUT", "5")
    return engine


def use(monkeypatch: pytest.MonkeyPatch, port: int, **extra: str) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("NEWSLETTER_SMTP_PORT", str(port))
    monkeypatch.setenv("NEWSLETTER_SMTP_SECURITY", "none")
    for name, value in extra.items():
        monkeypatch.setenv(f"NEWSLETTER_{name.upper()}", value)


def ledger(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(subscribers.c.email, deliveries.c.status).join(
                subscribers, subscribers.c.id == deliveries.c.subscriber_id
            )
        ).all()
    return dict(rows)


def live() -> tuple[int, str, str]:
    return run("send", str(SAMPLE), "--live", "--yes")


def test_live_send_delivers_with_the_required_headers(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = FaultHandler()
    with Server(handler) as server:
        use(monkeypatch, server.port)
        code, out, _ = live()
        assert code == 0, out
        assert out.splitlines()[-1] == "Campaign 1: 5 sent, 0 deferred, 0 failed, 0 skipped"
        assert sorted(r.rcpt for r in handler.received) == [
            f"p{i}@example.com" for i in range(1, 6)
        ]
        msg = handler.to("p1@example.com")[0].message
        sid = get_subscriber(audience, "p1@example.com").id
        assert msg["From"] == "Regional Migration News <newsletter@example.org>"
        assert msg["To"] == "Person 1 <p1@example.com>"
        assert msg["Subject"] == "Regional Migration News: May 2021"
        assert msg["Date"]
        assert msg["Message-ID"].startswith(f"<c1.s{sid}.") and msg["Message-ID"].endswith(
            "@example.org>"
        )
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsub = msg["List-Unsubscribe"]
        assert unsub.startswith("<https://newsletter.example.org/unsubscribe/")
        assert ", <mailto:unsubscribe@example.org?subject=unsubscribe%20" in unsub
        assert "p1@example.com" not in unsub  # the token carries no address
        assert msg["List-Id"] == '"Regional Migration News" <bulletin.example.org>'
        assert msg["X-Newsletter-Campaign"] == "campaign-1"
        assert msg["X-Newsletter-Subscriber"] == str(sid)
        assert msg.get_content_type() == "multipart/alternative"
        assert "Hello Pat 1," in msg.get_body(("plain",)).get_content()
        assert set(ledger(audience).values()) == {"sent"}

        # A rerun after completion sends nothing.
        handler.received.clear()
        code, out, _ = live()
        assert code == 0
        assert "Campaign:   resuming campaign 1 (5 sent, 0 to go)" in out
        assert out.splitlines()[-1] == "Campaign 1: 0 sent, 0 deferred, 0 failed, 0 skipped"
        assert handler.received == []


def test_a_live_send_waits_until_every_image_answers(
    audience: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    media_site: tuple[Path, str],
) -> None:
    # The images are prepared into a folder nobody publishes: the site answers 404.
    folder, url = media_site
    monkeypatch.setenv("NEWSLETTER_MEDIA_DIR", str(tmp_path / "unpublished"))
    fresh = tmp_path.name  # nothing is published under it yet
    monkeypatch.setenv("NEWSLETTER_MEDIA_URL", f"{url}/{fresh}")
    handler = FaultHandler()
    with Server(handler) as server:
        use(monkeypatch, server.port)
        code, out, err = live()
        assert (code, out) == (1, "")
        [line] = err.splitlines()
        assert line.startswith("Error: 7 of the email's images do not answer, and every reader")
        assert f"{url}/{fresh}/" in line and "answered 404" in line
        assert handler.received == [] and ledger(audience) == {}
        # Published where the email loads them from, they answer, and the send goes out.
        monkeypatch.setenv("NEWSLETTER_MEDIA_DIR", str(folder / fresh))
        code, out, err = live()
        assert code == 0, err
        assert "Images:     7, each answers at its address\n" in out
        assert len(handler.received) == 5


def test_a_send_to_the_outbox_only_warns_about_images(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch, published_media: str
) -> None:
    monkeypatch.setenv("NEWSLETTER_MEDIA_URL", f"{published_media}/not-here")
    code, out, err = live()
    assert code == 0, err
    assert "Images:     7 of 7 do not answer (fine for the outbox; a send over SMTP" in out
    assert out.splitlines()[-1].startswith("Campaign 1: 5 sent")


def test_the_plan_shows_each_edition_and_each_reader_gets_theirs(
    audience: sa.Engine, tmp_path: Path
) -> None:
    with audience.begin() as conn:
        for n, language in enumerate(["es", "es-MX", "pt-BR", "en"], 1):
            conn.execute(
                sa.update(subscribers)
                .where(subscribers.c.email == f"p{n}@example.com")
                .values(language=language)
            )
    code, out, err = live()
    assert code == 0, err
    lines = out.splitlines()
    at = lines.index("Recipients: 5")
    assert re.fullmatch(
        r"Editions:   en\s+3 recipients  content [0-9a-f]{12}  Regional Migration News: May 2021",
        lines[at + 1],
    )
    assert re.fullmatch(
        r" {12}es\s+2 recipients  content [0-9a-f]{12}  Noticias Regionales sobre Migración: "
        "mayo de 2021",
        lines[at + 2],
    )
    sent = {}
    for path in (tmp_path / "outbox" / "2021-05").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        sent[str(message["To"]).split("<")[1].rstrip(">")] = message
    assert {to: m["Content-Language"] for to, m in sent.items()} == {
        "p1@example.com": "es",
        "p2@example.com": "es",
        "p3@example.com": "en",
        "p4@example.com": "en",
        "p5@example.com": "en",
    }
    spanish = sent["p1@example.com"].get_body(("plain",))
    assert spanish is not None
    text = spanish.get_content()
    assert "Hola, Pat 1:" in text and "Darse de baja: https://" in text
    assert (
        "Ver este correo en el navegador: https://newsletter.example.org/archive/2021-05/es/"
        in text
    )


def test_a_test_send_takes_the_language(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = FaultHandler()
    with Server(handler) as server:
        use(monkeypatch, server.port)
        code, _, err = run(
            "send", str(SAMPLE), "--test", "--to", "ed@example.org", "--lang", "es-MX"
        )
        assert code == 0, err
        [item] = handler.received
        assert item.message["Subject"] == "[TEST] Noticias Regionales sobre Migración: mayo de 2021"
    code, _, err = run("send", str(SAMPLE), "--live", "--lang", "es")
    assert code == 1 and "--lang goes with --test" in err


def test_a_campaign_report_draws_what_happened(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, browser
) -> None:  # type: ignore[no-untyped-def]
    import json

    from newsletter import tokens
    from newsletter.services import database
    from newsletter.services import subscribers as people
    from newsletter.settings import load_settings

    handler = FaultHandler(
        rcpt_replies={"p1@example.com": "550 5.1.1 no such user"},
        data_replies={"p3@example.com": "451 4.3.0 try later"},
    )
    with Server(handler) as server:
        use(monkeypatch, server.port)
        assert live()[0] == 0
    # p5 leaves through the unsubscribe link of the email: the report counts it.
    sid = get_subscriber(audience, "p5@example.com").id
    with database(load_settings()).begin() as conn:
        people.unsubscribe_one_click(conn, sid, tokens.campaign_scope(1))
        people.unsubscribe_one_click(conn, sid, tokens.campaign_scope(1))  # again: once
    code, out, err = run("campaigns", "report", "1", "--out", str(tmp_path / "reports"))
    assert code == 0, err
    page, data_file = (
        tmp_path / "reports" / "campaign-1.html",
        tmp_path / "reports" / "campaign-1.json",
    )
    assert out == f"Wrote {page} and {data_file}\n"
    data = json.loads(data_file.read_text())
    assert (data["counts"]["sent"], data["counts"]["failed"], data["counts"]["deferred"]) == (
        3,
        1,
        1,
    )
    assert data["came_back"] == {"bounce": 0, "soft-bounce": 0, "complaint": 0, "unsubscribe": 1}
    assert data["segments"] == {"everyone": 5} and data["editions"]["en"]["sent"] == 3
    assert data["timeline"][-1] == {
        "at": data["timeline"][-1]["at"],
        "sent": 3,
        "deferred": 1,
        "failed": 1,
    }
    assert {f["email"]: f["reply"] for f in data["failures"]} == {
        "p1@example.com": "5.1.1 no such user",
        "p3@example.com": "4.3.0 try later",
    }
    html = page.read_text()
    assert html.count("<svg") == 3 and "550" in html and "no such user" in html
    # Self-contained: nothing is fetched when it is opened.
    fetched: list[str] = []
    viewer = browser.new_page()
    viewer.on("request", lambda r: fetched.append(r.url))
    viewer.goto(page.as_uri())
    viewer.wait_for_load_state("load")
    assert fetched == [page.as_uri()]
    assert viewer.locator("svg").count() == 3
    viewer.close()


def test_recipient_refusals(audience: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    handler = FaultHandler(
        rcpt_replies={
            "p1@example.com": "550 5.1.1 no such user",
            "p2@example.com": "452 4.2.2 mailbox full",
        },
        data_replies={
            "p3@example.com": "451 4.3.0 try later",
            "p4@example.com": "554 5.7.1 rejected as spam",
        },
    )
    with Server(handler) as server:
        use(monkeypatch, server.port)
        code, out, _ = live()
        assert code == 0
        assert out.splitlines()[-2] == "Campaign 1: 1 sent, 2 deferred, 2 failed, 0 skipped"
        assert ledger(audience) == {
            "p1@example.com": "failed",
            "p2@example.com": "deferred",
            "p3@example.com": "deferred",
            "p4@example.com": "failed",
            "p5@example.com": "sent",
        }
        # 550 on RCPT is a bounce; 554 after DATA is not about the address.
        assert get_subscriber(audience, "p1@example.com").status == "bounced"
        assert get_subscriber(audience, "p4@example.com").status == "active"
        code, out, _ = run("campaigns", "show", "1")
        assert "  failed   p1@example.com: 550 5.1.1 no such user (attempts: 1)" in out
        assert "  deferred p2@example.com: 452 4.2.2 mailbox full (attempts: 1" in out
        assert "  failed   p4@example.com: 554 5.7.1 rejected as spam (attempts: 1)" in out

        # The mailbox has room again: retry sends the deferred ones now.
        handler.rcpt_replies.clear()
        handler.data_replies.clear()
        code, out, _ = run("campaigns", "retry", "1")
        assert (code, out.splitlines()[0]) == (
            0,
            "Campaign 1: 2 sent, 0 deferred, 0 failed, 0 skipped",
        )
        assert [r.rcpt for r in handler.received].count("p1@example.com") == 0
        assert ledger(audience)["p2@example.com"] == "sent"


def test_deferrals_give_up_after_the_last_attempt(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = FaultHandler(rcpt_replies={"p1@example.com": "451 4.7.1 greylisted"})
    with Server(handler) as server:
        use(monkeypatch, server.port, smtp_max_attempts="3")
        for _ in range(3):
            run("campaigns", "retry", "1") if ledger(audience) else live()
        assert ledger(audience)["p1@example.com"] == "failed"
        _, out, _ = run("campaigns", "show", "1")
        assert "gave up after 3 attempts: 451 4.7.1 greylisted" in out


def test_a_drop_after_the_final_dot_is_resent_with_the_same_message_id(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = FaultHandler(drop_after_dot={"p2@example.com"})
    with Server(handler) as server:
        use(monkeypatch, server.port)
        live()
        assert ledger(audience)["p2@example.com"] == "deferred"
        run("campaigns", "retry", "1")
        copies = handler.to("p2@example.com")
        assert len(copies) == 2
        assert copies[0].message["Message-ID"] == copies[1].message["Message-ID"]
        assert set(ledger(audience).values()) == {"sent"}


def test_greeting_421_and_refused_connection_abort_with_nothing_marked(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with GreetingServer(b"421 4.3.2 too busy, try later\r\n") as busy:
        use(monkeypatch, busy.port)
        code, _, err = live()
        assert code == 1
        assert err == (
            f"Error: 127.0.0.1:{busy.port} (none) answered 421 4.3.2 too busy, try later; "
            "nothing was sent\n"
        )
    use(monkeypatch, free_port())
    code, _, err = live()
    assert code == 1
    assert err.endswith("(none): connection refused; nothing was sent\n")
    with audience.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(campaigns)).scalar() == 0


def test_failed_login_aborts_before_any_row_changes(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = FaultHandler()
    with Server(handler, auth_require_tls=False, authenticator=refusing_logins) as server:
        use(
            monkeypatch,
            server.port,
            smtp_security="starttls",
            smtp_username="editor",
            smtp_password=PASSWORD,
        )
        # The server offers no STARTTLS: refused before the password could travel in clear.
        code, out, err = live()
        assert code == 1
        assert "does not offer STARTTLS; refusing to go on unencrypted" in err
        monkeypatch.setenv("NEWSLETTER_SMTP_SECURITY", "none")
        code, out, err = live()
        assert "refusing to send the SMTP password unencrypted" in err
        assert PASSWORD not in out + err
    assert handler.received == []
    with audience.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 0


def test_header_injection_through_a_name_goes_nowhere(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with audience.begin() as conn:  # bypass import validation, as a compromised row would
        conn.execute(
            sa.update(subscribers)
            .where(subscribers.c.email_key == "p1@example.com")
            .values(name="Eve\r\nBcc: everyone@example.net")
        )
    handler = FaultHandler()
    with Server(handler) as server:
        use(monkeypatch, server.port)
        live()
    raw = handler.to("p1@example.com")[0].data
    msg = email.message_from_bytes(raw, policy=email.policy.SMTP)
    assert "Bcc" not in msg
    assert b"everyone@example.net" not in raw.split(b"\r\n\r\n", 1)[0]
    assert msg["To"] == "p1@example.com"
    assert [r.rcpt for r in handler.received if "everyone" in r.rcpt] == []


@pytest.mark.parametrize(
    "address", ["x=?y@example.com", "a\r\nBcc: everyone@example.net", "p\x7f\x1b@example.com"]
)
@pytest.mark.parametrize("where", ["smtp", "outbox"])
def test_an_address_no_message_can_carry_fails_that_delivery_only(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch, address: str, where: str
) -> None:
    with audience.begin() as conn:  # bypass every check where addresses enter
        conn.execute(
            sa.update(subscribers)
            .where(subscribers.c.email_key == "p3@example.com")
            .values(email=address, email_key=address.lower())
        )
    handler = FaultHandler()
    with Server(handler) as server:
        if where == "smtp":
            use(monkeypatch, server.port)
        code, out, err = live()
        assert code == 0, (out, err)
        assert out.splitlines()[-1] == "Campaign 1: 4 sent, 0 deferred, 1 failed, 0 skipped"
        state = ledger(audience)
        assert state.pop(address) == "failed"
        assert set(state.values()) == {"sent"}
        with audience.connect() as conn:
            reply = conn.execute(
                sa.select(deliveries.c.reply).where(deliveries.c.status == "failed")
            ).scalar_one()
        assert reply.startswith("this message could not be built: ")
        # A second run has nothing left to do, and sends nobody twice.
        handler.received.clear()
        assert live()[1].splitlines()[-1] == "Campaign 1: 0 sent, 0 deferred, 0 failed, 0 skipped"
        assert handler.received == []


def test_someone_who_unsubscribes_during_the_send_is_skipped(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.sending import runner as runner_module

    monkeypatch.setattr(runner_module, "claim_size", lambda _settings: 1)

    def leave(_item: object) -> None:
        if len(handler.received) == 1:
            unsubscribe(audience, "p4@example.com")

    handler = FaultHandler(on_message=leave)
    with Server(handler) as server:
        use(monkeypatch, server.port, smtp_connections="1")
        _, out, _ = live()
    assert out.splitlines()[-1] == "Campaign 1: 4 sent, 0 deferred, 0 failed, 1 skipped", (
        out,
        ledger(audience),
    )
    assert handler.to("p4@example.com") == []
    assert ledger(audience)["p4@example.com"] == "skipped"


def test_pause_after_failures_in_a_row(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.sending import runner as runner_module

    monkeypatch.setattr(runner_module, "claim_size", lambda _settings: 1)
    handler = FaultHandler(
        rcpt_replies={f"p{i}@example.com": "451 4.4.5 system overloaded" for i in range(1, 6)}
    )
    with Server(handler) as server:
        use(monkeypatch, server.port, smtp_pause_after="2", smtp_connections="1")
        code, out, _ = live()
    assert code == 1
    assert "Paused: paused after 2 failures in a row; the last: 451 4.4.5 system overloaded." in out
    assert sorted(ledger(audience).values()) == [
        "deferred",
        "deferred",
        "pending",
        "pending",
        "pending",
    ]


def test_a_changed_issue_is_not_mixed_into_a_running_campaign(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    issue = copy_sample(tmp_path)
    run("send", str(issue), "--live", "--yes")
    issue.write_text(
        SAMPLE.read_text(encoding="utf-8").replace("That is all for May.", "That is all."),
        encoding="utf-8",
    )
    code, _, err = run("send", str(issue), "--live", "--yes")
    assert code == 1
    assert "campaign 1 was made from another version: " in err
    assert f"{issue} (or a translation or an image of it) changed (content hash" in err
    assert "The campaign sends the version it froze and will not mix two" in err
    assert err.endswith("(and says who already received the issue)\n")
    code, out, _ = run("send", str(issue), "--live", "--yes", "--new-campaign")
    assert code == 0
    assert (
        "Already:    5 of these 5 recipients received this issue in an earlier campaign: "
        "they would get it again\n" in out
    )


def test_a_changed_setting_is_told_apart_from_a_changed_issue(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert live()[0] == 0
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://news.example.net")
    code, _, err = run("send", str(SAMPLE), "--live", "--yes")
    assert code == 1
    assert "the issue is as it was, but a setting or the theme that shapes the email changed" in err
    # Without --yes, a new campaign asks first, saying who would get it twice.
    result = runner.invoke(app, ["send", str(SAMPLE), "--live", "--new-campaign"], input="n\n")
    assert result.exit_code == 1
    assert "Send it again to those 5, and to the others? [y/N]: n\n" in result.stdout
    assert result.stdout.endswith("Nothing was sent.\n")


def test_an_invalid_issue_is_refused(audience: sa.Engine, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("subject: Hi\n")
    code, out, err = run("send", str(bad), "--live", "--yes")
    assert (code, out) == (1, "")
    assert err.startswith(f"{bad}:1:1: preheader: is required\n")


def test_outbox_is_the_default_transport(audience: sa.Engine, tmp_path: Path) -> None:
    code, out, _ = live()
    assert code == 0
    files = sorted((tmp_path / "outbox" / "2021-05").glob("*.eml"))
    assert len(files) == 5
    assert "Via:        the outbox folder" in out


def test_test_send_goes_to_the_test_recipients_only(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = FaultHandler()
    with Server(handler) as server:
        use(monkeypatch, server.port, test_recipients="editor@example.org, second@example.org")
        code, out, _ = run("send", str(SAMPLE), "--test")
        assert code == 0
        assert out.splitlines()[-1] == "Test send: 2 sent, 0 deferred, 0 failed, 0 skipped"
        assert sorted(r.rcpt for r in handler.received) == [
            "editor@example.org",
            "second@example.org",
        ]
        assert handler.received[0].message["Subject"] == "[TEST] Regional Migration News: May 2021"
        code, out, _ = run("send", str(SAMPLE), "--test", "--to", "me@example.org")
        assert handler.received[-1].rcpt == "me@example.org"
    with audience.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 0


@pytest.fixture
def tls_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A self-signed certificate for 127.0.0.1 that the client is told to trust."""
    import ssl

    from tests.mta import self_signed

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    self_signed(key, cert)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_auth_535_aborts_with_nothing_marked_and_no_password_shown(
    audience: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    tls_context,  # type: ignore[no-untyped-def]
) -> None:
    from aiosmtpd.smtp import AuthResult

    def check(_server, _session, _envelope, _mechanism, data):  # type: ignore[no-untyped-def]
        if data.password == PASSWORD.encode():
            return AuthResult(success=True, handled=False)
        # Some relays echo what they were sent; the password must not reach the screen.
        return AuthResult(
            success=False, handled=False, message=f"535 5.7.8 bad password {data.password.decode()}"
        )

    handler = FaultHandler()
    with Server(
        handler, tls_context=tls_context, require_starttls=True, authenticator=check
    ) as server:
        use(
            monkeypatch,
            server.port,
            smtp_security="starttls",
            smtp_username="editor",
            smtp_password="wrong-" + PASSWORD,
        )
        code, out, err = live()
        assert code == 1
        assert err.startswith(
            f"Error: 127.0.0.1:{server.port} (starttls) refused the login for editor (535 "
        )
        assert err.endswith("; nothing was sent\n")
        assert "[redacted]" in err
        assert PASSWORD not in out + err
        with audience.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 0
        # With the right password, over STARTTLS, it goes.
        monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", PASSWORD)
        code, out, _ = live()
        assert code == 0, out
        assert len(handler.received) == 5


def test_421_mid_session_reconnects_and_defers(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = FaultHandler(rcpt_replies={"p2@example.com": "421 4.3.2 shutting down"})
    with Server(handler) as server:
        use(monkeypatch, server.port, smtp_connections="1")
        code, _, _ = live()
        assert code == 0
        assert ledger(audience) == {
            "p1@example.com": "sent",
            "p2@example.com": "deferred",
            "p3@example.com": "sent",
            "p4@example.com": "sent",
            "p5@example.com": "sent",
        }
        handler.rcpt_replies.clear()
        run("campaigns", "retry", "1")
        assert set(ledger(audience).values()) == {"sent"}


def test_live_send_asks_first(audience: sa.Engine) -> None:
    result = runner.invoke(app, ["send", str(SAMPLE), "--live"], input="n\n")
    assert result.exit_code == 1
    assert result.stdout.endswith("Send it? [y/N]: n\nNothing was sent.\n")
    with audience.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(campaigns)).scalar() == 0
    result = runner.invoke(app, ["send", str(SAMPLE), "--live"], input="y\n")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "Campaign 1: 5 sent, 0 deferred, 0 failed, 0 skipped"


def test_send_needs_test_or_live(audience: sa.Engine) -> None:
    assert run("send", str(SAMPLE)) == (1, "", "Error: choose one: --test or --live\n")


def test_international_addresses(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "intl.csv").write_text("email,name\nana@exämple.com,Ana\njosé@example.com,José\n")
    run("subscribers", "import", str(tmp_path / "intl.csv"))
    handler = FaultHandler()
    with Server(handler) as server:
        use(monkeypatch, server.port)
        code, _, _ = live()
    assert code == 0
    assert handler.to("ana@xn--exmple-cua.com")[0].message["To"] == "Ana <ana@xn--exmple-cua.com>"
    assert ledger(audience)["josé@example.com"] == "failed"
    assert "needs SMTPUTF8" in run("campaigns", "show", "1")[1]


def test_verify_tells_the_copy_we_sent_from_any_other(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    handler = FaultHandler()
    with Server(handler) as server:
        use(monkeypatch, server.port)
        assert live()[0] == 0
    raw = handler.to("p2@example.com")[0].data
    # As a mail program saves it: a Received header in front, LF line ends.
    saved = tmp_path / "saved.eml"
    saved.write_bytes(
        b"Received: from relay by mx; Mon, 31 May 2021 09:00:01 +0000\n"
        + raw.replace(b"\r\n", b"\n")
    )
    code, out, _ = run("campaigns", "verify", "1", "p2@example.com", str(saved))
    assert code == 0, out
    assert out.startswith(f"{saved}: this is the copy of campaign 1 sent to p2@example.com")
    # Someone else's copy, and an altered one, are not.
    code, out, _ = run("campaigns", "verify", "1", "p3@example.com", str(saved))
    assert code == 1
    assert "this is not the copy of campaign 1 we sent to p3@example.com" in out
    saved.write_bytes(raw.replace(b"Subject: ", b"Subject: Re: ", 1))
    assert run("campaigns", "verify", "1", "p2@example.com", str(saved))[0] == 1
    # A copy recorded by an earlier version, as the plain SHA-256 of its bytes.
    p2 = get_subscriber(audience, "p2@example.com").id
    with audience.begin() as conn:
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.subscriber_id == p2)
            .values(message_hash=hashlib.sha256(raw).hexdigest())
        )
    saved.write_bytes(raw)
    assert run("campaigns", "verify", "1", "p2@example.com", str(saved))[0] == 0


def test_a_campaign_freezes_its_render_and_records_its_git_commit(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import subprocess

    repo = tmp_path / "repo"
    issue = copy_sample(repo / "issues")
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "May"]):
        subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=E", "-c", "user.email=e@example.org", *args],
            check=True,
        )
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.setenv("NEWSLETTER_SMTP_PAUSE_AFTER", "50")
    handler = FaultHandler(rcpt_replies={"p5@example.com": "451 4.7.1 try later"})
    with Server(handler) as server:
        use(monkeypatch, server.port)
        code, _, err = run("send", str(issue), "--live", "--yes")
        assert code == 0, err
        _, shown, _ = run("campaigns", "show", "1")
        assert f"git commit: {head}\n" in shown
        # The theme changes after the campaign was made: the retry sends the frozen copy.
        theme = tmp_path / "templates"
        import shutil

        shutil.copytree(ROOT / "templates", theme)
        text = theme / "default" / "issue.txt.j2"
        text.write_text(text.read_text().replace("Hello", "Howdy"))
        monkeypatch.setenv("NEWSLETTER_TEMPLATES_DIR", str(theme))
        handler.rcpt_replies.clear()
        assert run("campaigns", "retry", "1")[0] == 0
    first = handler.to("p1@example.com")[0].message.get_body(("plain",)).get_content()
    retried = handler.to("p5@example.com")[0].message.get_body(("plain",)).get_content()
    assert "Hello Pat 1," in first
    assert "Hello Pat 5," in retried  # not "Howdy": the bytes frozen in the campaign


def test_every_message_has_its_own_signed_return_path_and_a_feedback_id(
    audience: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter import tokens
    from newsletter.settings import load_settings

    monkeypatch.setenv("NEWSLETTER_BOUNCE_ADDRESS", "bounces@news.example.org")
    monkeypatch.setenv("NEWSLETTER_TEST_RECIPIENTS", "editor@example.org")
    handler = FaultHandler()
    with Server(handler) as server:
        use(monkeypatch, server.port)
        assert live()[0] == 0
        assert run("send", str(SAMPLE), "--test")[0] == 0
    settings = load_settings()
    seen = set()
    for item in handler.received:
        local, _, domain = item.mail_from.rpartition("@")
        assert domain == "news.example.org" and local.startswith("bounces+")
        found = tokens.read_return_path(settings, item.mail_from)
        assert found is not None, item.mail_from
        seen.add(found[0])
        if found[0] == "c":
            sid = get_subscriber(audience, item.rcpt).id
            assert found[1:] == (1, sid)
            assert item.message["Feedback-ID"] == "campaign-1:bulletin:newsletter:example.org"
    assert seen == {"c", "t"}
    # A tag altered, or signed with another key, is not ours.
    genuine = handler.to("p1@example.com")[0].mail_from
    assert tokens.read_return_path(settings, genuine.replace("c1-", "c2-")) is None
    assert tokens.read_return_path(settings, genuine.replace("news.", "other.")) is None
    forged = tokens.return_path(settings, "another key", "c", 1, 1)
    assert tokens.read_return_path(settings, forged) is None


def test_the_next_message_is_built_while_a_verdict_is_awaited() -> None:
    """The transport's `then` runs once a message is written, before its reply is read,
    and never for a message refused before its content."""
    handler = FaultHandler(rcpt_replies={"no@example.com": "550 5.1.1 no such user"})
    built: list[str] = []
    message = b"Subject: x\r\n\r\nhello\r\n"
    with Server(handler) as server:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, smtp_host="127.0.0.1", smtp_port=server.port, smtp_security="none"
        )
        transport = SmtpTransport(settings)
        transport.open()
        try:
            outcomes = [
                transport.send(
                    "news@example.org",
                    to,
                    message,
                    key=to,
                    transparent=True,
                    then=lambda to=to: built.append(to),
                )
                for to in ("yes@example.com", "no@example.com")
            ]
        finally:
            transport.close()
    assert [o.kind for o in outcomes] == ["sent", "failed"]
    assert built == ["yes@example.com"]
    assert [r.rcpt for r in handler.received] == ["yes@example.com"]
