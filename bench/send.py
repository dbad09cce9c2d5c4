"""Benchmark: sending a personalised campaign over SMTP on loopback.

Two servers, each client in a fresh process so that its peak RSS is its own:

--mta aiosmtpd (default): an aiosmtpd sink in its own process, accepting and discarding.
  * ceiling: a minimal client that pipelines MAIL/RCPT/DATA and writes one pre-serialised
    message over 4 connections;
  * naive: sequential smtplib, building every message with EmailMessage;
  * aiosmtplib: 4 pooled connections sending pre-built bytes (the alternative to threads);
  * newsletter: a real live campaign (SQLite ledger, per-recipient splicing, 4 connections).

--mta postfix: Debian's Postfix as a private instance on a loopback port (its own
configuration, queue and log; it queues every message to disk, then discards it; the
deliveries in its log are counted). Needs postfix installed and root.
  * ceiling: the raw pipelining client, each copy to its own recipient as in a campaign;
  * newsletter, DKIM off, and newsletter, DKIM on: RSA-2048 (the target), and Ed25519;
    these four each at 4, 8 and 16 connections, in turns, in three rounds; in each round
    each family's best counts, and the median of the rounds' ratios is the figure (the
    best of all rounds is printed too). The project's clock runs from the editor's
    confirmation (the campaign made, then sent): the plan before it is printed apart, as
    the ceiling's message is built before its clock;
  * naive: sequential smtplib with EmailMessage;
  * mailmerge 2.3 from PyPI (installed into bench/.cache), a connection per message;
  * the ceiling with every copy to one address (16 connections), for reference.

Prints messages per second, peak RSS and the ratios measured in the same run.

Run: .venv/bin/python bench/send.py [--count 10000] [--mta postfix]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "issues" / "2021-05.yaml"
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "4"))


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's own peak (VmHWM): ru_maxrss would count the size of the bench process
    at the moment it started this one."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # it has just ended
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sink(port: int) -> None:
    from aiosmtpd.controller import Controller

    class Discard:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            return "250 OK"

    controller = Controller(Discard(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def sample_bytes() -> bytes:
    from newsletter.issue import load_issue
    from newsletter.render import render_issue
    from newsletter.sending.message import Addressee, MessageTemplate, address
    from newsletter.settings import Settings

    settings = Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]
    rendered = render_issue(load_issue(SAMPLE), settings)
    template = MessageTemplate(
        rendered,
        sender=address(settings.from_address, settings.from_name),
        subject=rendered.subject,
        list_id="<bulletin.example.org>",
        campaign="bench",
        view_online_url="https://newsletter.example.org/archive/2021-05/",
    )
    return template.build(
        Addressee(
            1,
            "reader@example.com",
            "Reader",
            "<b.1@example.org>",
            "https://newsletter.example.org/unsubscribe/t",
            "mailto:u@example.org",
        )
    )


def build_costs() -> tuple[float, float]:
    """Microseconds to produce one recipient's bytes: splicing vs EmailMessage."""
    from newsletter.issue import load_issue
    from newsletter.render import PersonalValues, render_issue
    from newsletter.sending.message import Addressee, MessageTemplate, address, build_message
    from newsletter.settings import Settings

    settings = Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]
    rendered = render_issue(load_issue(SAMPLE), settings)
    sender = address(settings.from_address, settings.from_name)
    template = MessageTemplate(
        rendered,
        sender=sender,
        subject=rendered.subject,
        list_id="<bulletin.example.org>",
        campaign="bench",
        view_online_url="https://newsletter.example.org/archive/2021-05/",
    )
    n = 300
    start = time.perf_counter()
    for i in range(n):
        template.build(
            Addressee(
                i,
                f"r{i}@example.com",
                f"Reader {i}",
                f"<b.{i}@example.org>",
                f"https://newsletter.example.org/unsubscribe/{i}",
                "mailto:u@example.org",
            )
        )
    fast = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for i in range(n):
        body = rendered.personalize(
            PersonalValues(
                email=f"r{i}@example.com",
                name=f"Reader {i}",
                unsubscribe_url=f"https://newsletter.example.org/unsubscribe/{i}",
                view_online_url="https://newsletter.example.org/archive/2021-05/",
            )
        )
        build_message(
            sender=sender,
            to=address(f"r{i}@example.com", f"Reader {i}"),
            subject=rendered.subject,
            body=body,
            message_id=f"<b.{i}@example.org>",
            date=dt.datetime.now(dt.UTC),
        )
    slow = (time.perf_counter() - start) / n * 1e6
    return fast, slow


