"""The public web service, where the links in every email lead.

Every request is treated as hostile. Links carry signed tokens (newsletter/tokens.py) that
name a subscriber id, never an address. GET never changes anything: link scanners fetch
GETs, so every change is a POST. Pages are autoescaped Jinja. Responses carry
`Referrer-Policy: no-referrer`, since tokens travel in URLs.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape as xml_escape

import jinja2
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter import fields, tokens
from newsletter.audience import database
from newsletter.audience.addresses import address_key, normalize_address, suppression_hash
from newsletter.audience.db import (
    campaigns,
    deliveries,
    lists,
    subscribers,
    subscriptions,
    suppressions,
    utcnow,
)
from newsletter.audience.subscribers import get_subscriber, insert_subscriber, set_membership
from newsletter.errors import NewsletterError
from newsletter.settings import Settings

TEMPLATES = Path(__file__).parent / "templates"
CONFIRM_MAX_AGE = 7 * 24 * 3600
SIGNUP_FORM_MAX_AGE = 2 * 3600
SIGNUPS_PER_WINDOW = 5
SIGNUP_WINDOW = 15 * 60

_pages = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _mask(email: str) -> str:
    """a***@example.org: enough for the owner to recognise, little for a shoulder."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


class SecurityHeaders:
    """Headers for every response; only the signup page may be framed (the embed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        framable = scope["path"].rstrip("/") == "/signup"
        archive = scope["path"].startswith("/archive/")

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
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-content-type-options", b"nosniff"),
                ]
                if not archive:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


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


def create_web_app(settings: Settings) -> Starlette:
    base = urlsplit(settings.base_url)
    site_name = settings.from_name
    key = tokens.signing_key(settings)
    signups = RateLimit(SIGNUPS_PER_WINDOW, SIGNUP_WINDOW)
    archive_cache: dict[str, tuple[str, str]] = {}

    def engine() -> sa.Engine:
        return database(settings)

    def page(template: str, status: int = 200, /, **context: Any) -> HTMLResponse:
        body = _pages.get_template(template).render(site_name=site_name, **context)
        return HTMLResponse(body, status_code=status)

    def message(heading: str, text: str, status: int = 200, **extra: Any) -> HTMLResponse:
        return page(
            "message.html",
            status,
            heading=heading,
            text=text,
            link=extra.get("link"),
            link_text=extra.get("link_text", ""),
        )

    def bad_link() -> HTMLResponse:
        return message(
            "This link does not work",
            "It may be incomplete, changed or out of date. Use the newest "
            "link from one of our emails, or write to us.",
            status=400,
        )

    def subscriber_row(sid: int) -> sa.Row[Any] | None:
        with engine().connect() as conn:
            return conn.execute(sa.select(subscribers).where(subscribers.c.id == sid)).first()

    def url(*parts: str) -> str:
        return settings.public_url(*parts)

    def form_secret(purpose: str, token: str) -> str:
        return hmac.new(key.encode(), f"{purpose}.{token}".encode(), hashlib.sha256).hexdigest()

    def verified(request: Request) -> tuple[str, int, str] | None:
        """(token, subscriber id, scope) of the request's token, or None if it is bad."""
        token = request.path_params["token"]
        try:
            sid, scope = tokens.verify(settings, token)
        except tokens.BadToken:
            return None
        return token, sid, scope

    # Unsubscribe -------------------------------------------------------------------

    def unsubscribe_page(request: Request) -> Response:
        found = verified(request)
        if found is None:
            return bad_link()
        token, sid, scope = found
        row = subscriber_row(sid)
        if row is None or scope == "test":
            return message("Nothing to unsubscribe", "This address gets nothing from us.")
        return page(
            "unsubscribe.html",
            who=_mask(row.email),
            what=f"{site_name} emails" if not scope.startswith("l-") else f"'{scope[2:]}' emails",
            action=url("unsubscribe", token),
            preferences=url("preferences", tokens.sign(key, sid, "prefs")),
        )

    async def unsubscribe_post(request: Request) -> Response:
        found = verified(request)
        if found is None:
            return bad_link()
        _, sid, scope = found
        form = await request.form()
        if form.get("List-Unsubscribe") != "One-Click":
            return message("Nothing changed", "This request is not an unsubscribe request.", 400)
        now = utcnow()
        with engine().begin() as conn:
            if scope.startswith("l-"):
                list_id = conn.execute(
                    sa.select(lists.c.id).where(lists.c.name == scope[2:])
                ).scalar()
                if list_id is not None:
                    conn.execute(
                        sa.update(subscriptions)
                        .where(
                            subscriptions.c.subscriber_id == sid, subscriptions.c.list_id == list_id
                        )
                        .values(status="unsubscribed", updated_at=now)
                    )
            elif scope != "test":
                conn.execute(
                    sa.update(subscribers)
                    .where(subscribers.c.id == sid, subscribers.c.status == "active")
                    .values(status="unsubscribed", updated_at=now)
                )
                conn.execute(
                    sa.update(subscriptions)
                    .where(
                        subscriptions.c.subscriber_id == sid,
                        subscriptions.c.status != "unsubscribed",
                    )
                    .values(status="unsubscribed", updated_at=now)
                )
        # RFC 8058: a plain 200, no redirect, the same however often it is sent.
        return message(
            "You are unsubscribed",
            "You will get no more of these emails.",
            link=url("preferences", tokens.sign(key, sid, "prefs")),
            link_text="Changed your mind? Your preferences",
        )

    def unsubscribe_generic(request: Request) -> Response:
        return message(
            "Unsubscribe",
            "Use the unsubscribe link at the bottom of any of our "
            "emails: it knows who you are, so you need not tell us.",
        )

    # Preferences -------------------------------------------------------------------

    def _prefs_context(token: str, sid: int, saved: bool = False) -> dict[str, Any] | None:
        row = subscriber_row(sid)
        if row is None:
            return None
        with engine().connect() as conn:
            memberships = dict(
                conn.execute(
                    sa.select(subscriptions.c.list_id, subscriptions.c.status).where(
                        subscriptions.c.subscriber_id == sid
                    )
                ).all()
            )
            all_lists = conn.execute(
                sa.select(lists.c.id, lists.c.name, lists.c.description).order_by(lists.c.name)
            ).all()
        return {
            "who": row.email,
            "name": row.name,
            "language": row.language or "",
            "status": row.status,
            "lists": [
                {
                    "name": name,
                    "description": description,
                    "on": memberships.get(lid) == "confirmed",
                }
                for lid, name, description in all_lists
            ],
            "action": url("preferences", token),
            "csrf": form_secret("prefs", token),
            "data_link": url("preferences", token, "data"),
            "saved": saved,
        }

    def preferences_generic(request: Request) -> Response:
        return message(
            "Your preferences",
            "Use the Preferences link at the bottom of any of "
            "our emails: it knows who you are, so you need not tell us.",
        )

    def preferences_page(request: Request) -> Response:
        found = verified(request)
        if found is None:
            return bad_link()
        token, sid, scope = found
        context = _prefs_context(token, sid)
        if context is None or scope == "test":
            return message("Nothing stored", "We hold nothing about this address.")
        return page("preferences.html", **context)

    async def preferences_post(request: Request) -> Response:
        found = verified(request)
        if found is None:
            return bad_link()
        token, sid, _scope = found
        form = await request.form()
        if not hmac.compare_digest(str(form.get("csrf", "")), form_secret("prefs", token)):
            return message("Nothing changed", "This form has expired; open the link again.", 403)
        name = str(form.get("name", "")).strip()[:200]
        language = str(form.get("language", "")).strip() or None
        try:
            fields.header_safe(name)
            if language:
                fields.language_tag(language)
        except ValueError as exc:
            return message("Nothing changed", f"Please check your entry: {exc}.", 400)
        chosen = {str(v) for v in form.getlist("list")}
        now = utcnow()
        with engine().begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.id == sid)).first()
            if row is None:
                return message("Nothing stored", "We hold nothing about this address.")
            values: dict[str, Any] = {"name": name, "language": language, "updated_at": now}
            if form.get("resubscribe") == "yes" and row.status == "unsubscribed":
                values["status"] = "active"
            conn.execute(sa.update(subscribers).where(subscribers.c.id == sid).values(**values))
            have = dict(
                conn.execute(
                    sa.select(subscriptions.c.list_id, subscriptions.c.status).where(
                        subscriptions.c.subscriber_id == sid
                    )
                ).all()
            )
            for lid, list_name in conn.execute(sa.select(lists.c.id, lists.c.name)).all():
                wanted = list_name in chosen
                if wanted and have.get(lid) != "confirmed":
                    # Their own choice, through a link only their mailbox received.
                    set_membership(conn, sid, lid, "confirmed")
                elif not wanted and have.get(lid) in ("confirmed", "unconfirmed"):
                    set_membership(conn, sid, lid, "unsubscribed")
        context = _prefs_context(token, sid, saved=True)
        assert context is not None
        return page("preferences.html", **context)

    def preferences_data(request: Request) -> Response:
        found = verified(request)
        if found is None:
            return bad_link()
        _, sid, _ = found
        row = subscriber_row(sid)
        if row is None:
            return message("Nothing stored", "We hold nothing about this address.")
        record = get_subscriber(engine(), row.email)
        with engine().connect() as conn:
            received = conn.execute(
                sa.select(
                    campaigns.c.id, campaigns.c.issue, deliveries.c.status, deliveries.c.updated_at
                )
                .join(campaigns, campaigns.c.id == deliveries.c.campaign_id)
                .where(deliveries.c.subscriber_id == sid)
                .order_by(campaigns.c.id)
            ).all()
        data = {
            "email": record.email,
            "name": record.name,
            "language": record.language,
            "status": record.status,
            "lists": record.lists,
            "tags": list(record.tags),
            "attributes": record.attributes,
            "consent": {"source": record.consent_source, "at": _iso(record.consent_at)},
            "created_at": _iso(record.created_at),
            "updated_at": _iso(record.updated_at),
            "campaigns": [
                {"campaign": cid, "issue": issue, "status": status, "at": _iso(at)}
                for cid, issue, status, at in received
            ],
        }
        return Response(
            json.dumps(data, ensure_ascii=False, indent=2),
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="my-newsletter-data.json"'},
        )

    # Signup ------------------------------------------------------------------------

    def _signup_form(
        error: str = "", email: str = "", name: str = "", status: int = 200
    ) -> HTMLResponse:
        issued = str(int(time.time()))
        with engine().connect() as conn:
            names = list(conn.execute(sa.select(lists.c.name).order_by(lists.c.name)).scalars())
        names = names or [settings.default_list]
        return page(
            "signup.html",
            status,
            action=url("signup"),
            csrf=f"{issued}.{form_secret('signup', issued)}",
            lists=names,
            error=error,
            email=email,
            name=name,
        )

    def signup_page(request: Request) -> Response:
        return _signup_form()

    def _fresh_form(value: str) -> bool:
        issued, _, mac = value.partition(".")
        if not issued.isdigit() or not hmac.compare_digest(mac, form_secret("signup", issued)):
            return False
        return 0 <= time.time() - int(issued) <= SIGNUP_FORM_MAX_AGE

    async def signup_post(request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{base.scheme}://{base.netloc}":
            return message("Not sent", "This form can only be sent from our own page.", 403)
        form = await request.form()
        if not _fresh_form(str(form.get("csrf", ""))):
            return message("Not sent", "This form has expired; please load the page again.", 403)
        client = request.client.host if request.client else "unknown"
        if not signups.allow(client):
            return message("Too many attempts", "Please wait a few minutes and try again.", 429)
        done = message(
            "Check your inbox",
            "If that address can be subscribed, a confirmation link is on its way. "
            "Nothing arrives until you press it.",
        )
        if form.get("website"):
            return done  # the honeypot: only robots fill a field nobody can see
        raw_email = str(form.get("email", ""))[:320]
        name = str(form.get("name", "")).strip()[:200]
        try:
            email = normalize_address(raw_email)
            fields.header_safe(name)
        except ValueError as exc:
            return _signup_form(f"Please check your entry: {exc}", raw_email, name, status=400)
        list_name = str(form.get("list") or settings.default_list)
        done.background = BackgroundTask(_start_signup, email, name, list_name)
        return done

    def _start_signup(email: str, name: str, list_name: str) -> None:
        """After the response has gone: the same answer whoever the address belongs to."""
        now = utcnow()
        with engine().begin() as conn:
            list_id = conn.execute(sa.select(lists.c.id).where(lists.c.name == list_name)).scalar()
            if list_id is None:
                list_name = settings.default_list
                list_id = conn.execute(
                    sa.select(lists.c.id).where(lists.c.name == list_name)
                ).scalar()
                if list_id is None:
                    list_id = conn.execute(
                        sa.insert(lists)
                        .values(name=list_name, description="", created_at=now)
                        .returning(lists.c.id)
                    ).scalar_one()
            row = conn.execute(
                sa.select(subscribers.c.id, subscribers.c.status).where(
                    subscribers.c.email_key == address_key(email)
                )
            ).first()
            if row is None:
                sid = insert_subscriber(
                    conn, email, name=name, source="signup form, not yet confirmed", consent_at=None
                )
                membership = None
            else:
                sid = row.id
                membership = conn.execute(
                    sa.select(subscriptions.c.status).where(
                        subscriptions.c.subscriber_id == sid, subscriptions.c.list_id == list_id
                    )
                ).scalar()
                if row.status == "active" and membership == "confirmed":
                    return  # already subscribed: nothing to do, and nothing to say
            if membership is None:
                set_membership(conn, sid, list_id, "unconfirmed")
        _send_confirmation(email, sid, list_name)

    def _send_confirmation(email: str, sid: int, list_name: str) -> None:
        from email.utils import make_msgid

        from newsletter.render import Personalized
        from newsletter.sending.message import address, build_message
        from newsletter.sending.transport import make_transport

        link = url("confirm", tokens.sign(key, sid, f"confirm-{list_name}"))
        text = (
            f"Someone, we hope you, asked to receive {site_name} at this address.\n\n"
            f"To confirm, open this link and press Confirm:\n{link}\n\n"
            "If it was not you, ignore this message: nothing will be sent.\n"
        )
        html_body = _pages.from_string(
            "<!doctype html><p>Someone, we hope you, asked to receive {{ site }} "
            "at this address.</p>"
            '<p><a href="{{ link }}">Confirm your subscription</a></p>'
            "<p>If it was not you, ignore this message: nothing will be sent.</p>"
        ).render(site=site_name, link=link)
        raw = build_message(
            sender=address(settings.from_address, settings.from_name),
            to=address(email),
            subject=f"Confirm your subscription to {site_name}",
            body=Personalized(html=html_body, text=text),
            message_id=make_msgid(domain=settings.sender_domain()),
            date=dt.datetime.now(dt.UTC),
        )
        transport = make_transport(settings, "confirmations")
        try:
            transport.open()
            transport.send(
                settings.from_address, email, raw, key=f"confirm-{sid}-{int(time.time())}"
            )
        except NewsletterError:
            pass  # the relay is down; the person can ask again, and nothing leaks to the page
        finally:
            transport.close()

    def _confirm_token(request: Request) -> tuple[int, str] | None:
        try:
            sid, scope = tokens.verify(
                settings, request.path_params["token"], max_age=CONFIRM_MAX_AGE
            )
        except tokens.BadToken:
            return None
        if not scope.startswith("confirm-"):
            return None
        return sid, scope.removeprefix("confirm-")

    def confirm_page(request: Request) -> Response:
        found = _confirm_token(request)
        if found is None:
            return bad_link()
        row = subscriber_row(found[0])
        if row is None:
            return bad_link()
        return page(
            "confirm.html",
            list_name=found[1],
            who=_mask(row.email),
            action=url("confirm", request.path_params["token"]),
        )

    def confirm_post(request: Request) -> Response:
        found = _confirm_token(request)
        if found is None:
            return bad_link()
        sid, list_name = found
        now = utcnow()
        with engine().begin() as conn:
            row = conn.execute(
                sa.select(subscribers.c.email).where(subscribers.c.id == sid)
            ).first()
            list_id = conn.execute(sa.select(lists.c.id).where(lists.c.name == list_name)).scalar()
            if row is None or list_id is None:
                return bad_link()
            conn.execute(
                sa.update(subscribers)
                .where(subscribers.c.id == sid)
                .values(
                    status="active",
                    consent_source="signup form, confirmed by email",
                    consent_at=now,
                    updated_at=now,
                )
            )
            set_membership(conn, sid, list_id, "confirmed")
            # They asked to come back themselves: an old erasure no longer applies.
            conn.execute(
                sa.delete(suppressions).where(
                    suppressions.c.email_hash == suppression_hash(row.email)
                )
            )
        return message(
            "You are subscribed",
            f"Welcome to {site_name}.",
            link=url("archive") + "/",
            link_text="Read past issues",
        )

    # Archive -----------------------------------------------------------------------

    def sent_issues() -> list[dict[str, Any]]:
        sent = (
            sa.select(
                campaigns.c.issue,
                campaigns.c.subject,
                campaigns.c.issue_path,
                sa.func.min(campaigns.c.created_at).label("first"),
            )
            .where(
                sa.exists().where(
                    deliveries.c.campaign_id == campaigns.c.id, deliveries.c.status == "sent"
                )
            )
            .group_by(campaigns.c.issue, campaigns.c.subject, campaigns.c.issue_path)
        )
        with engine().connect() as conn:
            rows = conn.execute(sent).all()
        latest: dict[str, dict[str, Any]] = {}
        for issue, subject, path, first in rows:
            item = {"slug": issue, "subject": subject, "path": path, "when": first}
            if issue not in latest or first > latest[issue]["when"]:
                latest[issue] = item
        return sorted(latest.values(), key=lambda i: i["when"], reverse=True)

    def archive_index(request: Request) -> Response:
        items = [
            {
                "url": url("archive", i["slug"]) + "/",
                "subject": i["subject"],
                "date": f"{i['when']:%d %B %Y}",
            }
            for i in sent_issues()
        ]
        return page(
            "archive.html", issues=items, feed=url("archive", "feed.xml"), signup=url("signup")
        )

    def archive_issue(request: Request) -> Response:
        slug = request.path_params["slug"]
        found = next((i for i in sent_issues() if i["slug"] == slug), None)
        if found is None:
            return message("Not found", "There is no such issue in the archive.", 404)
        from newsletter.build import public_version
        from newsletter.issue import load_issue
        from newsletter.render import render_issue

        try:
            rendered = render_issue(load_issue(found["path"]), settings)
        except NewsletterError:
            return message("Not available", "This issue cannot be shown at the moment.", 404)
        cached = archive_cache.get(slug)
        if cached is None or cached[0] != rendered.content_hash:
            cached = (rendered.content_hash, public_version(rendered, settings).html)
            archive_cache[slug] = cached
        return HTMLResponse(cached[1])

    def archive_feed(request: Request) -> Response:
        items = sent_issues()
        updated = max((i["when"] for i in items), default=dt.datetime(2000, 1, 1))
        entries = "".join(
            "<entry>"
            f"<title>{xml_escape(i['subject'])}</title>"
            f'<link href="{xml_escape(url("archive", i["slug"]) + "/")}"/>'
            f"<id>{xml_escape(url('archive', i['slug']) + '/')}</id>"
            f"<updated>{_iso(i['when'])}</updated>"
            "</entry>"
            for i in items
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{xml_escape(site_name)}</title>"
            f'<link href="{xml_escape(url("archive") + "/")}"/>'
            f'<link rel="self" href="{xml_escape(url("archive", "feed.xml"))}"/>'
            f"<id>{xml_escape(url('archive') + '/')}</id>"
            f"<updated>{_iso(updated)}</updated>"
            f"<author><name>{xml_escape(site_name)}</name></author>"
            f"{entries}</feed>"
        )
        return Response(body, media_type="application/atom+xml")

    routes = [
        Route("/unsubscribe", unsubscribe_generic),
        Route("/unsubscribe/", unsubscribe_generic),
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe_post, methods=["POST"]),
        Route("/preferences", preferences_generic),
        Route("/preferences/{token}", preferences_page, methods=["GET"]),
        Route("/preferences/{token}", preferences_post, methods=["POST"]),
        Route("/preferences/{token}/data", preferences_data, methods=["GET"]),
        Route("/signup", signup_page, methods=["GET"]),
        Route("/signup", signup_post, methods=["POST"]),
        Route("/confirm/{token}", confirm_page, methods=["GET"]),
        Route("/confirm/{token}", confirm_post, methods=["POST"]),
        Route("/archive/", archive_index),
        Route("/archive/feed.xml", archive_feed),
        Route("/archive/{slug}/", archive_issue),
    ]
    hosts = sorted({base.hostname or "localhost", "localhost", "127.0.0.1"})
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
            Middleware(SecurityHeaders),
        ],
    )


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # SQLite keeps no zone; every time is UTC
    return moment.isoformat()
