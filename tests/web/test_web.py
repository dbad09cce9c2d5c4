"""The public web service, as the internet sees it: HTTP against the app, and once against
a real uvicorn on loopback. Every request here is one an attacker could send."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter import tokens
from newsletter.audience.db import subscribers, suppressions
from newsletter.audience.subscribers import get_subscriber, remove_subscriber
from newsletter.cli import app as cli
from newsletter.settings import load_settings
from newsletter.web.app import create_web_app
from tests.conftest import SAMPLE
from tests.web.conftest import BASE, KEY, Served, runner, snapshot, token_for


def test_one_click_unsubscribe_rfc8058(site) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    token = token_for(engine, "ana.perez@example.com")
    for _ in range(2):  # the second time changes nothing more
        response = client.post(
            f"/unsubscribe/{token}",
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        assert response.status_code == 200
        assert "You are unsubscribed" in response.text
        assert "set-cookie" not in response.headers
    ana = get_subscriber(engine, "ana.perez@example.com")
    assert ana.status == "unsubscribed"
    assert ana.lists == {"bulletin": "unsubscribed"}
    assert get_subscriber(engine, "bruno.silva@example.com").status == "active"


def test_get_shows_a_button_and_changes_nothing(site) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    token = token_for(engine, "ana.perez@example.com")
    before = snapshot(engine)
    response = client.get(f"/unsubscribe/{token}")
    assert response.status_code == 200
    assert (
        '<form method="post" action="https://newsletter.example.org/unsubscribe/' in response.text
    )
    assert "a***@example.com" in response.text
    assert "ana.perez@example.com" not in response.text
    assert snapshot(engine) == before


def test_a_list_token_unsubscribes_from_that_list_only(site) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    runner.invoke(cli, ["subscribers", "add", "ana.perez@example.com", "--list", "events"])
    token = token_for(engine, "ana.perez@example.com", "l-events")
    client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    ana = get_subscriber(engine, "ana.perez@example.com")
    assert ana.lists == {"bulletin": "confirmed", "events": "unsubscribed"}
    assert ana.status == "active"


def _tampered(token: str) -> list[str]:
    payload, mac = token.split(".")
    import base64

    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    sid, scope, issued = decoded.split(".")
    other = (
        base64.urlsafe_b64encode(f"{int(sid) + 1}.{scope}.{issued}".encode()).rstrip(b"=").decode()
    )
    return [
        f"{other}.{mac}",  # another subscriber, same signature
        # Signature changed: a character in the middle (the last one carries padding bits,
        # so changing it may leave the bytes, and the signature, as they were).
        f"{payload}.{mac[:5]}{'B' if mac[5] != 'B' else 'C'}{mac[6:]}",
        payload,  # no signature
        "not-a-token",
        "....",
        "%00%ff",
        tokens.sign("some-other-key", 1, "c1"),  # forged with a wrong key
    ]


@pytest.mark.parametrize("route", ["unsubscribe", "preferences", "confirm"])
def test_forged_and_tampered_tokens_get_400_and_change_nothing(site, route: str) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    before = snapshot(engine)
    for bad in _tampered(
        token_for(
            engine, "ana.perez@example.com", "confirm-bulletin" if route == "confirm" else "c1"
        )
    ):
        for method in ("get", "post"):
            form = {"data": {"List-Unsubscribe": "One-Click"}} if method == "post" else {}
            response = getattr(client, method)(f"/{route}/{bad}", **form)
            assert response.status_code in (400, 404), (route, bad, method)
            if response.status_code == 400:
                assert "This link does not work" in response.text
    assert snapshot(engine) == before


def test_key_rotation_keeps_old_links_working(site, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _, engine, _ = site
    old = token_for(engine, "ana.perez@example.com", key=KEY)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "the-new-key-0123456789abcdef")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY_PREVIOUS", KEY)
    client = TestClient(create_web_app(load_settings()), base_url=BASE)
    assert (
        client.post(f"/unsubscribe/{old}", data={"List-Unsubscribe": "One-Click"}).status_code
        == 200
    )
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY_PREVIOUS")
    client = TestClient(create_web_app(load_settings()), base_url=BASE)
    assert client.get(f"/unsubscribe/{old}").status_code == 400


def test_preferences_change_lists_name_and_resubscribe(site) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    token = token_for(engine, "ana.perez@example.com", "prefs")
    page = client.get(f"/preferences/{token}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    before = snapshot(engine)
    # Without the form's CSRF value: refused, nothing changes.
    assert (
        client.post(f"/preferences/{token}", data={"name": "X", "list": "events"}).status_code
        == 403
    )
    assert snapshot(engine) == before
    response = client.post(
        f"/preferences/{token}",
        data={"csrf": csrf, "name": "Ana P.", "language": "es", "list": ["events"]},
    )
    # Saved, in the language just chosen, saying what changed.
    assert response.status_code == 200
    assert "Guardado: su nombre, su idioma, sus listas." in response.text
    ana = get_subscriber(engine, "ana.perez@example.com")
    assert ana.name == "Ana P."
    assert ana.lists == {"bulletin": "unsubscribed", "events": "confirmed"}
    client.post(
        f"/unsubscribe/{token_for(engine, 'ana.perez@example.com')}",
        data={"List-Unsubscribe": "One-Click"},
    )
    # Unsubscribed, ticking a list changes nothing she receives: it is not "saved".
    before = snapshot(engine)
    answer = client.post(
        f"/preferences/{token}",
        data={"csrf": csrf, "name": "Ana P.", "language": "es", "list": ["bulletin", "events"]},
    )
    assert "No se cambió nada." in answer.text and snapshot(engine) == before
    client.post(
        f"/preferences/{token}",
        data={"csrf": csrf, "name": "Ana P.", "list": ["bulletin"], "resubscribe": "yes"},
    )
    ana = get_subscriber(engine, "ana.perez@example.com")
    assert ana.status == "active" and ana.lists["bulletin"] == "confirmed"


def test_preferences_data_download(site) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    response = client.get(
        f"/preferences/{token_for(engine, 'ana.perez@example.com', 'prefs')}/data"
    )
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    data = response.json()
    assert data["email"] == "ana.perez@example.com"
    assert data["attributes"] == {
        "country": "PA",
        "first_name": "Ana",
        "organization": "Ministry of Labour",
    }
    assert data["consent"]["source"] == "sample-subscribers.csv"


def test_user_supplied_values_are_escaped(site) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    nasty = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    with engine.begin() as conn:
        conn.execute(
            sa.update(subscribers)
            .where(subscribers.c.email_key == "ana.perez@example.com")
            .values(name=nasty)
        )
    page = client.get(f"/preferences/{token_for(engine, 'ana.perez@example.com', 'prefs')}").text
    assert nasty not in page and "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img" in page
    signup = client.get("/signup").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', signup).group(1)  # type: ignore[union-attr]
    response = client.post("/signup", data={"csrf": csrf, "email": nasty, "name": nasty})
    assert response.status_code == 400
    assert "<script>alert" not in response.text and "&lt;script&gt;" in response.text


def test_security_headers(site) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    response = client.get(f"/unsubscribe/{token_for(engine, 'ana.perez@example.com')}")
    assert response.headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors *" in client.get("/signup").headers["content-security-policy"]
    assert client.get("/archive/", headers={"Host": "evil.example"}).status_code == 400


def _signup(client: TestClient, **form: str):  # type: ignore[no-untyped-def]
    page = client.get("/signup").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    return client.post("/signup", data={"csrf": csrf, **form})


def _outbox(tmp_path: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.SMTP)  # type: ignore[misc]
        for p in sorted((tmp_path / "outbox" / "confirmations").glob("*.eml"))
    ]


def test_double_opt_in_signup(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    response = _signup(client, email="New.Reader@example.com", name="New Reader", list="bulletin")
    assert response.status_code == 200 and "Check your inbox" in response.text
    person = get_subscriber(engine, "new.reader@example.com")
    assert person.lists == {"bulletin": "unconfirmed"}
    [mail] = _outbox(tmp_path)
    assert mail["To"] == "New.Reader@example.com"
    link = re.search(
        r"https://newsletter\.example\.org/confirm/\S+", mail.get_body(("plain",)).get_content()
    ).group(0)  # type: ignore[union-attr]
    path = link.removeprefix(BASE)
    before = snapshot(engine)
    assert "Confirm your subscription" in client.get(path).text
    assert snapshot(engine) == before  # the GET only shows the button
    assert "You are subscribed" in client.post(path).text
    person = get_subscriber(engine, "new.reader@example.com")
    assert person.lists == {"bulletin": "confirmed"}
    assert person.consent_source == "signup form, confirmed by email"


def test_signup_answers_the_same_for_known_and_unknown_addresses(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = site
    known = _signup(client, email="ana.perez@example.com", list="bulletin")
    unknown = _signup(client, email="someone.new@example.com", list="bulletin")
    assert (known.status_code, known.text) == (unknown.status_code, unknown.text)
    # The confirmed subscriber got no mail; the new address got its confirmation.
    assert [m["To"] for m in _outbox(tmp_path)] == ["someone.new@example.com"]


def test_signup_needs_the_form_token_and_a_same_origin(site) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    before = snapshot(engine)
    assert client.post("/signup", data={"email": "x@example.com"}).status_code == 403
    assert (
        client.post("/signup", data={"email": "x@example.com", "csrf": "1.abc"}).status_code == 403
    )
    page = client.get("/signup").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    cross = client.post(
        "/signup",
        data={"csrf": csrf, "email": "x@example.com"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert snapshot(engine) == before


def test_honeypot_and_rate_limit(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    trapped = _signup(client, email="bot@example.com", website="http://spam.example")
    assert trapped.status_code == 200 and "Check your inbox" in trapped.text
    with pytest.raises(Exception, match="no subscriber"):
        get_subscriber(engine, "bot@example.com")
    codes = [_signup(client, email=f"r{i}@example.com").status_code for i in range(6)]
    assert codes[:4] == [200, 200, 200, 200] and codes[-1] == 429  # 5 per window, the trap included


def test_signup_brings_back_an_erased_address_only_on_confirmation(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    remove_subscriber(engine, "ana.perez@example.com")
    _signup(client, email="ana.perez@example.com", list="bulletin")
    [mail] = _outbox(tmp_path)
    link = re.search(
        r"https://newsletter\.example\.org/confirm/\S+", mail.get_body(("plain",)).get_content()
    ).group(0)  # type: ignore[union-attr]
    client.post(link.removeprefix(BASE))
    assert get_subscriber(engine, "ana.perez@example.com").lists == {"bulletin": "confirmed"}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(suppressions)).scalar() == 0


def test_full_loop_send_unsubscribe_then_skipped(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    assert runner.invoke(cli, ["send", str(SAMPLE), "--live", "--yes"]).exit_code == 0
    ana_id = get_subscriber(engine, "ana.perez@example.com").id
    eml = tmp_path / "outbox" / "2021-05" / f"c1.s{ana_id}.eml"
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.SMTP)
    https = re.search(r"<(https://[^>]+)>", message["List-Unsubscribe"]).group(1)  # type: ignore[union-attr]
    # What a mailbox provider does: POST the one-click body, no cookies, no redirects followed.
    response = client.post(
        https.removeprefix(BASE),
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 200
    assert get_subscriber(engine, "ana.perez@example.com").status == "unsubscribed"
    # The Preferences link in the footer leads to her preferences, where she can come back.
    preferences = re.search(
        r"Preferences: (https://\S+)", message.get_body(("plain",)).get_content()
    )
    page = client.get(preferences.group(1).removeprefix(BASE))  # type: ignore[union-attr]
    assert "For a***@example.com." in page.text
    assert "You are unsubscribed and receive nothing from us." in page.text
    result = runner.invoke(cli, ["send", str(SAMPLE), "--live", "--yes", "--new-campaign"])
    assert result.stdout.splitlines()[-1] == "Campaign 2: 11 sent, 0 deferred, 0 failed, 0 skipped"
    assert not (tmp_path / "outbox" / "2021-05" / f"c2.s{ana_id}.eml").exists()
    # The view-in-browser link leads to the archive, which shows the issue with no personal data.
    view = re.search(
        r"https://newsletter\.example\.org/archive/2021-05/",
        message.get_body(("plain",)).get_content(),
    )
    assert view
    page = client.get("/archive/2021-05/")
    assert page.status_code == 200
    assert "RCM countries exchange good practices" in page.text
    assert "Hello" not in page.text and "Ana" not in page.text  # no greeting, nobody's data


def test_archive_lists_only_issues_sent_live_and_has_a_feed(site) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = site
    assert "No issue has been sent yet." in client.get("/archive/").text
    assert client.get("/archive/2021-05/").status_code == 404
    runner.invoke(cli, ["send", str(SAMPLE), "--test", "--to", "me@example.org"])
    assert "No issue has been sent yet." in client.get("/archive/").text
    runner.invoke(cli, ["send", str(SAMPLE), "--live", "--yes"])
    index = client.get("/archive/").text
    archive = "https://newsletter.example.org/archive/2021-05"
    assert f'<a href="{archive}/" hreflang="en">Regional Migration News: May 2021</a>' in index
    assert f'<a href="{archive}/es/" hreflang="es" lang="es">español</a>' in index
    # A Spanish-speaking browser sees the Spanish edition first, and the page in Spanish.
    spanish = client.get("/archive/", headers={"Accept-Language": "es-MX,es;q=0.9"}).text
    assert '<html lang="es"' in spanish and "Números anteriores" in spanish
    assert f'<a href="{archive}/es/" hreflang="es">Noticias Regionales sobre Migración' in spanish
    # Each edition's page points at the others.
    page = client.get("/archive/2021-05/es/")
    assert page.status_code == 200 and '<html lang="es"' in page.text
    assert "Migración laboral".upper() in page.text.upper()
    for lang in ("en", "es"):
        assert f'hreflang="{lang}"' in page.text
    assert client.get("/archive/2021-05/fr/").status_code == 404
    import xml.etree.ElementTree as ET

    ns = {"a": "http://www.w3.org/2005/Atom"}
    for url, title, alternate in (
        ("/archive/feed.xml", "Regional Migration News: May 2021", "es"),
        ("/archive/feed/es.xml", "Noticias Regionales sobre Migración: mayo de 2021", "en"),
    ):
        feed = client.get(url)
        assert feed.headers["content-type"].startswith("application/atom+xml")
        root = ET.fromstring(feed.text)
        [entry] = root.findall("a:entry", ns)
        assert entry.findtext("a:title", namespaces=ns) == title
        links = {link.get("hreflang") for link in entry.findall("a:link", ns)}
        assert alternate in links


def test_a_real_uvicorn_on_loopback(site) -> None:  # type: ignore[no-untyped-def]
    _, engine, settings = site
    served = Served(settings)
    try:
        assert served.one_click(token_for(engine, "ana.perez@example.com")) == 200
        assert served.location is None
        assert get_subscriber(engine, "ana.perez@example.com").status == "unsubscribed"
    finally:
        served.close()


def test_no_get_changes_anything(site) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    runner.invoke(cli, ["send", str(SAMPLE), "--live", "--yes"])
    sid = get_subscriber(engine, "ana.perez@example.com").id
    paths = [
        f"/unsubscribe/{tokens.sign(KEY, sid, 'c1')}",
        f"/unsubscribe/{tokens.sign(KEY, sid, 'l-bulletin')}",
        "/unsubscribe",
        "/preferences",
        f"/preferences/{tokens.sign(KEY, sid, 'prefs')}",
        f"/preferences/{tokens.sign(KEY, sid, 'prefs')}/data",
        f"/confirm/{tokens.sign(KEY, sid, 'confirm-bulletin')}",
        "/signup",
        "/archive/",
        "/archive/2021-05/",
        "/archive/feed.xml",
    ]
    before = snapshot(engine)
    for path in paths:
        assert client.get(path).status_code == 200, path
    assert snapshot(engine) == before
