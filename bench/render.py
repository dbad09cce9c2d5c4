"""Benchmark: how long an issue takes to load, validate and render.

Prints medians, measured in this run:
  * in-process load+validate and render of the sample issue, and each render stage;
  * a whole-process `newsletter build` (interpreter start-up and imports included);
  * where node and npm are available, the official mjml CLI compiling the same MJML,
    and the ratio of the two.

Run: .venv/bin/python bench/render.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.issue import IssueFile, load_issue  # noqa: E402
from newsletter.render import RenderedIssue, engine, render_issue, render_mjml  # noqa: E402
from newsletter.settings import Settings  # noqa: E402

SAMPLE = ROOT / "issues" / "2021-05.yaml"
NODE_DIR = ROOT / "bench" / ".cache" / "node"
MJML_VERSION = "4"


def median_ms(func: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def official_mjml() -> list[str] | None:
    """The official mjml CLI, installed into bench/.cache on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None
    cli = NODE_DIR / "node_modules" / "mjml" / "bin" / "mjml"
    if not cli.exists():
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        print(f"installing the official mjml CLI (mjml@{MJML_VERSION}) for comparison...")
        done = subprocess.run(
            [
                npm,
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(NODE_DIR),
                f"mjml@{MJML_VERSION}",
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not cli.exists():
            print("  could not install it:", done.stderr.strip()[:200])
            return None
    return [node, str(cli)]


def images_report(issue: IssueFile, rendered: RenderedIssue, settings: Settings, runs: int) -> None:
    """What preparing the sample's local images costs a render, against the same issue
    without its images, and their sizes before and after."""
    import re

    bare_text = re.sub(r"(?m)^        image:\n(?:          .*\n)+", "", SAMPLE.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        bare_path = Path(tmp) / SAMPLE.name
        bare_path.write_text(bare_text)
        bare = load_issue(bare_path)
        assert not any(a.image for a in bare.issue.articles())
        without = median_ms(lambda: render_issue(bare, settings), runs)
    from newsletter import media

    def cold() -> object:
        media._cache.clear()  # as a build pays: every image prepared from its file
        return render_issue(issue, settings)

    with_images = median_ms(cold, runs)
    warm = median_ms(lambda: render_issue(issue, settings), runs)
    print(f"local images, median of {runs} renders:")
    print(f"  render without its images  {without:7.2f} ms")
    print(
        f"  render preparing them      {with_images:7.2f} ms   "
        f"(+{with_images - without:.0f} ms, {with_images / without:.2f}x: a build)"
    )
    print(
        f"  render, prepared before    {warm:7.2f} ms   "
        f"(+{warm - without:.0f} ms: the preview's next save)"
    )
    source = sum(m.source_bytes for m in rendered.media)
    prepared = sum(len(m.data) for m in rendered.media)
    for m in rendered.media:
        print(
            f"    {m.source_width:5d} px {m.source_bytes:8,d} B  ->  {m.width:5d} px "
            f"{len(m.data):7,d} B   shown at {m.display_width} px"
        )
    print(f"  together {source:,d} B -> {prepared:,d} B ({prepared / source:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="in-process repetitions")
    parser.add_argument("--process-runs", type=int, default=7, help="whole-process repetitions")
    args = parser.parse_args()

    settings = Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]
    issue = load_issue(SAMPLE)
    first_start = time.perf_counter()
    rendered = render_issue(issue, settings)
    first = (time.perf_counter() - first_start) * 1000
    mjml = render_mjml(issue, settings)
    compiled = engine.compile_mjml(mjml, "bench")
    articles = len(issue.issue.articles())

    load = median_ms(lambda: load_issue(SAMPLE), args.runs)
    render = median_ms(lambda: render_issue(load_issue(SAMPLE), settings), args.runs)
    jinja = median_ms(lambda: render_mjml(issue, settings), args.runs)
    mjml_ms = median_ms(lambda: engine.compile_mjml(mjml, "bench"), args.runs)
    inline = median_ms(lambda: engine.inline_css(compiled), args.runs)

    print(f"sample issue: {articles} articles, {rendered.html_size / 1024:.1f} KB of HTML")
    print(f"in-process, median of {args.runs}:")
    print(f"  load + validate            {load:7.2f} ms")
    print(
        f"  load + validate + render   {render:7.2f} ms   (target 30 ms: {render / 30:.2f}x of it)"
    )
    print(f"    Jinja to MJML            {jinja:7.2f} ms")
    print(f"    mjml-python compile      {mjml_ms:7.2f} ms")
    print(f"    premailer inlining       {inline:7.2f} ms")
    print(f"  first render (cold caches) {first:7.2f} ms")
    images_report(issue, rendered, settings, args.runs)

    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(sys.executable).with_name("newsletter")
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "newsletter"]
        env = {**os.environ, "NEWSLETTER_TEMPLATES_DIR": str(ROOT / "templates")}

        def build() -> None:
            subprocess.run(
                [*command, "build", str(SAMPLE), "--out", tmp],
                check=True,
                capture_output=True,
                env=env,
            )

        build()  # warm the OS file cache and bytecode
        whole = median_ms(build, args.process_runs)
        imports = (
            "import pydantic_settings, premailer, typer, jinja2, markdown_it, yaml, mjml, "
            "email.policy"
        )

        def floor() -> None:
            subprocess.run([sys.executable, "-c", imports], check=True)

        floor_ms = median_ms(floor, args.process_runs)
        print(f"whole process, median of {args.process_runs}:")
        print(f"  newsletter build           {whole:7.1f} ms   (render, text, sample .eml, files)")
        print(f"  importing the dependencies {floor_ms:7.1f} ms   (python -c 'import ...' alone)")

        cli = official_mjml()
        if cli is None:
            print("  official mjml CLI          not measured: node and npm are not available")
            return
        source = Path(tmp) / "issue.mjml"
        source.write_text(mjml, encoding="utf-8")
        out = Path(tmp) / "mjml-cli.html"

        def official() -> None:
            subprocess.run([*cli, str(source), "-o", str(out)], check=True, capture_output=True)

        official()
        node_ms = median_ms(official, args.process_runs)
        print(f"  official mjml CLI          {node_ms:7.1f} ms   (MJML to HTML only, same MJML)")
        ratio = whole / node_ms
        verdict = "faster" if ratio < 1 else "slower"
        print(
            f"ratio: newsletter build / mjml CLI = {ratio:.2f} "
            f"(the whole build is {verdict} than the mjml CLI compiling alone)"
        )


if __name__ == "__main__":
    main()
