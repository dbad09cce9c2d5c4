"""Running a send: a full pipe from the ledger to the relay and back.

    ledger --claim (lease)--> queue --couriers, one connection each--> relay
    ledger <--record (a commit every ~50 ms)-- outcomes

The main thread keeps a bounded queue of claimed rows: it claims more when half of it has
drained, never in lockstep batches, so connections never wait for a batch to be recorded.
Outcomes are written as they arrive, grouped into short commits. A claimed row that was
never started is no risk: it is simply due again. After a crash, only messages whose 250
had arrived but whose commit had not can go out twice: at most the messages on the wire
(one a connection) plus the AWAITING outcomes a commit may hold, each with the same
Message-ID. Only the main thread touches the database; it also renews the leases.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import queue
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from newsletter import tokens
from newsletter.audience.addresses import ascii_address
from newsletter.audience.segments import NamedSegment
from newsletter.errors import NewsletterError
from newsletter.render import RenderedIssue
from newsletter.sending import ledger
from newsletter.sending.message import (
    Addressee,
    Built,
    MessageTemplate,
    campaign_template,
    unsubscribe_mailto,
)
from newsletter.sending.ratelimit import RateLimiter
from newsletter.sending.transport import Outcome, SendAborted, Transport
from newsletter.settings import Settings

# Outcomes are written at least this often while messages flow (seconds), and sooner
# when half of AWAITING have arrived. No message starts while AWAITING outcomes wait for
# their commit: a kill leaves at most the connections' messages plus these unrecorded.
COMMIT_INTERVAL = 0.05
AWAITING = 64
# A database locked by another writer is waited for this long before the run gives up.
LOCKED_PATIENCE = 120.0


def claim_size(settings: Settings) -> int:
    """Rows claimed ahead: about a second of sending at the set rate, 200 at most, and
    enough to keep every connection busy while outcomes are recorded. Fewer, larger
    claims cost the database less; rows claimed but not started go back when a run
    stops, and are due again when it dies."""
    floor = settings.smtp_connections * 4 if settings.smtp_host else 8
    if settings.smtp_rate <= 0:
        return 200
    return max(floor, min(200, int(settings.smtp_rate)))


def _host() -> str:
    return socket.gethostname()[:60]


def sender_name() -> str:
    """Who holds a lease: this machine and process, and a nonce for this run."""
    return f"{_host()}:{os.getpid()}:{secrets.token_hex(4)}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


@dataclass
class Summary:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    resent: int = 0
    paused: str | None = None
    interrupted: bool = False
    next_attempt: dt.datetime | None = None
    outcomes: list[tuple[str, Outcome]] = field(default_factory=list)

    def line(self) -> str:
        text = (
            f"{self.sent} sent, {self.deferred} deferred, {self.failed} failed, "
            f"{self.skipped} skipped"
        )
        if self.resent:
            text += (
                f" ({self.resent} sent again after an interrupted run, with the same Message-ID)"
            )
        return text


@dataclass(frozen=True)
class Plan:
    """What a live send will do, shown to the editor before they confirm."""

    issue_path: str
    rendered: RenderedIssue
    segment: NamedSegment
    recipients: int
    campaign: ledger.Campaign | None
    remaining: dict[str, int] | None
    transport: str
    # The email's images, and those that did not answer at their address (a send to the
    # outbox goes ahead with a warning; a send over SMTP is refused).
    images: int = 0
    unreachable: tuple[str, ...] = ()
    # Every edition by language (the source's first), and how many recipients get each.
    editions: dict[str, RenderedIssue] = field(default_factory=dict)
    per_edition: dict[str, int] = field(default_factory=dict)
    content_hash: str = ""
    source_hash: str = ""  # of what the editor wrote (see services.campaigns)
    # With --new-campaign: how many recipients received the issue in an earlier campaign.
    already: int = 0


def transport_name(settings: Settings) -> str:
    if settings.smtp_host:
        return f"SMTP {settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security})"
    return f"the outbox folder {settings.outbox_dir}/ (no NEWSLETTER_SMTP_HOST set)"


class Ready(NamedTuple):
    """A message ready to go: the recipient as the envelope carries it, the bytes, and
    their fingerprint (message.record_digest)."""

    wire: str
    message: bytes
    digest: str


def prepare(recipient: str, build: Callable[[], Built]) -> Ready | Outcome:
    """One message, ready to go, or the outcome that it cannot be sent (a failure of that
    recipient's, never the run's). build is a MessageTemplate's, whose messages need no
    dot-stuffing."""
    wire = ascii_address(recipient)
    if wire is None:
        return Outcome("failed", None, "the address needs SMTPUTF8, which is not supported")
    try:
        built = build()
    except (ValueError, NewsletterError) as exc:
        return Outcome("failed", None, f"this message could not be built: {exc}")
    return Ready(wire, built.message, built.digest)


def deliver(
    transport: Transport,
    sender: str,
    recipient: str,
    build: Callable[[], Built],
    key: str,
    *,
    prepared: Ready | Outcome | None = None,
    then: Callable[[], None] | None = None,
) -> tuple[Outcome, str | None]:
    """Build (unless prepared) and send one message: (outcome, the fingerprint of the bytes sent).
    then runs while the server's verdict on the message is awaited. Whatever goes wrong
    with one recipient is that recipient's outcome, never the run's."""
    ready = prepare(recipient, build) if prepared is None else prepared
    if isinstance(ready, Outcome):
        return ready, None
    try:
        outcome = transport.send(
            sender, ready.wire, ready.message, key=key, transparent=True, then=then
        )
        return outcome, ready.digest
    except SendAborted:
        raise
    except Exception as exc:  # one recipient's problem is never the run's
        failed = Outcome("failed", None, f"could not be sent: {type(exc).__name__}: {exc}")
        return failed, ready.digest


class Pool:
    """Sending threads around one transport, paced by one rate limiter (test sends)."""

    def __init__(self, transport: Transport, settings: Settings) -> None:
        self.transport = transport
        self.limiter = RateLimiter(settings.smtp_rate, settings.smtp_hourly_limit)
        self.stop = threading.Event()
        self.jobs: queue.Queue[tuple[Callable[[], Built], str, str, str, queue.Queue[Any]] | None]
        self.jobs = queue.Queue()
        count = settings.smtp_connections if settings.smtp_host else 1
        self.threads = [
            threading.Thread(target=self._work, name=f"smtp-{n}", daemon=True) for n in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            build, sender, recipient, key, answer = job
            if self.stop.is_set() or not self.limiter.acquire(self.stop):
                answer.put(None)  # never started
                continue
            try:
                answer.put(deliver(self.transport, sender, recipient, build, key))
            except BaseException as exc:  # SendAborted: the caller raises it
                answer.put(exc)

    def submit(
        self, build: Callable[[], Built], sender: str, recipient: str, key: str
    ) -> queue.Queue[Any]:
        """Send build()'s message from the envelope sender to recipient; the answer
        queue gets (outcome, hash), None if it never started, or an exception."""
        answer: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.jobs.put((build, sender, recipient, key, answer))
        return answer

    def close(self) -> None:
        self.stop.set()
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()
        self.transport.close()


class Stop:
    """How a run is asked to end. The first request (Ctrl-C, SIGTERM, a pause) stops
    claiming: messages on the wire finish and are recorded, the rest wait for the next
    run. A second Ctrl-C cuts the connections: what was on the wire is recorded as
    deferred. The ledger is never written half: the signal only sets flags."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.hurry = threading.Event()

    def request(self) -> None:
        if self.requested.is_set():
            self.hurry.set()
        self.requested.set()


