"""Each page takes only the links meant for it; the service refuses to start without a
real key; refusals are logged without tokens or addresses; an answer that fails changes
nothing; a locked database never stalls other requests."""

from __future__ import annotations

import http.client
import logging
import sqlite3
import threading
import time
from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient

from newsletter import tokens
from newsletter.audience.subscribers import get_subscriber
from newsletter.cli import app as cli
from newsletter.errors import ConfigError
from newsletter.settings import load_settings
from newsletter.web import common
from newsletter.web.app import create_web_app
from tests.web.conftest import KEY, Served, runner, snapshot, token_for

ANA = "ana.perez@example.com"
SCOPES = ["c1", "l-bulletin", "l-events", "test", "prefs", "confirm-bulletin", "unknown"]
# (method, path pattern): the kinds of link each accepts.
ROUTES = {
    ("GET", "/unsubscribe/{t}"): {"c1", "l-bulletin", "l-events", "test"},
    ("POST", "/unsubscribe/{t}"): {"c1", "l-bulletin", "l-events", "test"},
    ("GET", "/preferences/{t}"): {"prefs"},
    ("POST", "/preferences/{t}"): {"prefs"},
    ("GET", "/preferences/{t}/data"): {"prefs"},
    ("GET", "/confirm/{t}"): {"confirm-bulletin"},
    ("POST", "/confirm/{t}"): {"confirm-bulletin"},
}
# The one request per scope that changes something, and what it changes.
CHANGES = {
    "c1": ("POST", "/unsubscribe/{t}"),
    "l-bulletin": ("POST", "/unsubscribe/{t}"),
    "l-events": ("POST", "/unsubscribe/{t}"),
    "prefs": ("POST", "/preferences/{t}"),
    "confirm-bulletin": ("POST", "/confirm/{t}"),
}


def _request(client: TestClient, method: str, path: str, token: str) -> int:
    url = path.format(t=token)
    if method == "GET":
        return client.get(url).status_code
    data = {"List-Unsubscribe": "One-Click", "name": "Changed", "list": ["events"]}
    if path.startswith("/preferences"):
        # The form secret of this very token: a refusal is then for the link's kind alone.
        data["csrf"] = common.Site.form_secret(SimpleNamespace(key=KEY), "prefs", token)  # type: ignore[arg-type]
    return client.post(url, data=data).status_code


@pytest.mark.parametrize("scope", SCOPES)
def test_every_page_takes_only_its_own_kind_of_link(site, scope: str) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    runner.invoke(cli, ["subscribers", "add", ANA, "--list", "events"])
    token = token_for(engine, ANA, scope)
    before = snapshot(engine)
    for (method, path), kinds in ROUTES.items():
        if (method, path) == CHANGES.get(scope):
            continue
        status = _request(client, method, path, token)
        assert status == (200 if scope in kinds else 400), (scope, method, path, status)
        assert snapshot(engine) == before, (scope, method, path)
    if scope not in CHANGES:
        return
    method, path = CHANGES[scope]
    assert _request(client, method, path, token) == 200
    ana = get_subscriber(engine, ANA)
    if scope == "c1":
        assert ana.status == "unsubscribed"
        assert set(ana.lists.values()) == {"unsubscribed"}
    elif scope.startswith("l-"):
        other = "events" if scope == "l-bulletin" else "bulletin"
        assert ana.status == "active"
        assert ana.lists == {scope[2:]: "unsubscribed", other: "confirmed"}
    elif scope == "prefs":
        assert ana.name == "Changed"
        assert ana.lists == {"bulletin": "unsubscribed", "events": "confirmed"}
    else:
        assert ana.consent_source == "signup form, confirmed by email"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "NEWSLETTER_SECRET_KEY is not set; it signs every link this service reads"),
        (
            "short",
            "NEWSLETTER_SECRET_KEY is too weak for a public service; use at least 16 random "
            "characters",
        ),
        (
            tokens.DEVELOPMENT_KEY,
            "NEWSLETTER_SECRET_KEY is too weak for a public service; use at least 16 random "
            "characters",
        ),
    ],
)
def test_the_app_refuses_to_start_without_a_real_key(
    monkeypatch: pytest.MonkeyPatch, key: str | None, message: str
) -> None:
    if key is not None:
        monkeypatch.setenv("NEWSLETTER_SECRET_KEY", key)
    with pytest.raises(ConfigError) as info:
        create_web_app(load_settings())
    assert str(info.value) == message


def test_requests_and_refusals_are_logged_without_tokens_or_addresses(
    site, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    client, engine, _ = site
    caplog.set_level(logging.INFO, logger="newsletter.web")
    good = token_for(engine, ANA)
    prefs = token_for(engine, ANA, "prefs")
    client.post(f"/unsubscribe/{good}", data={"List-Unsubscribe": "One-Click"})
    client.post(f"/unsubscribe/{prefs}", data={"List-Unsubscribe": "One-Click"})
    client.post(f"/unsubscribe/{good[:-3]}xyz", data={"List-Unsubscribe": "One-Click"})
    client.post(f"/preferences/{prefs}", data={"name": "x"})
    client.post("/signup", data={"email": ANA}, headers={"Origin": "https://evil.example"})
    client.get("/signup", headers={"Host": "evil.example"})
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (good, prefs, ANA, "ana.perez"):
        assert secret not in text
    assert "POST /unsubscribe/TOKEN 200" in text
    assert "refused POST /unsubscribe/TOKEN (400): a prefs link cannot be used here" in text
    assert "refused POST /unsubscribe/TOKEN (400): this link is not valid" in text
    assert "refused POST /preferences/TOKEN (403): the form secret is missing or wrong" in text
    assert "refused POST /signup (403): Origin 'https://evil.example' is not this site's" in text
    assert "refused GET /signup (400): Host 'evil.example' is not this site's" in text


def test_an_answer_that_fails_changes_nothing(site, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _, engine, settings = site

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the page could not be rendered")

    before = snapshot(engine)
    failing = TestClient(
        create_web_app(settings),
        base_url="https://newsletter.example.org",
        raise_server_exceptions=False,
    )
    monkeypatch.setattr(common.Site, "message", broken)
    response = failing.post(
        f"/unsubscribe/{token_for(engine, ANA)}", data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 500
    assert snapshot(engine) == before


def test_a_locked_database_stalls_no_other_request(site) -> None:  # type: ignore[no-untyped-def]
    _, engine, settings = site
    if engine.dialect.name != "sqlite":
        pytest.skip("the write lock is SQLite's")
    served = Served(settings)
    token = token_for(engine, ANA)
    results: dict[str, int] = {}

    def post() -> None:
        results["post"] = served.one_click(token)

    locker = sqlite3.connect(engine.url.database, timeout=0)  # type: ignore[arg-type]
    try:
        locker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        poster = threading.Thread(target=post)
        poster.start()
        time.sleep(0.3)  # the POST is now waiting for the lock
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        conn.request("GET", "/archive/", headers={"Host": "newsletter.example.org"})
        assert conn.getresponse().status == 200
        # The GET was answered while the POST still waits: the event loop is free.
        assert poster.is_alive() and "post" not in results
    finally:
        locker.rollback()
        locker.close()
    poster.join(timeout=30)
    served.close()
    assert results["post"] == 200
    assert get_subscriber(engine, ANA).status == "unsubscribed"
