"""Unsubscribe: GET shows a confirmation page and changes nothing (link scanners fetch
GETs); POST with List-Unsubscribe=One-Click unsubscribes (RFC 8058)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter import tokens
from newsletter.services import subscribers
from newsletter.web.common import Site, mask

# A campaign's link, a list's link, and a test send's (which unsubscribes nobody).
KINDS = frozenset({tokens.CAMPAIGN, tokens.LIST, tokens.TEST})


def routes(site: Site) -> list[tuple[str, object, list[str]]]:
    def page(request: Request) -> Response:
        visitor = site.visitor(request, KINDS)
        if isinstance(visitor, Response):
            return visitor
        with site.engine.connect() as conn:
            found = subscribers.preferences(conn, visitor.subscriber_id)
        w = site.words(request, found.subscriber.language if found else None)
        if found is None or tokens.kind_of(visitor.scope) == tokens.TEST:
            return site.message(w, w("nothing_to_unsubscribe"), w("nothing_to_unsubscribe_text"))
        what = (
            w("unsubscribe_what_list", list=visitor.scope.removeprefix("l-"))
            if tokens.kind_of(visitor.scope) == tokens.LIST
            else w("unsubscribe_what_all", site=site.name)
        )
        return site.page(
            "unsubscribe.html",
            words=w,
            who=mask(found.subscriber.email),
            what=what,
            action=site.url("unsubscribe", visitor.token),
            preferences=site.preferences_url(visitor.subscriber_id),
        )

    async def post(request: Request) -> Response:
        visitor = site.visitor(request, KINDS)
        if isinstance(visitor, Response):
            return visitor
        form = await request.form()
        if form.get("List-Unsubscribe") != "One-Click":
            w = site.words(request)
            return site.refuse(
                request,
                "not a one-click unsubscribe request",
                site.message(w, w("nothing_changed"), w("not_unsubscribe_request"), 400),
            )
        return await run_in_threadpool(unsubscribe, request, visitor.subscriber_id, visitor.scope)

    def unsubscribe(request: Request, subscriber_id: int, scope: str) -> Response:
        # The answer is rendered inside the transaction: if it fails, nothing changed.
        with site.engine.begin() as conn:
            subscribers.unsubscribe_one_click(conn, subscriber_id, scope)
            found = subscribers.preferences(conn, subscriber_id)
            w = site.words(request, found.subscriber.language if found else None)
            # RFC 8058: a plain 200, no redirect, the same however often it is sent.
            return site.message(
                w,
                w("unsubscribed"),
                w("unsubscribed_text"),
                link=site.preferences_url(subscriber_id),
                link_text=w("changed_mind"),
            )

    def generic(request: Request) -> Response:
        w = site.words(request)
        return site.message(w, w("unsubscribe"), w("unsubscribe_generic"))

    return [
        ("/unsubscribe", generic, ["GET"]),
        ("/unsubscribe/", generic, ["GET"]),
        ("/unsubscribe/{token}", page, ["GET"]),
        ("/unsubscribe/{token}", post, ["POST"]),
    ]