def ceiling(
    port: int, count: int, connections: int = CONNECTIONS, *, one_recipient: bool = False
) -> dict[str, float]:
    """The raw pipelining client: one pre-serialised message, MAIL, RCPT and DATA in one
    write. Each copy goes to a recipient of its own, as in a campaign (a server does
    more for each new recipient); one_recipient: all to one address, as measured before."""
    from newsletter.sending.transport import dot_stuff

    data = dot_stuff(sample_bytes())
    per = [count // connections + (1 if i < count % connections else 0) for i in range(connections)]
    errors: list[BaseException] = []

    def envelope(i: int) -> bytes:
        rcpt = "reader" if one_recipient else f"reader{i}"
        return f"MAIL FROM:<news@example.org>\r\nRCPT TO:<{rcpt}@example.com>\r\nDATA\r\n".encode()

    def client(first: int, n: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            f = s.makefile("rb")

            def reply() -> int:
                while True:
                    line = f.readline()
                    if line[3:4] != b"-":
                        return int(line[:3])

            reply()
            s.sendall(b"EHLO bench\r\n")
            reply()
            for i in range(first, first + n):
                s.sendall(envelope(i))
                assert (reply(), reply(), reply()) == (250, 250, 354)
                s.sendall(data)
                assert reply() == 250
            s.sendall(b"QUIT\r\n")

    def guarded(first: int, n: int) -> None:
        try:
            client(first, n)
        except BaseException as exc:
            errors.append(exc)

    start = time.perf_counter()
    firsts = [sum(per[:k]) for k in range(connections)]
    threads = [
        threading.Thread(target=guarded, args=(f, n)) for f, n in zip(firsts, per, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return {"seconds": time.perf_counter() - start, "sent": count, "rss": peak_rss_mb()}


def ceiling_one(port: int, count: int) -> dict[str, float]:
    return ceiling(port, count, one_recipient=True)


MAILMERGE = ROOT / "bench" / ".cache" / "mailmerge"


def with_mailmerge(port: int, count: int) -> dict[str, float]:
    """mailmerge 2.3 (PyPI), the same message as a template, a connection per message."""
    if not (MAILMERGE / "bin" / "mailmerge").exists():
        subprocess.run([sys.executable, "-m", "venv", str(MAILMERGE)], check=True)
        subprocess.run(
            [str(MAILMERGE / "bin" / "pip"), "install", "-q", "mailmerge==2.3.0"], check=True
        )
    from newsletter.issue import load_issue
    from newsletter.render import render_issue
    from newsletter.settings import Settings

    settings = Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]
    rendered = render_issue(load_issue(SAMPLE), settings)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "server.conf").write_text(
        f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nsecurity = Never\nratelimit = 0\n"
    )
    boundary = "bench-boundary"
    # Placeholders become the template's own Jinja fields; the rest of the HTML is text.
    html = "{% raw %}" + rendered.html + "{% endraw %}"
    (tmp / "template.txt").write_text(
        "TO: {{email}}\nSUBJECT: " + rendered.subject + "\nFROM: News <news@example.org>\n"
        f'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="{boundary}"\n\n'
        f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\nHello {{{{name}}}},\n"
        + "{% raw %}"
        + rendered.text
        + "{% endraw %}"
        + f"\n--{boundary}\nContent-Type: text/html; charset=utf-8\n\n"
        + html
        + f"\n--{boundary}--\n"
    )
    (tmp / "database.csv").write_text(
        "email,name\n" + "".join(f"reader{i}@example.com,Reader {i}\n" for i in range(count))
    )
    start = time.perf_counter()
    mailmerge = subprocess.Popen(
        [
            str(MAILMERGE / "bin" / "mailmerge"),
            "--template",
            str(tmp / "template.txt"),
            "--database",
            str(tmp / "database.csv"),
            "--config",
            str(tmp / "server.conf"),
            "--no-dry-run",
            "--no-limit",
            "--output-format",
            "raw",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp,
    )
    # Its own high-water mark, read while it runs (it only grows).
    rss = 0.0
    while mailmerge.poll() is None:
        rss = max(rss, peak_rss_mb(mailmerge.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if mailmerge.returncode != 0:
        raise RuntimeError(mailmerge.stderr.read()[-2000:] if mailmerge.stderr else "")
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "seconds": seconds,
        "sent": count,
        "rss": rss,
        "child_cpu": used.ru_utime + used.ru_stime,
    }


def naive(port: int, count: int) -> dict[str, float]:
    import smtplib

    from newsletter.issue import load_issue
    from newsletter.render import PersonalValues, render_issue
    from newsletter.sending.message import address, build_message
    from newsletter.settings import Settings

    settings = Settings(templates_dir=ROOT / "templates", _env_file=None)  # type: ignore[call-arg]
    rendered = render_issue(load_issue(SAMPLE), settings)
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(count):
            email = f"reader{i}@example.com"
            body = rendered.personalize(
                PersonalValues(
                    email=email,
                    name=f"Reader {i}",
                    unsubscribe_url=f"https://newsletter.example.org/unsubscribe/{i}",
                    view_online_url="https://newsletter.example.org/archive/2021-05/",
                )
            )
            message = build_message(
                sender=address(settings.from_address, settings.from_name),
                to=address(email, f"Reader {i}"),
                subject=rendered.subject,
                body=body,
                message_id=f"<n.{i}@example.org>",
                date=dt.datetime.now(dt.UTC),
            )
            smtp.sendmail(settings.from_address, [email], message)
    return {"seconds": time.perf_counter() - start, "sent": count, "rss": peak_rss_mb()}


def with_aiosmtplib(port: int, count: int) -> dict[str, float]:
    import aiosmtplib

    data = sample_bytes()

    async def run() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(i)

        async def worker() -> None:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=False, start_tls=False)
            await smtp.connect()
            while not queue.empty():
                i = queue.get_nowait()
                await smtp.sendmail("news@example.org", [f"reader{i}@example.com"], data)
            await smtp.quit()

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))

    start = time.perf_counter()
    asyncio.run(run())
    return {"seconds": time.perf_counter() - start, "sent": count, "rss": peak_rss_mb()}


def newsletter_dkim(port: int, count: int, kind: str = "rsa") -> dict[str, float]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    path = Path(tempfile.mkdtemp()) / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.environ.update(
        NEWSLETTER_DKIM_DOMAIN="example.org",
        NEWSLETTER_DKIM_SELECTOR="bench",
        NEWSLETTER_DKIM_KEY_FILE=str(path),
    )
    return newsletter(port, count)


def publish_media(folder: Path) -> str:
    """Serve folder over HTTP on loopback, as the web service would publish the issue's
    images (a live send checks that they answer); the address of its media/."""
    import functools
    import http.server

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/media"


def newsletter(port: int, count: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(dir=os.environ.get("BENCH_TMP")))
    people = tmp / "people.csv"
    people.write_text(
        "email,name\n" + "".join(f"reader{i}@example.com,Reader {i}\n" for i in range(count))
    )
    os.environ.update(
        NEWSLETTER_DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
        NEWSLETTER_SECRET_KEY="bench-key",
        NEWSLETTER_TEMPLATES_DIR=str(ROOT / "templates"),
        NEWSLETTER_SEGMENTS_FILE=str(ROOT / "segments.yaml"),
        NEWSLETTER_SMTP_HOST="127.0.0.1",
        NEWSLETTER_SMTP_PORT=str(port),
        NEWSLETTER_SMTP_SECURITY="none",
        NEWSLETTER_SMTP_CONNECTIONS=str(CONNECTIONS),
        NEWSLETTER_MEDIA_DIR=str(tmp / "site" / "media"),
        NEWSLETTER_MEDIA_URL=publish_media(tmp / "site"),
    )
    from newsletter.services import campaigns, subscribers
    from newsletter.settings import load_settings

    settings = load_settings()
    subscribers.import_file(settings, people, list_name="bulletin")
    # The plan (render, image check, counts) is what the editor reads before confirming;
    # the clock runs from the confirmation: the campaign made, then sent. Like the
    # ceiling's, whose message is built before its clock starts.
    start = time.perf_counter()
    plan = campaigns.plan(SAMPLE, settings)
    confirmed, cpu = time.perf_counter(), time.process_time()
    _, summary = campaigns.send(plan, settings)
    seconds = time.perf_counter() - confirmed
    assert summary.sent == count, summary
    return {
        "seconds": seconds,
        "sent": summary.sent,
        "rss": peak_rss_mb(),
        "plan": confirmed - start,
        "cpu_seconds": time.process_time() - cpu,
    }


CLIENTS = {
    "ceiling": ceiling,
    "ceiling-one": ceiling_one,
    "naive": naive,
    "aiosmtplib": with_aiosmtplib,
    "mailmerge": with_mailmerge,
    "newsletter": newsletter,
    "newsletter-dkim": newsletter_dkim,
    "newsletter-ed25519": lambda port, count: newsletter_dkim(port, count, "ed25519"),
}
SINK_CLIENTS = ["ceiling", "naive", "aiosmtplib", "newsletter", "newsletter-dkim"]
# Each family at 4, 8 and 16 connections, taken in turns so that a drift of the machine
# touches them alike, in three rounds (a run on this machine varies by some 10%); then the
# slow baselines and the one-address ceiling (16).
POOLS = (4, 8, 16)
FAMILIES = ("ceiling", "newsletter", "newsletter-dkim", "newsletter-ed25519")
ROUNDS = 3
POSTFIX_RUNS = [
    (turn, name, pool) for turn in range(ROUNDS) for pool in POOLS for name in FAMILIES
] + [
    (0, "naive", 1),
    (0, "mailmerge", 1),
    (0, "ceiling-one", 16),
]


def run_client(
    name: str, port: int, count: int, connections: int = CONNECTIONS
) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--client", name, "--port", str(port), "--count", str(count)],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ | {"BENCH_CONNECTIONS": str(connections)},
    )
    return dict(json.loads(out.stdout))


