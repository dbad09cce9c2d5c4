"""The archive: every issue sent live, each of its editions (no personal data), and an
Atom feed per language. The emails' "view in browser" link leads here:
/archive/SLUG/ for the issue as written, /archive/SLUG/LANG/ for a translated edition,
each page pointing at the others with hreflang links."""

from __future__ import annotations

import datetime as dt
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter import languages
from newsletter.errors import NewsletterError
from newsletter.sending.ledger import SentIssue
from newsletter.services import campaigns
from newsletter.services.subscribers import iso
from newsletter.web.common import Site


def routes(site: Site) -> list[tuple[str, object, list[str]]]:
    def edition_url(item: SentIssue, language: str | None) -> str:
        if language is None or language == item.language:
            return site.url("archive", item.slug) + "/"
        return site.url("archive", item.slug, language) + "/"

    def editions(item: SentIssue) -> list[tuple[str | None, str]]:
        """(language, subject) of every edition, the issue as written first."""
        return [(item.language, item.subject), *item.editions]

    def index(request: Request) -> Response:
        w = site.words(request)
        items = []
        for i in campaigns.archive(site.settings):
            # Each issue in the visitor's language where it has that edition.
            shown = languages.pick(w.language, [e for e, _ in editions(i) if e], i.language or "")
            subject = dict(editions(i)).get(shown, i.subject)
            items.append(
                {
                    "url": edition_url(i, shown),
                    "lang": shown or "",
                    "subject": subject,
                    "date": languages.long_date(i.first_sent.date(), w.language),
                    "others": [
                        {
                            "url": edition_url(i, language),
                            "lang": language,
                            "name": languages.name(language),
                        }
                        for language, _ in editions(i)
                        if language and language != shown
                    ],
                }
            )
        feed = site.url("archive", "feed.xml")
        if w.language != "en":
            feed = site.url("archive", "feed", f"{w.language}.xml")
        return site.page(
            "archive.html",
            words=w,
            switch=site.switch(request, w),
            issues=items,
            feed=feed,
            signup=site.url("signup") + f"?lang={w.language}",
        )

    def found(slug: str) -> SentIssue | None:
        return next((i for i in campaigns.archive(site.settings) if i.slug == slug), None)

    def page(request: Request, language: str | None) -> Response:
        item = found(request.path_params["slug"])
        w = site.words(request, language)
        known = {e for e, _ in editions(item)} if item else set()
        if item is None or (language is not None and language not in known):
            return site.message(w, w("not_found"), w("not_in_archive"), 404)
        try:
            html = campaigns.web_version(
                site.settings, item, None if language == item.language else language
            )
        except NewsletterError:
            return site.message(w, w("not_available"), w("not_available_text"), 404)
        alternates = "".join(
            f'<link rel="alternate" hreflang={quoteattr(e)} href={quoteattr(edition_url(item, e))}>'
            for e, _ in editions(item)
            if e
        )
        if alternates:
            html = html.replace("</head>", alternates + "</head>", 1)
        return HTMLResponse(html)

    def issue(request: Request) -> Response:
        return page(request, None)

    def translated(request: Request) -> Response:
        return page(request, languages.canonical(request.path_params["language"][:35]))

    def feed_of(language: str | None) -> Response:
        items = campaigns.archive(site.settings)
        entries = []
        for i in items:
            by_language = dict(editions(i))
            chosen = i.language if language is None else language
            if language is not None and language not in by_language:
                continue
            url = edition_url(i, chosen)
            links = "".join(
                f'<link rel="alternate" hreflang={quoteattr(e)} '
                f"href={quoteattr(edition_url(i, e))}/>"
                for e in by_language
                if e and e != chosen
            )
            entries.append(
                "<entry>"
                f"<title>{xml_escape(by_language.get(chosen, i.subject))}</title>"
                f"<link href={quoteattr(url)}/>{links}"
                f"<id>{xml_escape(url)}</id>"
                f"<updated>{iso(i.first_sent)}</updated>"
                "</entry>"
            )
        updated = max((i.first_sent for i in items), default=dt.datetime(2000, 1, 1))
        self_url = site.url("archive", "feed.xml")
        if language is not None:
            self_url = site.url("archive", "feed", f"{language}.xml")
        lang = f" xml:lang={quoteattr(language)}" if language else ""
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<feed xmlns="http://www.w3.org/2005/Atom"{lang}>'
            f"<title>{xml_escape(site.name)}</title>"
            f'<link href="{xml_escape(site.url("archive") + "/")}"/>'
            f'<link rel="self" href="{xml_escape(self_url)}"/>'
            f"<id>{xml_escape(self_url)}</id>"
            f"<updated>{iso(updated)}</updated>"
            f"<author><name>{xml_escape(site.name)}</name></author>"
            f"{''.join(entries)}</feed>"
        )
        return Response(body, media_type="application/atom+xml")

    def feed(request: Request) -> Response:
        return feed_of(None)

    def language_feed(request: Request) -> Response:
        name = request.path_params["name"]
        if not name.endswith(".xml"):
            w = site.words(request)
            return site.message(w, w("not_found"), w("not_found_text"), 404)
        return feed_of(languages.canonical(name.removesuffix(".xml")[:35]))

    return [
        ("/archive/", index, ["GET"]),
        ("/archive/feed.xml", feed, ["GET"]),
        ("/archive/feed/{name}", language_feed, ["GET"]),
        ("/archive/{slug}/", issue, ["GET"]),
        ("/archive/{slug}/{language}/", translated, ["GET"]),
    ]
