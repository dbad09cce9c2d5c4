"""The default theme in a real browser: 600 px on the desktop, stacked at 375 px, dark mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.render import RenderedIssue
from newsletter.render.versions import sample_values as sample_recipient
from newsletter.settings import Settings

BOXES = """() => {
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom];
  };
  const img = document.querySelector('img');
  const title = [...document.querySelectorAll('h3')][0];
  const card = document.querySelector('.masthead');
  return {
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
    img: box(img), title: box(title), card: box(card),
    bg: getComputedStyle(document.body).backgroundColor,
  };
}"""


@pytest.fixture(scope="module")
def page_file(sample_rendered: RenderedIssue, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = sample_rendered.personalize(sample_recipient(Settings(_env_file=None), "2021-05"))  # type: ignore[call-arg]
    path = tmp_path_factory.mktemp("layout") / "index.html"
    path.write_text(copy.html, encoding="utf-8")
    return path


def _measure(browser, page_file: Path, width: int, scheme: str = "light") -> dict:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    try:
        # Images point at example.org; block the network so the test stays on this machine.
        page.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith("file:") else route.abort()
            ),
        )
        page.goto(page_file.as_uri())
        return page.evaluate(BOXES)
    finally:
        page.close()


def test_desktop_is_600px_with_image_beside_text(browser, page_file: Path) -> None:  # type: ignore[no-untyped-def]
    m = _measure(browser, page_file, 1024)
    assert m["card"][2] - m["card"][0] == 600
    assert m["img"][2] <= m["title"][0], "image column sits left of the text column"
    assert m["scroll"] == m["client"]


def test_mobile_stacks_columns_without_horizontal_scroll(browser, page_file: Path) -> None:  # type: ignore[no-untyped-def]
    m = _measure(browser, page_file, 375)
    assert m["scroll"] <= m["client"] == 375
    assert m["img"][3] <= m["title"][1], "image is stacked above the article title"
    assert m["img"][2] - m["img"][0] > 250, "the stacked image uses the width of the screen"
    assert m["card"][2] - m["card"][0] == 375


def test_dark_mode_switches_the_page_colours(browser, page_file: Path) -> None:  # type: ignore[no-untyped-def]
    assert _measure(browser, page_file, 800, "light")["bg"] == "rgb(238, 241, 245)"
    assert _measure(browser, page_file, 800, "dark")["bg"] == "rgb(13, 17, 23)"
