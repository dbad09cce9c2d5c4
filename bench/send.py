"""Benchmark: sending a personalised campaign to a loopback SMTP sink.

The sink (aiosmtpd, accepting and discarding) runs in its own process. In one run this
measures, each client in a fresh process so that its peak RSS is its own:
  * ceiling: a minimal client that pipelines MAIL/RCPT/DATA and writes one pre-serialised
    message over 4 connections;
  * naive: sequential smtplib, building every message with EmailMessage;
  * aiosmtplib: 4 pooled connections sending pre-built bytes (the alternative to threads);
  * newsletter: a real live campaign (SQLite ledger, per-recipient splicing, 4 threaded
    smtplib connections);
and prints messages per second, peak RSS and the ratios.

Run: .venv/bin/python bench/send.py [--count 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "issues" / "2021-05.yaml"
CONNECTIONS = 4


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def ceiling(port: int, count: int) -> dict[str, float]:
    from newsletter.sending.transport import dot_stuff

    data = dot_stuff(sample_bytes())
    per = [count // CONNECTIONS + (1 if i < count % CONNECTIONS else 0) for i in range(CONNECTIONS)]

    def client(n: int) -> None:
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
            envelope = b"MAIL FROM:<news@example.org>\r\nRCPT TO:<reader@example.com>\r\nDATA\r\n"
            for _ in range(n):
                s.sendall(envelope)
                assert (reply(), reply(), reply()) == (250, 250, 354)
                s.sendall(data)
                assert reply() == 250
            s.sendall(b"QUIT\r\n")

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in per]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seconds": time.perf_counter() - start, "sent": count, "rss": peak_rss_mb()}


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
    )
    from newsletter.services import campaigns, subscribers
    from newsletter.settings import load_settings

    settings = load_settings()
    subscribers.import_file(settings, people, list_name="bulletin")
    start = time.perf_counter()
    plan = campaigns.plan(SAMPLE, settings)
    _, summary = campaigns.send(plan, settings)
    seconds = time.perf_counter() - start
    assert summary.sent == count, summary
    return {"seconds": seconds, "sent": summary.sent, "rss": peak_rss_mb()}


CLIENTS = {
    "ceiling": ceiling,
    "naive": naive,
    "aiosmtplib": with_aiosmtplib,
    "newsletter": newsletter,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--naive-count", type=int, default=None, help="default: --count")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink(args.sink)
        return
    if args.client:
        print(json.dumps(CLIENTS[args.client](args.port, args.count)))
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
        for name in CLIENTS:
            count = args.naive_count or args.count if name == "naive" else args.count
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--client",
                    name,
                    "--port",
                    str(port),
                    "--count",
                    str(count),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(out.stdout)
            results[name] = r["sent"] / r["seconds"]
            print(
                f"  {name:<11} {results[name]:7.0f} msg/s   peak RSS {r['rss']:5.0f} MB   "
                f"({r['sent']:,} in {r['seconds']:.1f} s)"
            )
        print(
            f"ratios: newsletter / ceiling = {results['newsletter'] / results['ceiling']:.2f}, "
            f"newsletter / naive = {results['newsletter'] / results['naive']:.1f}x, "
            f"aiosmtplib / ceiling = {results['aiosmtplib'] / results['ceiling']:.2f}"
        )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
