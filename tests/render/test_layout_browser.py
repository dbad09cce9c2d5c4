"""The default theme in a real browser: the sample, built with its local images, at 600
and 375 px, with images blocked, and in dark mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from newsletter.services.issues import build
from newsletter.settings import Settings
from tests.conftest import ROOT, SAMPLE

MEASURE = """() => {
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom];
  };
  const side = document.querySelector('.side-image img');
  const sideTitle = side.closest('tr').querySelector('.side-text h3')
    || side.closest('table.card, div.card').querySelector('h3');
  return {
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
    images: [...document.images].map((i) => ({
      src: i.getAttribute('src'), loaded: i.complete && i.naturalWidth > 0,
      natural: [i.naturalWidth, i.naturalHeight], attrs: [+i.getAttribute('width'),
      +i.getAttribute('height')], box: box(i), font: getComputedStyle(i).fontFamily,
      size: getComputedStyle(i).fontSize,
    })),
    side: box(side), sideTitle: box(sideTitle),
    card: box(document.querySelector('.masthead')),
    bg: getComputedStyle(document.body).backgroundColor,
  };
}"""


@pytest.fixture(scope="module")
def web_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's web version, built with its images in media/ beside it."""
    out = tmp_path_factory.mktemp("layout")
    settings = Settings(  # type: ignore[call-arg]
        templates_dir=ROOT / "templates", media_dir=out / "published", _env_file=None
    )
    return build(SAMPLE, settings, out).html


def _measure(
    browser: Any, page_file: Path, width: int, scheme: str = "light", images: bool = True
) -> dict[str, Any]:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    try:
        # Nothing leaves this machine; blocked images are what a cautious client shows.
        def route(r: Any) -> None:
            local = r.request.url.startswith("file:")
            if local and (images or r.request.resource_type != "image"):
                r.continue_()
            else:
                r.abort()

        page.route("**/*", route)
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        return dict(page.evaluate(MEASURE))
    finally:
        page.close()


@pytest.mark.parametrize("width", [600, 375])
def test_the_sample_shows_every_image_sharp_and_in_proportion(
    browser: Any, web_version: Path, width: int
) -> None:
    m = _measure(browser, web_version, width)
    assert m["scroll"] <= m["client"] == width, "no sideways scrolling"
    assert len(m["images"]) == 7  # the logo and six article pictures
    for image in m["images"]:
        assert image["loaded"], image["src"]
        assert image["src"].startswith("media/")
        left, top, right, bottom = image["box"]
        shown_w, shown_h = right - left, bottom - top
        # As wide as its width attribute says; on a phone a picture may fill the column.
        assert 0 < shown_w <= max(image["attrs"][0], width - 64) and right <= width, image
        # Sharp: the file has at least as many pixels as the screen shows (twice, for
        # the article pictures); in proportion: the file's aspect ratio is kept.
        assert image["natural"][0] >= shown_w
        ratio = image["natural"][1] / image["natural"][0]
        assert abs(shown_h - shown_w * ratio) <= 1.5, image


def test_desktop_sets_pictures_beside_their_text(browser: Any, web_version: Path) -> None:
    m = _measure(browser, web_version, 600)
    assert m["card"][2] - m["card"][0] == 600
    assert m["side"][2] <= m["sideTitle"][0], "the side picture sits left of its text"


def test_phones_stack_pictures_above_their_text(browser: Any, web_version: Path) -> None:
    m = _measure(browser, web_version, 375)
    assert m["card"][2] - m["card"][0] == 375
    assert m["side"][3] <= m["sideTitle"][1], "the picture is stacked above the title"
    assert m["side"][2] - m["side"][0] > 250, "the stacked picture uses the screen's width"


def test_blocked_images_keep_their_place_and_show_styled_alt_text(
    browser: Any, web_version: Path
) -> None:
    m = _measure(browser, web_version, 600, images=False)
    for image in m["images"]:
        assert not image["loaded"]
        left, top, right, bottom = image["box"]
        assert (round(right - left), round(bottom - top)) == tuple(image["attrs"]), image
    pictures = [i for i in m["images"] if i["attrs"][0] >= 200]  # not the logo
    assert len(pictures) == 6
    for image in pictures:
        assert "Helvetica" in image["font"] and image["size"] == "16px", image


def test_dark_mode_switches_the_page_colours(browser: Any, web_version: Path) -> None:
    assert _measure(browser, web_version, 800, "light")["bg"] == "rgb(238, 241, 245)"
    assert _measure(browser, web_version, 800, "dark")["bg"] == "rgb(13, 17, 23)"
