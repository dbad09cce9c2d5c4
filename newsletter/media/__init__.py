"""Local images: an editor's photo, prepared for email.

Each image is turned upright by its EXIF orientation, scaled down to twice its display
width (sharp on high-density screens, no larger), stripped of every piece of metadata (no
GPS position leaves the building), kept as JPEG, PNG or GIF (anything else Pillow reads,
such as WebP, becomes PNG if it has transparency and JPEG otherwise: Outlook shows no
WebP), and named by the hash of the result. The same file gives the same bytes and the
same name every time, so an issue's content hash stays reproducible.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import NewsletterError

KEPT = {"JPEG": "jpg", "PNG": "png", "GIF": "gif"}
# The media type of a prepared file, by the extension of its name.
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif"}


def media_type(name: str) -> str | None:
    """The media type of a prepared file's name; None for a name no prepared file has."""
    return MEDIA_TYPES.get(name.rsplit(".", 1)[-1]) if "." in name else None


JPEG_QUALITY = 85
MAX_SOURCE_PIXELS = 60_000_000  # a decompression bomb is refused, not decoded


@dataclass(frozen=True)
class Prepared:
    name: str  # content hash and extension: the file's name wherever it is published
    data: bytes
    width: int  # pixels of the prepared file
    height: int
    source_bytes: int
    source_width: int
    display_width: int  # the width it is prepared to be shown at


# Prepared images of this process, by file, its modification time and size, and the
# width: a preview re-renders on every save, and preparing is most of a render's time.
_cache: dict[tuple[Path, int, int, int], Prepared] = {}
_CACHE_SIZE = 64


def prepare(path: Path, display_width: int) -> Prepared:
    """The image at path, prepared to be shown display_width pixels wide."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise NewsletterError(f"no such image file {path}") from None
    except OSError as exc:
        raise NewsletterError(f"cannot read {path}: {exc.strerror}") from None
    key = (path.resolve(), stat.st_mtime_ns, stat.st_size, display_width)
    if (cached := _cache.get(key)) is None:
        cached = _prepare(path, display_width)
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = cached
    return cached


# EXIF orientations that turn the picture a quarter: its stored width is its height.
_QUARTER_TURNS = {5, 6, 7, 8}


def _prepare(path: Path, display_width: int) -> Prepared:
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_SOURCE_PIXELS
    try:
        raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as opened:
            source_format = opened.format or ""
            frames = getattr(opened, "n_frames", 1)
            turned = opened.getexif().get(0x0112) in _QUARTER_TURNS
            source_width = opened.height if turned else opened.width
            if source_format == "JPEG":
                # Decode at the smallest scale (1/2, 1/4, 1/8) still at least twice the
                # display width: a 4000-pixel photo is not decoded whole to make 400.
                wanted = display_width * 2
                opened.draft(
                    opened.mode,
                    (wanted, wanted * opened.height // max(1, opened.width))
                    if not turned
                    else (wanted * opened.width // max(1, opened.height), wanted),
                )
            image = ImageOps.exif_transpose(opened)
            image.load()
    except FileNotFoundError:
        raise NewsletterError(f"no such image file {path}") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise NewsletterError(f"{path} is not an image this tool can read ({exc})") from None
    if source_format == "GIF" and frames > 1:
        # An animation is kept as it is: the width attribute scales it in the email.
        name = f"{hashlib.sha256(raw).hexdigest()[:20]}.gif"
        return Prepared(name, raw, image.width, image.height, len(raw), image.width, display_width)
    target = min(image.width, display_width * 2)
    if image.width > target:
        height = max(1, round(image.height * target / image.width))
        image = image.resize((target, height), Image.Resampling.LANCZOS)
    fmt = source_format if source_format in KEPT else _best_format(image)
    out = io.BytesIO()
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        # No exif=, icc_profile= or comment: nothing of the original's metadata is kept.
        image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=False)
    elif fmt == "PNG":
        image.save(out, "PNG", optimize=True)
    else:
        image.save(out, "GIF")
    data = out.getvalue()
    name = f"{hashlib.sha256(data).hexdigest()[:20]}.{KEPT[fmt]}"
    return Prepared(name, data, image.width, image.height, len(raw), source_width, display_width)


def _best_format(image: object) -> str:
    """JPEG for photographs, PNG where there is transparency."""
    mode = getattr(image, "mode", "RGB")
    return "PNG" if mode in ("RGBA", "LA", "P") else "JPEG"


def publish(prepared: Prepared, folder: Path) -> Path:
    """Write a prepared image into folder under its content name (once: the name is its
    content, so an existing file is already right)."""
    from newsletter.files import write_atomically

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / prepared.name
    if not target.exists():
        write_atomically(target, prepared.data)
    return target
