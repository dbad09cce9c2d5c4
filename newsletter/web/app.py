"""The public web service, where the links in every email lead.

One module per page group (unsubscribe, preferences, signup and confirm, archive); what
they share is in common.py. Handlers that touch the database run in the thread pool, never
on the event loop. GET never changes anything: link scanners fetch GETs.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import jinja2
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from newsletter import tokens
from newsletter.errors import ConfigError
from newsletter.services import database
from newsletter.settings import Settings
from newsletter.web import archive, media, preferences, signup, unsubscribe
from newsletter.web.common import (
    PAGES,
    TEMPLATES,
    AccessLog,
    HostCheck,
    RateLimit,
    SecurityHeaders,
    Site,
)

SIGNUPS_PER_WINDOW = 5
SIGNUP_WINDOW = 15 * 60
MIN_KEY_LENGTH = 16


def real_secret_key(settings: Settings) -> str:
    """The signing key, refusing to serve with none, the development key or a short one."""
    if settings.secret_key is None:
        raise ConfigError(
            "NEWSLETTER_SECRET_KEY is not set; it signs every link this service reads"
        )
    key = settings.secret_key.get_secret_value()
    if key == tokens.DEVELOPMENT_KEY or len(key) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"NEWSLETTER_SECRET_KEY is too weak for a public service; use at least "
            f"{MIN_KEY_LENGTH} random characters"
        )
    return key


def create_web_app(settings: Settings) -> Starlette:
    key = real_secret_key(settings)
    pages = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    # Every page template is loaded now: a missing one stops the start, not a request.
    for name in PAGES:
        try:
            pages.get_template(name)
        except jinja2.TemplateError as exc:
            raise ConfigError(f"the web page template {name} cannot be loaded: {exc}") from None
    site = Site(
        settings=settings,
        engine=database(settings),
        key=key,
        pages=pages,
        signups=RateLimit(SIGNUPS_PER_WINDOW, SIGNUP_WINDOW),
    )
    routes = [
        Route(path, endpoint, methods=methods)
        for group in (unsubscribe, preferences, signup, archive, media)
        for path, endpoint, methods in group.routes(site)
    ]
    hosts = {urlsplit(settings.base_url).hostname or "localhost", "localhost", "127.0.0.1"}

    def busy(request: Request, exc: Exception) -> Response:
        # A database locked past its busy timeout, or gone: the transaction was rolled back,
        # so nothing changed; the subscriber can simply try again.
        w = site.words(request)
        return site.refuse(
            request,
            f"the database is unavailable ({type(exc).__name__})",
            site.message(w, w("try_again"), w("try_again_text"), 503),
        )

    def home(request: Request) -> Response:
        # The site's front door: the archive, which offers to subscribe.
        return RedirectResponse(site.url("archive") + "/", status_code=302)

    def not_found(request: Request, exc: Exception) -> Response:
        w = site.words(request)
        return site.message(w, w("not_found"), w("not_found_text"), 404)

    routes.append(Route("/", home, methods=["GET"]))
    return Starlette(
        routes=routes,
        exception_handlers={OperationalError: busy, 404: not_found},
        middleware=[
            Middleware(AccessLog),
            Middleware(HostCheck, hosts=hosts),
            Middleware(SecurityHeaders),
        ],
    )
