"""The archive: every issue sent live, its web version (no personal data), and an Atom
feed. The emails' "view in browser" link leads here."""

from __future__ import annotations

import datetime as dt
from xml.sax.saxutils import escape as xml_escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.errors import NewsletterError
from newsletter.services import campaigns
from newsletter.services.subscribers import iso
from newsletter.web.common import Site


def routes(site: Site) -> list[tuple[str, object, list[str]]]:
    def index(request: Request) -> Response:
        items = [
            {
                "url": site.url("archive", i.slug) + "/",
                "subject": i.subject,
                "date": f"{i.first_sent:%d %B %Y}",
            }
            for i in campaigns.archive(site.settings)
        ]
        return site.page(
            "archive.html",
            issues=items,
            feed=site.url("archive", "feed.xml"),
            signup=site.url("signup"),
        )

    def issue(request: Request) -> Response:
        slug = request.path_params["slug"]
        found = next((i for i in campaigns.archive(site.settings) if i.slug == slug), None)
        if found is None:
            return site.message("Not found", "There is no such issue in the archive.", 404)
        try:
            _, html = campaigns.web_version(site.settings, found)
        except NewsletterError:
            return site.message("Not available", "This issue cannot be shown at the moment.", 404)
        return HTMLResponse(html)

    def feed(request: Request) -> Response:
        items = campaigns.archive(site.settings)
        updated = max((i.first_sent for i in items), default=dt.datetime(2000, 1, 1))
        entries = "".join(
            "<entry>"
            f"<title>{xml_escape(i.subject)}</title>"
            f'<link href="{xml_escape(site.url("archive", i.slug) + "/")}"/>'
            f"<id>{xml_escape(site.url('archive', i.slug) + '/')}</id>"
            f"<updated>{iso(i.first_sent)}</updated>"
            "</entry>"
            for i in items
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{xml_escape(site.name)}</title>"
            f'<link href="{xml_escape(site.url("archive") + "/")}"/>'
            f'<link rel="self" href="{xml_escape(site.url("archive", "feed.xml"))}"/>'
            f"<id>{xml_escape(site.url('archive') + '/')}</id>"
            f"<updated>{iso(updated)}</updated>"
            f"<author><name>{xml_escape(site.name)}</name></author>"
            f"{entries}</feed>"
        )
        return Response(body, media_type="application/atom+xml")

    return [
        ("/archive/", index, ["GET"]),
        ("/archive/feed.xml", feed, ["GET"]),
        ("/archive/{slug}/", issue, ["GET"]),
    ]
