"""Prepared images, under /media/: named by their content, so they never change and are
cached for a year."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from newsletter.media import media_type
from newsletter.web.common import Site

_NAME = re.compile(r"[0-9a-f]{20}\.(jpg|png|gif)")


def routes(site: Site) -> list[tuple[str, object, list[str]]]:
    folder = Path(site.settings.media_dir)

    def image(request: Request) -> Response:
        name = request.path_params["name"]
        match = _NAME.fullmatch(name)
        path = folder / name
        if match is None or not path.is_file():
            w = site.words(request)
            return site.message(w, w("not_found"), w("not_found_text"), 404)
        return FileResponse(
            path,
            media_type=media_type(name),
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )

    return [("/media/{name}", image, ["GET"])]
