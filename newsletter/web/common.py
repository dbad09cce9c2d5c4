"""What every page of the public web service shares: the site (settings, database,
templates), the per-request prelude (verify the token, check that its kind fits the page),
the answers, the security headers, the Host check, the rate limit and the log.

Every request is treated as hostile. The log names every request and every refusal with
its reason, never a token or an address.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter import languages, tokens
from newsletter.languages import Words
from newsletter.settings import Settings

log = logging.getLogger("newsletter.web")

TEMPLATES = Path(__file__).parent / "templates"
PAGES = (
    "archive.html",
    "base.html",
    "confirm.html",
    "message.html",
    "preferences.html",
    "signup.html",
    "unsubscribe.html",
)

# Path segments that carry a token: the log shows the route, never the token.
_TOKEN_PATH = re.compile(r"^/(unsubscribe|preferences|confirm)/[^/]+")


def loggable(path: str) -> str:
    return _TOKEN_PATH.sub(r"/\1/TOKEN", path)[:200]


def sentence(text: str) -> str:
    """A library message ("please check ...") as a sentence on a page."""
    return f"{text[:1].upper()}{text[1:]}".rstrip(".") + "."


def mask(email: str) -> str:
    """a***@example.org: enough for the owner to recognise, little for a shoulder."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


class RateLimit:
    """At most `limit` events per `window` seconds per key, in this process."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.seen: dict[str, collections.deque[float]] = {}
        self.lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self.lock:
            recent = self.seen.setdefault(key, collections.deque())
            while recent and now - recent[0] > self.window:
                recent.popleft()
            if len(recent) >= self.limit:
                return False
            recent.append(now)
            if len(self.seen) > 100_000:  # forget idle addresses rather than grow forever
                self.seen = {k: v for k, v in self.seen.items() if v}
            return True


@dataclass(frozen=True)
class Visitor:
    """Who a signed link says is visiting, and what the link is for."""

    token: str
    subscriber_id: int
    scope: str


@dataclass
class Site:
    settings: Settings
    engine: Engine
    key: str
    pages: jinja2.Environment
    signups: RateLimit

    @property
    def name(self) -> str:
        return self.settings.from_name

    def url(self, *parts: str) -> str:
        return self.settings.public_url(*parts)

    def origin(self) -> str:
        base = urlsplit(self.settings.base_url)
        return f"{base.scheme}://{base.netloc}"

    def words(self, request: Request, preferred: str | None = None) -> Words:
        """The language a page speaks to this visitor: the one asked for (?lang=, the
        page's switch), else theirs (a subscriber's), else their browser's
        (Accept-Language), else English; each the nearest the pages speak."""
        spoken = languages.spoken()
        asked = request.query_params.get("lang", "")[:35]
        for wanted in (asked, preferred):
            if wanted:
                chosen = languages.pick(wanted, spoken, "")
                if chosen:
                    return languages.words(chosen)
        header = request.headers.get("accept-language", "")[:500]
        return languages.words(languages.negotiate(header, spoken, "en"))

    def switch(self, request: Request, current: Words) -> list[dict[str, str]]:
        """Links to this page in each other language the pages speak."""
        return [
            {
                "lang": tag,
                "name": languages.words(tag)("language_name"),
                "url": f"{request.url.path}?lang={tag}",
            }
            for tag in languages.spoken()
            if tag != current.language
        ]

    def page(
        self, template: str, status: int = 200, /, *, words: Words, **context: Any
    ) -> HTMLResponse:
        context.setdefault("switch", [])
        body = self.pages.get_template(template).render(
            site_name=self.name,
            say=words,
            lang=words.language,
            dir=words.direction,
            **context,
        )
        headers = {"Content-Language": words.language}
        return HTMLResponse(body, status_code=status, headers=headers)

    def message(
        self,
        words: Words,
        heading: str,
        text: str,
        status: int = 200,
        *,
        link: str | None = None,
        link_text: str = "",
    ) -> HTMLResponse:
        """A page with one message, in words' language."""
        return self.page(
            "message.html",
            status,
            words=words,
            heading=heading,
            text=text,
            link=link,
            link_text=link_text,
        )

    def refuse(self, request: Request, reason: str, response: HTMLResponse) -> HTMLResponse:
        log.warning(
            "refused %s %s (%d): %s",
            request.method,
            loggable(request.url.path),
            response.status_code,
            reason,
        )
        return response

    def bad_link(self, request: Request, reason: str) -> HTMLResponse:
        w = self.words(request)
        return self.refuse(
            request, reason, self.message(w, w("bad_link"), w("bad_link_text"), status=400)
        )

    def visitor(
        self, request: Request, kinds: frozenset[str], *, max_age: float | None = None
    ) -> Visitor | HTMLResponse:
        """The prelude of every page behind a signed link: a genuine token, of a kind this
        page serves. Anything else is a 400 page that changes nothing."""
        token = request.path_params["token"]
        try:
            sid, scope = tokens.verify_for(self.settings, token, kinds, max_age=max_age)
        except tokens.BadToken as exc:
            return self.bad_link(request, exc.message)
        return Visitor(token, sid, scope)

    def form_secret(self, purpose: str, token: str) -> str:
        return hmac.new(
            self.key.encode(), f"{purpose}.{token}".encode(), hashlib.sha256
        ).hexdigest()

    def preferences_url(self, subscriber_id: int) -> str:
        return self.url("preferences", tokens.sign(self.key, subscriber_id, tokens.PREFERENCES))


class HostCheck:
    """Only the base URL's host (and loopback, for the proxy's health checks) is served:
    anything else is a 400, logged."""

    def __init__(self, app: ASGIApp, hosts: set[str]) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = ""
            for name, value in scope.get("headers", []):
                if name == b"host":
                    host = value.decode("latin-1")
            hostname = urlsplit(f"//{host}").hostname or ""
            if hostname not in self.hosts:
                log.warning(
                    "refused %s %s (400): Host %r is not this site's",
                    scope.get("method", ""),
                    loggable(scope.get("path", "")),
                    host[:100],
                )
                await PlainTextResponse("Invalid host header", status_code=400)(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


class AccessLog:
    """One line per request: method, route (tokens hidden), status and time taken."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            log.info(
                "%s %s %d %.1f ms",
                scope.get("method", ""),
                loggable(scope.get("path", "")),
                status[0],
                (time.perf_counter() - start) * 1000,
            )


class SecurityHeaders:
    """Headers for every response; only the signup page may be framed (the embed).

    Referrer-Policy is same-origin: tokens live in URLs and must not leak to other sites,
    while our own forms keep a real Origin header (with no-referrer, browsers send
    `Origin: null`, and a same-origin check cannot tell our form from a forged one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        framable = scope["path"].rstrip("/") == "/signup"
        # The archive may be cached; media set their own long lifetime.
        cacheable = scope["path"].startswith(("/archive/", "/media/"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                policy = (
                    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
                    "form-action 'self'; base-uri 'none'; "
                    "frame-ancestors " + ("*" if framable else "'none'")
                )
                headers += [
                    (b"content-security-policy", policy.encode()),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-content-type-options", b"nosniff"),
                ]
                if not cacheable:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
