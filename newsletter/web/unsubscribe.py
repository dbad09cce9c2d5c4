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
        if found is None or tokens.kind_of(visitor.scope) == tokens.TEST:
            return site.message("Nothing to unsubscribe", "This address gets nothing from us.")
        what = (
            f"'{visitor.scope.removeprefix('l-')}' emails"
            if tokens.kind_of(visitor.scope) == tokens.LIST
            else f"{site.name} emails"
        )
        return site.page(
            "unsubscribe.html",
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
            return site.refuse(
                request,
                "not a one-click unsubscribe request",
                site.message("Nothing changed", "This request is not an unsubscribe request.", 400),
            )
        return await run_in_threadpool(unsubscribe, visitor.subscriber_id, visitor.scope)

    def unsubscribe(subscriber_id: int, scope: str) -> Response:
        # The answer is rendered inside the transaction: if it fails, nothing changed.
        with site.engine.begin() as conn:
            subscribers.unsubscribe(conn, subscriber_id, scope)
            # RFC 8058: a plain 200, no redirect, the same however often it is sent.
            return site.message(
                "You are unsubscribed",
                "You will get no more of these emails.",
                link=site.preferences_url(subscriber_id),
                link_text="Changed your mind? Your preferences",
            )

    def generic(request: Request) -> Response:
        return site.message(
            "Unsubscribe",
            "Use the unsubscribe link at the bottom of any of our "
            "emails: it knows who you are, so you need not tell us.",
        )

    return [
        ("/unsubscribe", generic, ["GET"]),
        ("/unsubscribe/", generic, ["GET"]),
        ("/unsubscribe/{token}", page, ["GET"]),
        ("/unsubscribe/{token}", post, ["POST"]),
    ]
