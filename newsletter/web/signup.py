"""Signup with double opt-in, and the confirmation its email links to.

The form carries a signed, timed form token and is checked for a same-origin post; a
hidden honeypot field catches robots; each client gets a few attempts per window. The
answer is the same whether or not the address is known, and the confirmation email is
sent after the answer has gone, so its timing does not tell either.
"""

from __future__ import annotations

import time

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter import tokens
from newsletter.errors import NewsletterError
from newsletter.services import subscribers
from newsletter.web.common import Site, mask, sentence

SIGNUP_FORM_MAX_AGE = 2 * 3600
CONFIRM_KINDS = frozenset({tokens.CONFIRM})


def routes(site: Site) -> list[tuple[str, object, list[str]]]:
    def form_page(
        request: Request, error: str = "", email: str = "", name: str = "", status: int = 200
    ) -> Response:
        issued = str(int(time.time()))
        names = [i.name for i in subscribers.lists(site.settings)] or [site.settings.default_list]
        w = site.words(request)
        return site.page(
            "signup.html",
            status,
            words=w,
            switch=site.switch(request, w),
            action=site.url("signup"),
            csrf=f"{issued}.{site.form_secret('signup', issued)}",
            lists=names,
            error=error,
            email=email,
            name=name,
        )

    def page(request: Request) -> Response:
        return form_page(request)

    def fresh(value: str) -> bool:
        issued, _, mac = value.partition(".")
        if not issued.isdigit() or mac != site.form_secret("signup", issued):
            return False
        return 0 <= time.time() - int(issued) <= SIGNUP_FORM_MAX_AGE

    def cross_site(request: Request) -> str | None:
        """Why the post did not come from our own page, or None when it did. A request
        without Origin or Sec-Fetch-Site (not a browser) still needs the form token."""
        origin = request.headers.get("origin")
        if origin is not None and origin != site.origin():
            return f"Origin {origin[:100]!r} is not this site's"
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return f"Sec-Fetch-Site is {fetch_site[:30]!r}"
        return None

    async def post(request: Request) -> Response:
        if (reason := cross_site(request)) is not None:
            w = site.words(request)
            return site.refuse(
                request, reason, site.message(w, w("not_sent"), w("own_page_only"), 403)
            )
        form = await request.form()
        # The language of the page the form was sent from: the subscriber's from now on.
        w = site.words(request, str(form.get("lang", ""))[:35] or None)
        if not fresh(str(form.get("csrf", ""))):
            return site.refuse(
                request,
                "the form token is missing, forged or expired",
                site.message(w, w("not_sent"), w("signup_expired"), 403),
            )
        client = request.client.host if request.client else "unknown"
        if not site.signups.allow(client):
            return site.refuse(
                request,
                "too many signup attempts from this client",
                site.message(w, w("too_many"), w("too_many_text"), 429),
            )
        done = site.message(w, w("check_inbox"), w("check_inbox_text"))
        if form.get("website"):
            site.refuse(request, "the honeypot field was filled", done)
            return done  # only robots fill a field nobody can see; they get the usual answer
        raw_email, raw_name = str(form.get("email", ""))[:320], str(form.get("name", ""))[:200]
        try:
            address, name = subscribers.check_signup(raw_email, raw_name)
        except NewsletterError as exc:
            site.refuse(request, "the address or name was refused", done)
            return await run_in_threadpool(
                form_page, request, sentence(exc.message), raw_email, raw_name, 400
            )
        list_name = str(form.get("list") or site.settings.default_list)
        done.background = BackgroundTask(
            subscribers.signup, site.settings, address, name, list_name, language=w.language
        )
        return done

    def confirm_page(request: Request) -> Response:
        visitor = site.visitor(request, CONFIRM_KINDS, max_age=tokens.CONFIRM_MAX_AGE)
        if isinstance(visitor, Response):
            return visitor
        with site.engine.connect() as conn:
            found = subscribers.preferences(conn, visitor.subscriber_id)
        if found is None:
            return site.bad_link(request, "the subscriber is no longer stored")
        return site.page(
            "confirm.html",
            words=site.words(request, found.subscriber.language),
            list_name=visitor.scope.removeprefix("confirm-"),
            who=mask(found.subscriber.email),
            action=site.url("confirm", visitor.token),
        )

    def confirm_post(request: Request) -> Response:
        visitor = site.visitor(request, CONFIRM_KINDS, max_age=tokens.CONFIRM_MAX_AGE)
        if isinstance(visitor, Response):
            return visitor
        with site.engine.begin() as conn:
            if not subscribers.confirm(
                conn, visitor.subscriber_id, visitor.scope.removeprefix("confirm-")
            ):
                return site.bad_link(request, "the subscriber or the list is no longer stored")
            found = subscribers.preferences(conn, visitor.subscriber_id)
            w = site.words(request, found.subscriber.language if found else None)
            return site.message(
                w,
                w("subscribed"),
                w("welcome", site=site.name),
                link=site.url("archive") + "/",
                link_text=w("read_past"),
            )

    return [
        ("/signup", page, ["GET"]),
        ("/signup", post, ["POST"]),
        ("/confirm/{token}", confirm_page, ["GET"]),
        ("/confirm/{token}", confirm_post, ["POST"]),
    ]
