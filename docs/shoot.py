"""Screenshots of the sample issue as a subscriber's email and as the web version, at 600
and 375 pixels, in the light and the dark colour scheme, with chromium.

Run: .venv/bin/python docs/shoot.py PREFIX   (writes docs/screenshots/PREFIX-*.jpg)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from newsletter.issue import load_issue  # noqa: E402
from newsletter.render import render_issue  # noqa: E402
from newsletter.render.versions import sample_values  # noqa: E402
from newsletter.services.issues import build  # noqa: E402
from newsletter.settings import Settings  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def main() -> None:
    prefix = sys.argv[1] if len(sys.argv) > 1 else "now"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = Settings(  # type: ignore[call-arg]
            templates_dir=ROOT / "templates", media_dir=folder / "site" / "media", _env_file=None
        )
        web = build(ROOT / "issues" / "2021-05.yaml", settings, folder / "site").html
        rendered = render_issue(load_issue(ROOT / "issues" / "2021-05.yaml"), settings)
        email = rendered.personalize(sample_values(settings, rendered.slug)).html
        # The email loads its images from the media folder, as the web service would.
        email_file = web.parent / "email.html"
        email_file.write_text(email.replace(f"{settings.media_base()}/", "media/"))
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            for name, page_file in (("email", email_file), ("web", web)):
                for width in (600, 375):
                    for scheme in ("light", "dark"):
                        page = browser.new_page(
                            viewport={"width": width, "height": 900}, color_scheme=scheme
                        )
                        page.goto(page_file.as_uri())
                        page.wait_for_load_state("load")
                        target = OUT / f"{prefix}-{name}-{width}-{scheme}.jpg"
                        page.screenshot(path=str(target), full_page=True, type="jpeg", quality=70)
                        page.close()
                        print(target.relative_to(ROOT))
            browser.close()


if __name__ == "__main__":
    main()
