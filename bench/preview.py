"""Benchmark: from saving the issue file to the browser showing the new render.

Starts `newsletter preview` on 127.0.0.1, opens it in Debian's chromium (Playwright),
edits the issue N times and prints the median time from each save to the frame showing
the new render (measured with the page's own clock at the frame's load event), beside
the rebuild time alone (measured in this process) and the 300 ms target.

Run: .venv/bin/python bench/preview.py [--edits 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "issues" / "2021-05.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rebuild_ms(path: Path, runs: int = 15) -> float:
    from newsletter.preview.state import Preview
    from newsletter.settings import Settings

    preview = Preview(
        path=path, settings=Settings(templates_dir=ROOT / "templates", _env_file=None)
    )  # type: ignore[call-arg]
    preview.rebuild()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        preview.rebuild()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=15)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        issue = Path(tmp) / "2021-05.yaml"
        shutil.copy(SAMPLE, issue)
        port = free_port()
        env = {**os.environ, "NEWSLETTER_TEMPLATES_DIR": str(ROOT / "templates")}
        exe = Path(sys.executable).with_name("newsletter")
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "newsletter"]
        server = subprocess.Popen(
            [*command, "preview", str(issue), "--port", str(port), "--no-open"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            for _ in range(100):
                try:
                    urllib.request.urlopen(url + "state", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            latencies = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url)
                page.wait_for_function("window.__preview.shown >= 1")
                text = issue.read_text(encoding="utf-8")
                for n in range(args.edits):
                    shown = page.evaluate("window.__preview.shown")
                    time.sleep(0.3)  # let the previous render settle, as between real saves
                    saved = time.time() * 1000
                    issue.write_text(
                        text.replace("Labour migration", f"Labour migration {n}", 1),
                        encoding="utf-8",
                    )
                    page.wait_for_function(f"window.__preview.shown > {shown}", timeout=10000)
                    latencies.append(page.evaluate("window.__preview.shownAt") - saved)
                browser.close()
        finally:
            server.terminate()
            server.wait()
        rebuild = rebuild_ms(issue)
    median = statistics.median(latencies)
    print(f"{args.edits} saves of the sample issue, preview in chromium:")
    print(
        f"  save to new render in the page: median {median:.0f} ms "
        f"(min {min(latencies):.0f}, max {max(latencies):.0f}); "
        f"target 300 ms: {median / 300:.2f}x of it"
    )
    print(
        f"  rebuild alone (load, validate, render): median {rebuild:.0f} ms; "
        f"the rest ({median - rebuild:.0f} ms) is the watcher, the push and the browser"
    )


if __name__ == "__main__":
    main()
