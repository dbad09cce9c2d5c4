"""The preview server: Starlette on 127.0.0.1, server-sent events for live reload.

It watches the issue file, the templates folder and the segments file; every change
(debounced) re-renders, and the page swaps in the new render. A broken save shows its
error over the last good render. Requests that arrive during a rebuild wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from watchfiles import awatch

from newsletter.errors import NewsletterError
from newsletter.media import media_type
from newsletter.preview.state import Preview, force_scheme

STATIC = Path(__file__).parent / "static"
# Files a local image can be (what Pillow reads that an editor is likely to drop).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic", ".tif", ".tiff", ".bmp"}
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
_page = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(STATIC)), autoescape=True, undefined=jinja2.StrictUndefined
)


def _watched(preview: Preview) -> tuple[list[Path], Any]:
    """Folders to watch, and a filter keeping the issue, the theme and the segments file.

    Folders rather than files: editors save by writing a new file and renaming it over
    the old one, which a watch on the old file would miss."""
    issue = preview.path.resolve()
    templates = Path(preview.settings.templates_dir).resolve()
    segments = Path(preview.settings.segments_file).resolve()
    folders = {issue.parent, templates}
    if segments.parent.exists():
        folders.add(segments.parent)

    def keep(_change: object, name: str) -> bool:
        path = Path(name).resolve()
        if path in (issue, segments) or templates in path.parents:
            return True
        # An image beside the issue (a local image's file, replaced or edited).
        return path.suffix.lower() in IMAGE_SUFFIXES and issue.parent in path.parents

    return sorted(folders), keep


def _mtimes(preview: Preview) -> dict[Path, float]:
    """Modification times of everything the preview renders from."""
    paths = [preview.path, Path(preview.settings.segments_file)]
    paths += Path(preview.settings.templates_dir).rglob("*")
    paths += (p for p in preview.path.parent.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    times = {}
    for path in paths:
        with contextlib.suppress(OSError):
            times[path] = path.stat().st_mtime
    return times


def create_app(preview: Preview, *, port: int) -> Starlette:
    changed = asyncio.Condition()
    origins = {f"http://{host}:{port}" for host in LOOPBACK}

    async def rebuild() -> None:
        await asyncio.to_thread(preview.rebuild)
        async with changed:
            changed.notify_all()

    async def watch(stop: asyncio.Event, ready: asyncio.Event) -> None:
        folders, keep = _watched(preview)
        before = _mtimes(preview)
        async for changes in awatch(
            *folders,
            watch_filter=keep,
            debounce=30,
            step=10,
            stop_event=stop,
            rust_timeout=100,
            yield_on_timeout=True,
        ):
            if not ready.is_set():
                # The watcher is in place; a save made while it was being set up is not lost.
                ready.set()
                if _mtimes(preview) != before:
                    await rebuild()
            if changes:
                await rebuild()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(watch(stop, ready))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=5)
        try:
            yield
        finally:
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def personal() -> tuple[str, str] | None:
        with preview.lock:
            if preview.rendered is None or preview.recipient is None:
                return None
            copy = preview.rendered.personalize(preview.recipient)
            return copy.html, copy.text

    def page(request: Request) -> Response:
        body = _page.get_template("index.html").render(
            file=str(preview.path), csrf=preview.csrf, state=json.dumps(preview.state())
        )
        return HTMLResponse(body)

    def email(request: Request) -> Response:
        copy = personal()
        if copy is None:
            return HTMLResponse("<!doctype html><p>Nothing rendered yet.</p>")
        scheme = request.query_params.get("scheme", "auto")
        # Local images come from this server, as prepared from the files on disk: nothing
        # needs publishing to preview them.
        html = copy[0].replace(f"{preview.settings.media_base()}/", "/media/")
        return HTMLResponse(force_scheme(html, scheme), headers={"Cache-Control": "no-store"})

    def media(request: Request) -> Response:
        name = request.path_params["name"]
        with preview.lock:
            prepared = preview.rendered.media if preview.rendered else ()
        found = [m for m in prepared if m.name == name]
        if not found:
            return PlainTextResponse("no such image in this issue", status_code=404)
        return Response(
            found[0].data, media_type=media_type(name), headers={"Cache-Control": "no-store"}
        )

    def text(request: Request) -> Response:
        copy = personal()
        return PlainTextResponse(copy[1] if copy else "", headers={"Cache-Control": "no-store"})

    def source(request: Request) -> Response:
        copy = personal()
        return PlainTextResponse(copy[0] if copy else "", headers={"Cache-Control": "no-store"})

    def headers(request: Request) -> Response:
        with preview.lock:
            rendered, recipient = preview.rendered, preview.recipient
        if rendered is None or recipient is None:
            return JSONResponse({})
        settings = preview.settings
        name = recipient.name
        return JSONResponse(
            {
                "From": f"{settings.from_name} <{settings.from_address}>",
                "To": f"{name} <{recipient.email}>" if name else recipient.email,
                "Subject": rendered.subject,
                "Preheader": rendered.preheader,
                "List-Unsubscribe": f"<{recipient.unsubscribe_url}>, "
                f"<mailto:unsubscribe@{settings.sender_domain()}?subject=unsubscribe>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        )

    def state(request: Request) -> Response:
        return JSONResponse(preview.state())

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            seen = -1
            while not await request.is_disconnected():
                current = preview.state()
                if current["version"] != seen:
                    seen = int(current["version"])  # type: ignore[call-overload]
                    yield f"data: {json.dumps(current)}\n\n"
                async with changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), timeout=15)
                yield ": keep-alive\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    def forbidden(request: Request) -> Response | None:
        """POSTs need the page's CSRF token, and an Origin on loopback if one is sent."""
        origin = request.headers.get("origin")
        if origin is not None and origin not in origins:
            return PlainTextResponse("cross-origin request refused", status_code=403)
        if request.headers.get("x-csrf-token") != preview.csrf:
            return PlainTextResponse("missing or wrong CSRF token", status_code=403)
        return None

    async def change(request: Request, action: Callable[[Any], None], key: str) -> Response:
        """A POST that changes what the page shows (who it is shown as, which edition):
        checked, applied off the event loop, and announced to every open page."""
        if (refused := forbidden(request)) is not None:
            return refused
        wanted = (await request.json()).get(key) or None
        try:
            await asyncio.to_thread(action, wanted)
        except NewsletterError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=404)
        async with changed:
            changed.notify_all()
        return JSONResponse({"ok": True, "state": preview.state()})

    async def select(request: Request) -> Response:
        return await change(request, preview.select, "email")

    async def language(request: Request) -> Response:
        return await change(request, lambda wanted: preview.choose(str(wanted or "")), "language")

    def subscribers(request: Request) -> Response:
        from newsletter.services.subscribers import find

        people: list[dict[str, str]] = []
        try:
            for s in find(preview.settings, status="active"):
                people.append({"email": s.email, "name": s.name})
                if len(people) >= 100:
                    break
        except NewsletterError:
            pass
        return JSONResponse(people)

    async def test_send(request: Request) -> Response:
        if (refused := forbidden(request)) is not None:
            return refused
        from newsletter.services.campaigns import send_test

        try:
            summary = await asyncio.to_thread(
                send_test, preview.path, preview.settings, language=preview.language
            )
        except NewsletterError as exc:
            return JSONResponse({"ok": False, "error": str(exc)})
        results = [
            {"to": to, "result": str(outcome), "kind": outcome.kind}
            for to, outcome in summary.outcomes
        ]
        return JSONResponse({"ok": summary.sent == len(results), "results": results})

    routes = [
        Route("/", page),
        Route("/email", email),
        Route("/media/{name}", media),
        Route("/text", text),
        Route("/source", source),
        Route("/headers", headers),
        Route("/state", state),
        Route("/events", events),
        Route("/subscribers", subscribers),
        Route("/select", select, methods=["POST"]),
        Route("/language", language, methods=["POST"]),
        Route("/test-send", test_send, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    assets = Path(preview.settings.templates_dir) / "assets"
    if assets.is_dir():
        routes.append(Mount("/assets", StaticFiles(directory=assets), name="assets"))
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        # A page on another site could point a DNS name at 127.0.0.1; refuse any Host
        # that is not loopback (DNS rebinding).
        middleware=[
            Middleware(
                TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "::1", "[::1]"]
            )
        ],
    )


def make_server(preview: Preview, *, port: int, on_ready: Any = None) -> Any:
    """A uvicorn server for the preview on 127.0.0.1; on_ready(url) once it listens."""
    import uvicorn

    config = uvicorn.Config(
        create_app(preview, port=port),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets=sockets)
            if server.started:
                on_ready(f"http://127.0.0.1:{port}/")

        server.startup = startup  # type: ignore[method-assign]
    return server


def serve(preview: Preview, *, port: int, on_ready: Any = None) -> None:
    """Run until Ctrl-C, which uvicorn turns into a clean shutdown."""
    make_server(preview, port=port, on_ready=on_ready).run()