@dataclass
class _Job:
    claim: ledger.Claim
    build: Callable[[], Built]
    sender: str  # the envelope sender: this delivery's return path
    key: str


class _Couriers:
    """One thread per connection: take a claimed row, wait for the rate limiter, build,
    send, hand back the outcome. While the server takes a message in (its queue file, an
    fsync), the next row is taken and built: building is off the connection's path."""

    def __init__(self, transport: Transport, settings: Settings, stop: Stop) -> None:
        self.transport = transport
        self.stop = stop
        # Set when this run ends, whatever the reason: queued rows are not started.
        self.halt = threading.Event()
        self.limiter = RateLimiter(settings.smtp_rate, settings.smtp_hourly_limit)
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.results: queue.Queue[ledger.Result | BaseException] = queue.Queue()
        count = settings.smtp_connections if settings.smtp_host else 1
        # A message holds a slot from its start until its outcome is recorded.
        self.slots = threading.Semaphore(count + AWAITING)
        self.arrived = threading.Event()  # half of AWAITING wait: record them now
        self.threads = [
            threading.Thread(target=self._work, name=f"courier-{n}", daemon=True)
            for n in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        # The next row, built while the server took the last message in.
        ahead: list[tuple[_Job, Ready | Outcome | Exception]] = []

        def build_next() -> None:  # never raises: it runs inside the transport's send
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if job is None:  # the end: left for the loop below
                self.jobs.put(None)
                return
            try:
                ahead.append((job, prepare(job.claim.email, job.build)))
            except Exception as exc:  # raised in its turn, as if built then
                ahead.append((job, exc))

        while True:
            prepared: Ready | Outcome | Exception | None = None
            if ahead:
                job, prepared = ahead.pop()
            elif (next_job := self.jobs.get()) is not None:
                job = next_job
            else:
                break
            if not self._may_start():
                self.results.put(ledger.Result(job.claim, None))  # built or not: unsent
                continue
            if isinstance(prepared, Exception):
                self.results.put(prepared)
                continue
            try:
                outcome, digest = deliver(
                    self.transport,
                    job.sender,
                    job.claim.email,
                    job.build,
                    job.key,
                    prepared=prepared,
                    then=build_next,
                )
            except BaseException as exc:
                self.results.put(exc)
                continue
            self.results.put(ledger.Result(job.claim, outcome, digest))
            if self.results.qsize() >= AWAITING // 2:
                self.arrived.set()

    def _may_start(self) -> bool:
        """Wait for the rate limiter and a slot; False when the run ends meanwhile."""
        if self.stop.requested.is_set() or self.halt.is_set():
            return False
        if not self.limiter.acquire(self.stop.requested):
            return False
        while not self.slots.acquire(timeout=0.1):
            if self.stop.requested.is_set() or self.halt.is_set():
                return False
        return True

    def recorded(self, count: int) -> None:
        """count outcomes were committed: their slots are free."""
        self.slots.release(count)

    def close(self) -> None:
        self.halt.set()
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()


def _patiently(action: Callable[[], Any], what: str) -> Any:
    """Run a ledger write, waiting out a database locked by another writer (each try
    already waits the busy timeout). Gives up with one clear line."""
    deadline = time.monotonic() + LOCKED_PATIENCE
    while True:
        try:
            return action()
        except sa.exc.OperationalError as exc:
            if time.monotonic() > deadline:
                raise NewsletterError(
                    f"the database stayed unavailable for {LOCKED_PATIENCE:.0f} s while "
                    f"{what} ({str(exc.orig).splitlines()[0]}); run the command again"
                ) from None
            time.sleep(0.5)


def run_campaign(
    engine: Engine,
    campaign: ledger.Campaign,
    editions: dict[str | None, RenderedIssue],
    segment: NamedSegment,
    settings: Settings,
    transport: Transport,
    *,
    stop: Stop | None = None,
    progress: Callable[[Summary], None] | None = None,
    owner: str | None = None,
) -> Summary:
    """Send the campaign's due rows until none is left (or the run is asked to stop),
    each in the edition its row names. The transport is open; it is closed here."""
    stop = stop or Stop()
    owner = owner or sender_name()
    lease = settings.smtp_lease
    key = tokens.signing_key(settings)
    prepared: dict[str | None, tuple[MessageTemplate, str]] = {}

    def edition(language: str | None) -> tuple[MessageTemplate, str]:
        """The message template of an edition, and the tag its Message-IDs carry."""
        if language not in prepared:
            rendered = editions.get(language) or editions[next(iter(editions))]
            template = campaign_template(
                rendered, settings, f"campaign-{campaign.id}", rendered.subject
            )
            # One edition: as before editions, so that a resumed older campaign keeps
            # its Message-IDs.
            seed = campaign.content_hash if len(editions) == 1 else rendered.content_hash
            ident = hashlib.sha256(f"{campaign.id}:{seed}".encode()).hexdigest()[:10]
            prepared[language] = template, ident
        return prepared[language]

    window = claim_size(settings)
    # To the microsecond: a row deferred during this run is due after this run started.
    started = dt.datetime.now(dt.UTC)
    summary = Summary()
    # Rows a dead process on this machine left in flight are due at once.
    _patiently(
        functools.partial(ledger.release_dead, engine, campaign.id, _host(), _alive),
        "looking for senders that died",
    )
    couriers = _Couriers(transport, settings, stop)
    outstanding = 0
    more = True
    in_a_row = 0
    renewed = time.monotonic()
    failure: BaseException | None = None
    asked = False
    try:
        while True:
            if stop.requested.is_set() or couriers.halt.is_set():
                more = False
            if stop.hurry.is_set():
                transport.abort()
            if more and outstanding <= window // 2:
                got = _patiently(
                    functools.partial(
                        ledger.claim,
                        engine,
                        campaign.id,
                        segment,
                        window - outstanding,
                        owner=owner,
                        lease=lease,
                        started=started,
                    ),
                    "claiming deliveries",
                )
                summary.skipped += got.skipped
                if got.stopped is not None:
                    summary.paused = summary.paused or f"the campaign is {got.stopped}"
                    more = False
                elif not got.claims and not got.skipped:
                    more = False
                for claim_ in got.claims:
                    summary.resent += claim_.resent
                    template, ident = edition(claim_.edition)
                    build = _builder(template, settings, key, campaign.id, ident, claim_)
                    name = f"c{campaign.id}.s{claim_.subscriber_id}"
                    sender = tokens.return_path(
                        settings, key, "c", campaign.id, claim_.subscriber_id
                    )
                    couriers.jobs.put(_Job(claim_, build, sender, name))
                    outstanding += 1
            if outstanding == 0 and not more:
                asked = stop.requested.is_set()
                break
            arrived: list[ledger.Result] = []
            # Wait, then take what arrived: waking for every outcome would cost a thread
            # switch (and a GIL hand-over) per message.
            if outstanding:
                couriers.arrived.wait(COMMIT_INTERVAL)
                couriers.arrived.clear()
            while outstanding:
                try:
                    item = couriers.results.get_nowait()
                except queue.Empty:
                    break
                outstanding -= 1
                if isinstance(item, BaseException):
                    failure = failure or item
                    couriers.halt.set()
                    continue
                arrived.append(item)
            if arrived:
                written = _patiently(
                    functools.partial(
                        ledger.record,
                        engine,
                        campaign.id,
                        arrived,
                        owner=owner,
                        max_attempts=settings.smtp_max_attempts,
                        retry_delay=settings.smtp_retry_delay,
                    ),
                    "recording what was sent",
                )
                couriers.recorded(sum(r.outcome is not None for r in arrived))
                for state in ("sent", "deferred", "failed"):
                    setattr(summary, state, getattr(summary, state) + written[state])
                for result in arrived:
                    if result.outcome is None:
                        continue
                    in_a_row = 0 if result.outcome.kind == "sent" else in_a_row + 1
                    if in_a_row >= settings.smtp_pause_after and summary.paused is None:
                        summary.paused = (
                            f"paused after {in_a_row} failures in a row; the last: {result.outcome}"
                        )
                        couriers.halt.set()  # rows not yet started wait for the next run
                        more = False
                if progress:
                    progress(summary)
            if time.monotonic() - renewed > lease / 3:
                _patiently(
                    functools.partial(ledger.renew, engine, campaign.id, owner, lease),
                    "renewing leases",
                )
                renewed = time.monotonic()
    finally:
        couriers.close()
        transport.close()
    if failure is not None:
        raise failure
    summary.interrupted = asked and summary.paused is None
    summary.next_attempt = ledger.next_attempt(engine, campaign.id)
    ledger.finish_if_done(engine, campaign.id)
    return summary


def stop_on_signals(stop: Stop, *signals: int) -> Callable[[], None]:
    """Route the given signals (SIGINT, SIGTERM) to stop.request; returns the undo. Only
    the main thread can own signals; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in signals}

    def handle(_signum: int, _frame: object) -> None:
        stop.request()

    for s in signals:
        signal.signal(s, handle)

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore


def _builder(
    template: MessageTemplate,
    settings: Settings,
    key: str,
    campaign_id: int,
    ident: str,
    claim_: ledger.Claim,
) -> Callable[[], Built]:
    def build() -> Built:
        token = tokens.sign(key, claim_.subscriber_id, tokens.campaign_scope(campaign_id))
        return template.build_recorded(
            Addressee(
                subscriber_id=claim_.subscriber_id,
                email=claim_.email,
                name=claim_.name,
                first_name=claim_.first_name,
                # The same for every attempt, so a duplicate after a crash is recognisable.
                message_id=f"<c{campaign_id}.s{claim_.subscriber_id}.{ident}@{settings.sender_domain()}>",
                unsubscribe_url=settings.public_url("unsubscribe", token),
                unsubscribe_mailto=unsubscribe_mailto(settings, token),
                preferences_url=settings.public_url(
                    "preferences", tokens.sign(key, claim_.subscriber_id, tokens.PREFERENCES)
                ),
            )
        )

    return build
