"""Preferences: a subscriber's lists, name and language, coming back after an unsubscribe,
and the download of everything held about them. Only a preferences link opens them."""

from __future__ import annotations

import hmac
import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter import languages, tokens
from newsletter.errors import NewsletterError
from newsletter.services import subscribers
from newsletter.web.common import Site, Visitor, mask, sentence

KINDS = frozenset({tokens.PREFERENCES})


def routes(site: Site) -> list[tuple[str, object, list[str]]]:
    def show(request: Request, visitor: Visitor, found: subscribers.Preferences) -> Response:
        s = found.subscriber
        w = site.words(request, s.language)
        saved = ""
        if found.changed is not None:
            what = ", ".join(w(f"changed_{c}") for c in found.changed)
            saved = w("saved_what", what=what) if what else w("nothing_to_save")
        stopped = ""
        if s.status in ("bounced", "complained"):
            stopped = w("status_stopped", why=w(f"status_{s.status}"))
        spoken = [(tag, languages.words(tag)("language_name")) for tag in languages.spoken()]
        if s.language and s.language not in dict(spoken):
            spoken.append((s.language, languages.name(s.language)))
        return site.page(
            "preferences.html",
            words=w,
            who=mask(s.email),
            name=s.name,
            language=s.language or "",
            languages=[("", w("language_unset")), *spoken],
            status=s.status,
            stopped=stopped,
            lists=found.lists,
            action=site.url("preferences", visitor.token),
            csrf=site.form_secret("prefs", visitor.token),
            data_link=site.url("preferences", visitor.token, "data"),
            saved=saved,
        )

    def nothing(request: Request) -> Response:
        w = site.words(request)
        return site.message(w, w("nothing_stored"), w("nothing_stored_text"))

    def page(request: Request) -> Response:
        visitor = site.visitor(request, KINDS)
        if isinstance(visitor, Response):
            return visitor
        with site.engine.connect() as conn:
            found = subscribers.preferences(conn, visitor.subscriber_id)
        if found is None:
            return nothing(request)
        return show(request, visitor, found)

    async def post(request: Request) -> Response:
        visitor = site.visitor(request, KINDS)
        if isinstance(visitor, Response):
            return visitor
        form = await request.form()
        csrf = str(form.get("csrf", ""))
        if not hmac.compare_digest(csrf, site.form_secret("prefs", visitor.token)):
            w = site.words(request)
            return site.refuse(
                request,
                "the form secret is missing or wrong",
                site.message(w, w("nothing_changed"), w("form_expired"), 403),
            )
        return await run_in_threadpool(
            save,
            request,
            visitor,
            str(form.get("name", "")),
            str(form.get("language", "")),
            {str(v) for v in form.getlist("list")},
            form.get("resubscribe") == "yes",
        )

    def save(
        request: Request,
        visitor: Visitor,
        name: str,
        language: str,
        wanted: set[str],
        resubscribe: bool,
    ) -> Response:
        try:
            with site.engine.begin() as conn:
                found = subscribers.update_preferences(
                    conn,
                    visitor.subscriber_id,
                    name=name,
                    language=language,
                    wanted_lists=wanted,
                    resubscribe=resubscribe,
                )
                if found is None:
                    return nothing(request)
                return show(request, visitor, found)
        except NewsletterError as exc:
            w = site.words(request)
            return site.refuse(
                request,
                "invalid preferences",
                site.message(w, w("nothing_changed"), sentence(exc.message), 400),
            )

    def data(request: Request) -> Response:
        visitor = site.visitor(request, KINDS)
        if isinstance(visitor, Response):
            return visitor
        with site.engine.connect() as conn:
            record = subscribers.export_data(conn, visitor.subscriber_id)
        if record is None:
            return nothing(request)
        return Response(
            json.dumps(record, ensure_ascii=False, indent=2),
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="my-newsletter-data.json"'},
        )

    def generic(request: Request) -> Response:
        w = site.words(request)
        return site.message(w, w("your_preferences"), w("preferences_generic"))

    return [
        ("/preferences", generic, ["GET"]),
        ("/preferences/{token}", page, ["GET"]),
        ("/preferences/{token}", post, ["POST"]),
        ("/preferences/{token}/data", data, ["GET"]),
    ]
