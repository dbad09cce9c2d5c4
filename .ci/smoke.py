"""Smoke test of an installed newsletter (a wheel in a clean virtual environment).

Run with that environment's Python from a folder outside the checkout, so that nothing is
imported from the source tree. It runs every command's --help, validate, build, an import
and a live send to the outbox, then `newsletter serve`, and asks every page over HTTP.
Usage: python smoke.py CHECKOUT
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import typer.main

import newsletter
from newsletter import tokens
from newsletter.cli import app

checkout = Path(sys.argv[1]).resolve()
installed = Path(newsletter.__file__).resolve()
assert checkout not in installed.parents, f"imported from the checkout: {installed}"
script = Path(sys.executable).with_name("newsletter")
KEY = "smoke-test-secret-key-0123456789"


def run(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=env, timeout=120
    )
    if done.returncode != 0 or "Traceback" in done.stderr:
        sys.exit(f"FAILED: newsletter {' '.join(args)}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def commands(group: object, prefix: list[str]) -> list[list[str]]:
    found = [prefix]
    for name, sub in getattr(group, "commands", {}).items():
        found += commands(sub, [*prefix, name])
    return found


every = commands(typer.main.get_command(app), [])
for path in every:
    run(*path, "--help")
print(f"--help: {len(every)} commands")

work = Path(tempfile.mkdtemp(prefix="newsletter-smoke-"))
for name in ("issues", "templates"):
    shutil.copytree(checkout / name, work / name)
for name in ("segments.yaml", "sample-subscribers.csv"):
    shutil.copy(checkout / name, work / name)
os.chdir(work)
env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
env["NEWSLETTER_SECRET_KEY"] = KEY

print(run("validate", "issues/2021-05.yaml", env=env).strip())
run("build", "issues/2021-05.yaml", env=env)
assert (work / "build" / "2021-05" / "index.html").stat().st_size > 10_000
run("subscribers", "import", "sample-subscribers.csv", env=env)
print(run("send", "issues/2021-05.yaml", "--live", "--yes", env=env).strip().splitlines()[-1])
sent = list((work / "outbox" / "2021-05").glob("*.eml"))
assert len(sent) >= 10, sent
run("check", "issues/2021-05.yaml", "--strict", env=env)

# A new project from the wheel alone: init, then a build with the packaged theme too.
fresh = Path(tempfile.mkdtemp(prefix="newsletter-init-"))
bare = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
os.chdir(fresh)
run("init", "project", "--name", "Smoke Bulletin", env=bare)
os.chdir(fresh / "project")
[starter] = Path("issues").glob("*.yaml")
run("check", str(starter), env=bare)
shutil.rmtree("templates")  # the theme inside the package takes over
run("build", str(starter), env=bare)
print(f"init and a build with the packaged theme: {starter}")
os.chdir(work)

with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
base = f"http://127.0.0.1:{port}"
env["NEWSLETTER_BASE_URL"] = base
server = subprocess.Popen(
    [str(script), "serve", "--port", str(port)],
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
)
try:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/signup", timeout=2).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"FAILED: serve did not start\n{server.communicate()[1]}")
            time.sleep(0.1)
    pages = [
        "/signup",
        "/unsubscribe",
        "/preferences",
        "/archive/",
        "/archive/2021-05/",
        "/archive/feed.xml",
        "/archive/2021-05/es/",
        "/archive/feed/es.xml",
        "/signup?lang=es",
        *(f"/media/{image.name}" for image in sorted((work / "media").glob("*.jpg"))[:1]),
        f"/unsubscribe/{tokens.sign(KEY, 1, tokens.campaign_scope(1))}",
        f"/preferences/{tokens.sign(KEY, 1, tokens.PREFERENCES)}",
        f"/preferences/{tokens.sign(KEY, 1, tokens.PREFERENCES)}/data",
        f"/confirm/{tokens.sign(KEY, 1, tokens.confirm_scope('bulletin'))}",
    ]
    for page in pages:
        try:
            with urllib.request.urlopen(base + page, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        if page == "/signup?lang=es":
            with urllib.request.urlopen(base + page, timeout=10) as response:
                assert "Suscríbase" in response.read().decode(), "the Spanish words are missing"
        shown = page.split(".")[0][:40]
        if status != 200:
            sys.exit(f"FAILED: GET {shown} answered {status}")
        print(f"GET {shown}: 200")
finally:
    server.terminate()
    server.wait(timeout=10)
shutil.rmtree(work)
print("smoke test of the installed wheel: ok")
