"""Local images prepared for email: upright, no larger than twice their display width,
no metadata, a format every client shows, named by content, the same bytes every time."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from newsletter.errors import NewsletterError
from newsletter.media import prepare, publish


def photo(path: Path, size: tuple[int, int], fmt: str = "JPEG", **save: object) -> Path:
    image = Image.new("RGB", size)
    for x in range(0, size[0], 7):  # some detail, so encoders have work to do
        for y in range(0, size[1], 11):
            image.putpixel((x, y), (x % 256, y % 256, (x * y) % 256))
    image.save(path, fmt, **save)
    return path


def test_a_rotated_photo_with_gps_is_turned_upright_scaled_and_stripped(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    exif[0x8825] = {1: "N", 2: (8.0, 59.0, 0.0)}  # a GPS position
    source = photo(tmp_path / "event.jpg", (2000, 1000), exif=exif.tobytes())
    prepared = prepare(source, display_width=300)
    assert (prepared.width, prepared.height) == (600, 1200)  # upright, twice 300 wide
    with Image.open(io.BytesIO(prepared.data)) as out:
        assert out.format == "JPEG"
        assert out.size == (600, 1200)
        assert not out.getexif()
        assert "exif" not in out.info and "icc_profile" not in out.info
    assert prepared.name.endswith(".jpg") and len(prepared.data) < source.stat().st_size
    again = prepare(source, display_width=300)
    assert (again.name, again.data) == (prepared.name, prepared.data)  # reproducible


def test_a_small_image_is_not_enlarged(tmp_path: Path) -> None:
    prepared = prepare(photo(tmp_path / "small.png", (120, 80), "PNG"), display_width=550)
    assert (prepared.width, prepared.height) == (120, 80)
    assert prepared.name.endswith(".png")


@pytest.mark.parametrize(("mode", "expected"), [("RGB", "JPEG"), ("RGBA", "PNG")])
def test_webp_becomes_a_format_every_client_shows(tmp_path: Path, mode: str, expected: str) -> None:
    path = tmp_path / "picture.webp"
    Image.new(mode, (400, 300), (10, 20, 30) + ((128,) if mode == "RGBA" else ())).save(
        path, "WEBP"
    )
    prepared = prepare(path, display_width=150)
    with Image.open(io.BytesIO(prepared.data)) as out:
        assert out.format == expected
        assert out.size == (300, 225)


def test_what_is_not_an_image_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(NewsletterError, match="is not an image this tool can read"):
        prepare(tmp_path / "notes.jpg", display_width=300)
    with pytest.raises(NewsletterError, match="no such image file"):
        prepare(tmp_path / "missing.jpg", display_width=300)


def test_published_under_its_content_name(tmp_path: Path) -> None:
    prepared = prepare(photo(tmp_path / "a.jpg", (800, 600)), display_width=300)
    target = publish(prepared, tmp_path / "media")
    assert target.name == prepared.name and target.read_bytes() == prepared.data
