"""Every public form, in Debian's chromium, against a real `newsletter serve` process:
signup, the confirmation email's link and its button, the unsubscribe button, and the
preferences form (save, and subscribe again). After each, the database agrees."""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter import tokens
from newsletter.audience.csvio import import_csv
from newsletter.audience.db import subscribers
from newsletter.audience.subscribers import create_list, get_subscriber
from tests.conftest import ROOT, SAMPLE, axe_violations
from tests.sending.smtp_server import free_port
from tests.web.conftest import KEY

ANA = "ana.perez@example.com"


class Served:
    def __init__(
        self, url: str, outbox: Path, process: subprocess.Popen[bytes], env: dict[str, str]
    ) -> None:
        self.url, self.outbox, self.process, self.env = url, outbox, process, env


@pytest.fixture
def served(engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    import_csv(
        engine, ROOT / "sample-subscribers.csv", list_name="bulletin", default_list="bulletin"
    )
    with engine.begin() as conn:  # read in English, but where a test says otherwise
        conn.execute(sa.update(subscribers).values(language="en"))
    create_list(engine, "events", "Event invitations")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    outbox = tmp_path / "outbox"
    env = {
        **os.environ,
        "NEWSLETTER_SECRET_KEY": KEY,
        "NEWSLETTER_BASE_URL": url,
        "NEWSLETTER_OUTBOX_DIR": str(outbox),
        "NEWSLETTER_SEGMENTS_FILE": str(ROOT / "segments.yaml"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{url}/signup", timeout=2) as response:
                assert response.status == 200
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                _, err = process.communicate(timeout=5)
                pytest.fail(f"newsletter serve did not start: {err.decode()[-2000:]}")
            time.sleep(0.1)
    yield Served(url, outbox, process, env)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def _confirmation_link(outbox: Path) -> str:
    deadline = time.monotonic() + 10
    while not list((outbox / "confirmations").glob("*.eml")):
        assert time.monotonic() < deadline, "no confirmation email in the outbox"
        time.sleep(0.05)
    (path,) = (outbox / "confirmations").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return re.search(r"http://127\.0\.0\.1:\d+/confirm/\S+", text).group(0)  # type: ignore[union-attr]


def test_signup_then_confirm_in_a_browser(served: Served, page, engine: sa.Engine) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{served.url}/signup")
    page.fill("#email", "new.reader@example.org")
    page.fill("#name", "New Reader")
    page.select_option("#list", "bulletin")
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Check your inbox"
    # The request is stored and the email sent after the answer: wait for the email.
    link = _confirmation_link(served.outbox)
    new = get_subscriber(engine, "new.reader@example.org")
    assert new.lists == {"bulletin": "unconfirmed"}

    page.goto(link)
    assert page.locator("h1").inner_text() == "Confirm your subscription"
    assert get_subscriber(engine, "new.reader@example.org").lists == {"bulletin": "unconfirmed"}
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "You are subscribed"
    confirmed = get_subscriber(engine, "new.reader@example.org")
    assert confirmed.status == "active"
    assert confirmed.lists == {"bulletin": "confirmed"}
    assert confirmed.name == "New Reader"
    assert confirmed.consent_source == "signup form, confirmed by email"


def test_a_signup_with_a_bad_address_shows_the_form_again(served: Served, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{served.url}/signup")
    page.fill("#email", "x=?y@example.org")
    page.click("button[type=submit]")
    assert "encoded header" in page.locator("[role=alert]").inner_text()
    assert page.input_value("#email") == "x=?y@example.org"


def test_the_spanish_pages_from_signup_to_unsubscribe(
    served: Served,
    browser,
    engine: sa.Engine,  # type: ignore[no-untyped-def]
) -> None:
    # A browser that asks for Spanish gets the signup page in Spanish.
    context = browser.new_context(locale="es-MX")
    page = context.new_page()
    try:
        page.goto(f"{served.url}/signup")
        assert page.locator("html").get_attribute("lang") == "es"
        assert page.locator("h1").inner_text() == "Suscríbase a Regional Migration News"
        assert page.locator("label[for=email]").inner_text() == "Correo electrónico"
        # The switch shows the page in English, and back.
        page.click("a[hreflang=en]")
        assert page.locator("h1").inner_text() == "Subscribe to Regional Migration News"
        page.click("a[hreflang=es]")
        page.fill("#email", "lectora@example.org")
        page.select_option("#list", "bulletin")
        page.click("button[type=submit]")
        assert page.locator("h1").inner_text() == "Revise su bandeja de entrada"
        # The confirmation email is in Spanish too, styled, and so is the page it opens.
        link = _confirmation_link(served.outbox)
        (path,) = (served.outbox / "confirmations").glob("*.eml")
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message["Subject"] == "Confirme su suscripción a Regional Migration News"
        assert message["Content-Language"] == "es"
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert '<html lang="es"' in html and "Confirmar mi suscripción</a>" in html
        assert "El botón funciona hasta el " in html  # its expiry, a week away, in words
        assert get_subscriber(engine, "lectora@example.org").language == "es"
        page.goto(link)
        assert page.locator("h1").inner_text() == "Confirme su suscripción"
        page.click("button[type=submit]")
        assert page.locator("h1").inner_text() == "Está suscrito"
        # Her unsubscribe and preferences pages speak Spanish, whatever the browser says.
        english = browser.new_context(locale="en-US").new_page()
        sid = get_subscriber(engine, "lectora@example.org").id
        english.goto(f"{served.url}/unsubscribe/{tokens.sign(KEY, sid, tokens.campaign_scope(1))}")
        assert english.locator("h1").inner_text() == "¿Dar de baja a l***@example.org?"
        english.click("button[type=submit]")
        assert english.locator("h1").inner_text() == "Se ha dado de baja"
        assert get_subscriber(engine, "lectora@example.org").status == "unsubscribed"
        english.goto(f"{served.url}/preferences/{tokens.sign(KEY, sid, tokens.PREFERENCES)}")
        assert english.locator("h1").inner_text() == "Sus preferencias"
        english.context.close()
    finally:
        context.close()


def test_every_public_page_passes_axe(
    served: Served, browser, engine: sa.Engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # An issue in the archive first (its editions and web versions are pages too).
    sent = subprocess.run(
        [sys.executable, "-m", "newsletter", "send", str(SAMPLE), "--live", "--yes"],
        env=served.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sent.returncode == 0, sent.stderr
    sid = get_subscriber(engine, ANA).id
    pages = {
        "/": "Past issues",
        "/signup": "Subscribe to Regional Migration News",
        "/signup?lang=es": "Suscríbase a Regional Migration News",
        f"/unsubscribe/{tokens.sign(KEY, sid, tokens.campaign_scope(1))}": "Unsubscribe a***",
        f"/preferences/{tokens.sign(KEY, sid, tokens.PREFERENCES)}": "Your preferences",
        f"/confirm/{tokens.sign(KEY, sid, tokens.confirm_scope('bulletin'))}": "Confirm",
        "/archive/": "Past issues",
        "/archive/2021-05/": "Regional Migration News",
        "/archive/2021-05/es/": "Noticias Regionales",
        "/unsubscribe": "Unsubscribe",
        "/preferences/not-a-token": "This link does not work",
        "/no/such/page": "Not found",
    }
    for dark in (False, True):
        context = browser.new_context(color_scheme="dark" if dark else "light")
        page = context.new_page()
        for path, heading in pages.items():
            page.goto(served.url + path)
            assert heading in page.inner_text("body"), path
            assert axe_violations(page) == [], (path, dark)
        context.close()


def test_the_unsubscribe_button(served: Served, page, engine: sa.Engine) -> None:  # type: ignore[no-untyped-def]
    sid = get_subscriber(engine, ANA).id
    page.goto(f"{served.url}/unsubscribe/{tokens.sign(KEY, sid, tokens.campaign_scope(1))}")
    assert page.locator("h1").inner_text() == "Unsubscribe a***@example.com?"
    assert get_subscriber(engine, ANA).status == "active"  # the page alone changes nothing
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "You are unsubscribed"
    ana = get_subscriber(engine, ANA)
    assert ana.status == "unsubscribed"
    assert ana.lists == {"bulletin": "unsubscribed"}


def test_preferences_save_and_subscribe_again(served: Served, page, engine: sa.Engine) -> None:  # type: ignore[no-untyped-def]
    sid = get_subscriber(engine, ANA).id
    link = f"{served.url}/preferences/{tokens.sign(KEY, sid, tokens.PREFERENCES)}"
    page.goto(link)
    assert axe_violations(page) == []
    # Lists by their description; the address masked as on every page.
    assert page.inner_text("label.check >> nth=1") == "Event invitations (events)"
    assert "For a***@example.com." in page.inner_text("main")
    page.click("button[type=submit]")  # nothing touched
    assert page.inner_text("[role=status]") == "Nothing changed."
    page.fill("#name", "Ana P.")
    page.select_option("#language", "es")
    page.check("input[name=list][value=events]")
    page.click("button[type=submit]")
    # Saved, and the page now speaks the language she chose.
    assert page.inner_text("[role=status]") == "Guardado: su nombre, su idioma, sus listas."
    assert page.locator("html").get_attribute("lang") == "es"
    assert page.input_value("#language") == "es"
    ana = get_subscriber(engine, ANA)
    assert (ana.name, ana.language) == ("Ana P.", "es")
    assert ana.lists == {"bulletin": "confirmed", "events": "confirmed"}

    # Unsubscribed from everything, then back through the same page: one button.
    page.goto(f"{served.url}/unsubscribe/{tokens.sign(KEY, sid, tokens.campaign_scope(1))}")
    page.click("button[type=submit]")
    assert get_subscriber(engine, ANA).status == "unsubscribed"
    page.goto(link)
    assert "Se dio de baja y no recibe nada" in page.inner_text("main")
    assert axe_violations(page) == []
    page.check("input[name=list][value=bulletin]")
    page.locator("button[type=submit]", has_text="Suscribirme de nuevo").click()
    assert page.inner_text("[role=status]") == ("Guardado: está suscrito de nuevo, sus listas.")
    ana = get_subscriber(engine, ANA)
    assert ana.status == "active"
    assert ana.lists["bulletin"] == "confirmed"