def postfix_mode(count: int, slow_count: int) -> None:
    from tests.mta import PrivatePostfix, available

    if not available():
        sys.exit("--mta postfix needs Debian's postfix (apt-get install postfix) and root")
    port = free_port()
    size = len(sample_bytes())
    folder = ROOT / "bench" / ".cache" / "postfix"
    print(
        f"{count:,} messages of {size / 1024:.0f} KB (the slow baselines {slow_count:,}) to a "
        "private Postfix on 127.0.0.1 that queues to disk, then discards"
    )
    measured: dict[tuple[int, str, int], float] = {}
    with PrivatePostfix(folder, port) as postfix:
        for turn, name, pool in POSTFIX_RUNS:
            n = slow_count if name in ("naive", "mailmerge") else count
            before = postfix.delivered()
            r = run_client(name, port, n, pool)
            delivered = postfix.wait_delivered(before + n) - before
            assert delivered == n, (name, delivered, n)
            rate = measured[turn, name, pool] = r["sent"] / r["seconds"]
            cpu = f"{r['cpu_ms']:.2f} ms" if "cpu_ms" in r else "-"
            plan = f", the plan {r['plan']:.2f} s before" if "plan" in r else ""
            print(
                f"  {name:<18} {pool:>2} conn. {rate:6.0f} msg/s   peak RSS "
                f"{r['rss']:4.0f} MB   client CPU per message {cpu:>8}   ({n:,} in "
                f"{r['seconds']:.1f} s{plan}, {delivered:,} delivered)"
            )
    # Each round's families are measured minutes apart, as the machine then runs: their
    # ratios are the figures, and the median of the rounds is the headline. The best of
    # all rounds would compare each family at its own luckiest moment; it is printed too.
    ratios: dict[str, list[float]] = {"ceiling": [], "dkim": [], "ed25519": []}
    for turn in range(ROUNDS):
        got = {f: max(measured[turn, f, p] for p in POOLS) for f in FAMILIES}
        ratios["ceiling"].append(got["newsletter"] / got["ceiling"])
        ratios["dkim"].append(got["newsletter-dkim"] / got["newsletter"])
        ratios["ed25519"].append(got["newsletter-ed25519"] / got["newsletter"])
        print(
            f"round {turn + 1}, best of 4/8/16 connections: ceiling {got['ceiling']:.0f}, "
            f"newsletter {got['newsletter']:.0f}, with DKIM {got['newsletter-dkim']:.0f} "
            f"(Ed25519 {got['newsletter-ed25519']:.0f}) msg/s; newsletter / ceiling = "
            f"{ratios['ceiling'][-1]:.2f}, DKIM on / off = {ratios['dkim'][-1]:.2f} "
            f"(Ed25519 {ratios['ed25519'][-1]:.2f})"
        )
    best = {f: max(measured[t, f, p] for t in range(ROUNDS) for p in POOLS) for f in FAMILIES}
    print(
        f"best of all {ROUNDS} rounds: ceiling {best['ceiling']:.0f}, newsletter "
        f"{best['newsletter']:.0f}, with DKIM {best['newsletter-dkim']:.0f} msg/s; "
        f"newsletter / ceiling = {best['newsletter'] / best['ceiling']:.2f}, DKIM on / off = "
        f"{best['newsletter-dkim'] / best['newsletter']:.2f}"
    )
    project = statistics.median(
        max(measured[t, "newsletter", p] for p in POOLS) for t in range(ROUNDS)
    )
    print(
        f"ratios, the median of the {ROUNDS} rounds: newsletter / ceiling = "
        f"{statistics.median(ratios['ceiling']):.2f} (target 0.75), DKIM on / off = "
        f"{statistics.median(ratios['dkim']):.2f} (target 0.8; Ed25519 "
        f"{statistics.median(ratios['ed25519']):.2f}); the newsletter's median {project:.0f} "
        f"msg/s against mailmerge: {project / measured[0, 'mailmerge', 1]:.1f}x (target 13x), "
        f"against naive: {project / measured[0, 'naive', 1]:.1f}x, against a ceiling sending "
        f"every copy to one address: {project / measured[0, 'ceiling-one', 16]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--naive-count", type=int, default=None, help="default: --count")
    parser.add_argument("--mta", choices=["aiosmtpd", "postfix"], default="aiosmtpd")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink(args.sink)
        return
    if args.client:
        started = time.process_time()
        result = CLIENTS[args.client](args.port, args.count)
        # The client's own figure where it has one (the project's, from the confirmation);
        # mailmerge's child process counted in.
        cpu = result.pop("cpu_seconds", time.process_time() - started)
        cpu += result.pop("child_cpu", 0.0)
        result["cpu_ms"] = cpu * 1000 / args.count
        print(json.dumps(result))
        return
    if args.mta == "postfix":
        postfix_mode(args.count, args.naive_count or min(args.count, 1000))
        return

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--sink", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        size = len(sample_bytes())
        print(
            f"{args.count:,} messages of {size / 1024:.0f} KB to an aiosmtpd sink in its own "
            f"process, {CONNECTIONS} connections where pooled"
        )
        fast, slow = build_costs()
        print(
            f"  building one recipient's bytes: {fast:.0f} µs spliced, {slow:.0f} µs with "
            f"EmailMessage ({slow / fast:.0f}x)"
        )
        results = {}
        for name in SINK_CLIENTS:
            count = args.naive_count or args.count if name == "naive" else args.count
            r = run_client(name, port, count)
            results[name] = r["sent"] / r["seconds"]
            print(
                f"  {name:<15} {results[name]:7.0f} msg/s   peak RSS {r['rss']:5.0f} MB   "
                f"({r['sent']:,} in {r['seconds']:.1f} s)"
            )
        print(
            f"ratios: newsletter / ceiling = {results['newsletter'] / results['ceiling']:.2f}, "
            f"newsletter / naive = {results['newsletter'] / results['naive']:.1f}x, "
            f"aiosmtplib / ceiling = {results['aiosmtplib'] / results['ceiling']:.2f}, "
            f"DKIM on / off = {results['newsletter-dkim'] / results['newsletter']:.2f}"
        )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
