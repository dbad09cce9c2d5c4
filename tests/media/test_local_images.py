"""An issue with a photo beside it: validated at its line, prepared, shown with its pixel
size from the media URL, written beside the build and into the media folder, and served
under /media/ with a year's cache lifetime."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.errors import NewsletterError
from newsletter.issue import load_issue
from newsletter.settings import load_settings
from newsletter.web.app import create_web_app
from tests.conftest import MINIMAL_ISSUE

runner = CliRunner()
WITH_IMAGE = MINIMAL_ISSUE.replace(
    "        link: https://example.org/one\n",
    "        link: https://example.org/one\n"
    "        image:\n"
    "          src: images/event.jpg\n"
    "          alt: The team at the event\n"
    "          width: 180\n",
)


@pytest.fixture
def issue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "issues"
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (1600, 1200), (30, 90, 160)).save(folder / "images" / "event.jpg")
    path = folder / "2021-06.yaml"
    path.write_text(WITH_IMAGE, encoding="utf-8")
    monkeypatch.setenv("NEWSLETTER_MEDIA_DIR", str(tmp_path / "media"))
    return path


def test_a_missing_local_image_is_reported_at_its_line(issue: Path) -> None:
    (issue.parent / "images" / "event.jpg").unlink()
    with pytest.raises(NewsletterError) as info:
        load_issue(issue)
    assert info.value.lines() == [
        f"{issue}:12:16: sections[0].articles[0].image.src: no image file images/event.jpg "
        f"beside the issue ({issue.parent / 'images' / 'event.jpg'})"
    ]


@pytest.mark.parametrize("src", ["../secret.jpg", "/etc/passwd.jpg", "images/x.txt", "a//b.png"])
def test_a_path_outside_the_issue_folder_is_refused(tmp_path: Path, src: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(WITH_IMAGE.replace("images/event.jpg", src), encoding="utf-8")
    with pytest.raises(NewsletterError) as info:
        load_issue(path)
    assert "is neither a full web address nor the path of an image" in str(info.value)


def test_build_prepares_publishes_and_sizes_the_image(issue: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", str(issue), "--out", str(tmp_path / "site")])
    assert result.exit_code == 0, result.stdout + result.stderr
    media = sorted((tmp_path / "media").iterdir(), key=lambda f: f.suffix)
    assert [f.suffix for f in media] == [".jpg", ".png"]  # the photo, and the theme's logo
    beside = tmp_path / "site" / "2021-06" / "media" / media[0].name
    assert beside.read_bytes() == media[0].read_bytes()
    with Image.open(media[0]) as prepared:
        assert prepared.size == (360, 270)  # twice the 180 px it is shown at
    html = (tmp_path / "site" / "2021-06" / "index.html").read_text()
    # The web version loads it from beside itself; the message from the media address.
    assert f'src="media/{media[0].name}"' in html
    message = email.message_from_bytes(
        (tmp_path / "site" / "2021-06" / "message.eml").read_bytes(), policy=email.policy.default
    )
    part = message.get_body(("html",))
    assert part is not None
    assert f"https://newsletter.example.org/media/{media[0].name}" in part.get_content()
    assert 'width="180"' in html and 'height="135"' in html
    # The same files give the same build.
    again = runner.invoke(app, ["build", str(issue), "--out", str(tmp_path / "again")])
    assert again.exit_code == 0
    assert (tmp_path / "again" / "2021-06" / "index.html").read_text() == html


def test_serve_publishes_media_with_a_long_cache_lifetime(
    issue: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "media-test-key-0123456789")
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'n.db'}")
    assert runner.invoke(app, ["build", str(issue), "--out", str(tmp_path / "site")]).exit_code == 0
    name = next((tmp_path / "media").glob("*.jpg")).name
    client = TestClient(create_web_app(load_settings()), base_url="https://newsletter.example.org")
    response = client.get(f"/media/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.content == (tmp_path / "media" / name).read_bytes()
    for bad in ("../n.db", "%2e%2e%2fn.db", "0123.jpg", name.replace(".jpg", ".png")):
        assert client.get(f"/media/{bad}").status_code == 404


def _rules(issue: Path) -> dict[str, str]:
    from newsletter.services import issues

    report = issues.check(issue, load_settings())
    return {f.rule: f"{f.line}:{f.column}: {f.message}" for f in report.findings}


def test_check_warns_of_a_blurred_image_at_its_line(issue: Path) -> None:
    Image.new("RGB", (120, 90), (30, 90, 160)).save(issue.parent / "images" / "event.jpg")
    found = _rules(issue)
    assert found["image.small"] == (
        "12:16: images/event.jpg is 120 px wide, shown at 180 px: it will look blurred"
    )
    assert "image.bytes" not in found and "image.total" not in found


def test_check_warns_of_heavy_images(issue: Path) -> None:
    import random

    rng = random.Random(13)
    noise = Image.frombytes("RGB", (360, 270), bytes(rng.randrange(256) for _ in range(291600)))
    noise.save(issue.parent / "images" / "event.png")
    issue.write_text(WITH_IMAGE.replace("event.jpg", "event.png"), encoding="utf-8")
    found = _rules(issue)
    assert found["image.bytes"].startswith("12:16: images/event.png is ")
    assert "image.small" not in found


def test_check_warns_when_the_images_together_are_heavy(issue: Path) -> None:
    import random

    rng = random.Random(14)
    articles = ""
    for n in range(6):
        pixels = bytes(rng.randrange(256) for _ in range(360 * 270 * 3))
        Image.frombytes("RGB", (360, 270), pixels).save(issue.parent / "images" / f"p{n}.png")
        articles += (
            f"      - title: Story {n}\n        summary: Text {n}.\n"
            f"        link: https://example.org/{n}\n        cta: Story {n} in full\n"
            f"        image:\n          src: images/p{n}.png\n          alt: Picture {n}\n"
            "          width: 180\n"
        )
    text = MINIMAL_ISSUE.split("      - title: One")[0] + articles + "closing: Bye.\n"
    issue.write_text(text, encoding="utf-8")
    found = _rules(issue)
    assert found["image.total"].startswith("None:None: the issue's images weigh ")
