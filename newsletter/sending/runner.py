"""Running a send: the test send and the live campaign share the pool.

The main thread claims rows in batches (committed as `sending` before any DATA), hands
them to a pool of sending threads, one SMTP connection each, and writes their outcomes
back to the ledger batch by batch. Only the main thread touches the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from newsletter import tokens
from newsletter.audience.addresses import ascii_address
from newsletter.audience.segments import NamedSegment
from newsletter.errors import NewsletterError
from newsletter.render import RenderedIssue
from newsletter.sending import ledger
from newsletter.sending.message import (
    Addressee,
    MessageTemplate,
    campaign_template,
    unsubscribe_mailto,
)
from newsletter.sending.ratelimit import RateLimiter
from newsletter.sending.transport import Outcome, SendAborted, Transport
from newsletter.settings import Settings
from newsletter.store import utcnow


def batch_size(settings: Settings) -> int:
    """Rows claimed at a time: about a second of sending at the configured rate (200 at
    most), since a crash can leave a whole claimed batch to be sent again."""
    if settings.smtp_rate <= 0:
        return 200
    return max(settings.smtp_connections * 2, min(200, int(settings.smtp_rate)))


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


def transport_name(settings: Settings) -> str:
    if settings.smtp_host:
        return f"SMTP {settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security})"
    return f"the outbox folder {settings.outbox_dir}/ (no NEWSLETTER_SMTP_HOST set)"


class Pool:
    """Sending threads around one transport, paced by one rate limiter."""

    def __init__(self, transport: Transport, settings: Settings) -> None:
        self.transport = transport
        self.limiter = RateLimiter(settings.smtp_rate, settings.smtp_hourly_limit)
        self.stop = threading.Event()
        workers = settings.smtp_connections if settings.smtp_host else 1
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smtp")
        self.sender = settings.from_address

    def submit(
        self, build: Callable[[], bytes], recipient: str, key: str
    ) -> Future[Outcome | None]:
        def job() -> Outcome | None:
            if self.stop.is_set() or not self.limiter.acquire(self.stop):
                return None  # never started: the row goes back to pending
            wire = ascii_address(recipient)
            if wire is None:
                return Outcome("failed", None, "the address needs SMTPUTF8, which is not supported")
            try:
                message = build()
            except (ValueError, NewsletterError) as exc:
                # One recipient's data that no message can carry is that row's failure.
                return Outcome("failed", None, f"this message could not be built: {exc}")
            try:
                return self.transport.send(self.sender, wire, message, key=key)
            except SendAborted:
                raise
            except Exception as exc:  # one recipient's problem is never the run's
                return Outcome("failed", None, f"could not be sent: {type(exc).__name__}: {exc}")

        return self.executor.submit(job)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.transport.close()


def run_live(
    plan: Plan,
    settings: Settings,
    engine: Engine,
    transport: Transport,
    *,
    progress: Callable[[Summary], None] | None = None,
) -> tuple[ledger.Campaign, Summary]:
    """Create or resume the campaign and send until nothing is due."""
    key = tokens.signing_key(settings)
    campaign = plan.campaign or ledger.create_campaign(
        engine,
        issue=plan.rendered.slug,
        issue_path=plan.issue_path,
        content_hash=plan.rendered.content_hash,
        subject=plan.rendered.subject,
        named=plan.segment,
    )
    summary = Summary(resent=ledger.recover(engine, campaign.id))
    started = utcnow()
    label = f"campaign-{campaign.id}"
    template = campaign_template(plan.rendered, settings, label, plan.rendered.subject)
    ident = hashlib.sha256(f"{campaign.id}:{campaign.content_hash}".encode()).hexdigest()[:10]
    pool = Pool(transport, settings)
    in_a_row = 0
    restore = _stop_on_ctrl_c(pool, summary)
    try:
        while not pool.stop.is_set():
            claims, skipped = ledger.claim(
                engine, campaign.id, plan.segment, batch_size(settings), started=started
            )
            summary.skipped += skipped
            if not claims:
                if skipped:
                    continue  # a batch of people who left; there may be more after them
                break
            futures = [
                (
                    c,
                    pool.submit(
                        _builder(template, settings, key, campaign.id, ident, c),
                        c.email,
                        f"c{campaign.id}.s{c.subscriber_id}",
                    ),
                )
                for c in claims
            ]
            results: list[tuple[ledger.Claim, Outcome | None]] = []
            try:
                for claim_, future in futures:
                    outcome = future.result()
                    results.append((claim_, outcome))
                    if outcome is None:
                        continue
                    in_a_row = 0 if outcome.kind == "sent" else in_a_row + 1
                    if in_a_row >= settings.smtp_pause_after and summary.paused is None:
                        summary.paused = (
                            f"paused after {in_a_row} failures in a row; the last: {outcome}"
                        )
                        pool.stop.set()
            except KeyboardInterrupt:
                # Ctrl-C: messages already on the wire finish; the rest go back to pending.
                summary.interrupted = True
                pool.stop.set()
                results.extend((c, f.result()) for c, f in futures[len(results) :])
            written = ledger.record(
                engine,
                campaign.id,
                results,
                max_attempts=settings.smtp_max_attempts,
                retry_delay=settings.smtp_retry_delay,
            )
            for state in ("sent", "deferred", "failed"):
                setattr(summary, state, getattr(summary, state) + written[state])
            if progress:
                progress(summary)
    finally:
        pool.close()
        restore()
    summary.next_attempt = ledger.next_attempt(engine, campaign.id)
    return campaign, summary


def _stop_on_ctrl_c(pool: Pool, summary: Summary) -> Callable[[], None]:
    """The first Ctrl-C asks the run to stop after the messages on the wire; a second one
    interrupts at once. Only the main thread can own signals; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def stop(_signum: int, _frame: object) -> None:
        summary.interrupted = True
        pool.stop.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, stop)

    def restore() -> None:
        signal.signal(signal.SIGINT, previous)

    return restore


def _builder(
    template: MessageTemplate,
    settings: Settings,
    key: str,
    campaign_id: int,
    ident: str,
    claim_: ledger.Claim,
) -> Callable[[], bytes]:
    def build() -> bytes:
        token = tokens.sign(key, claim_.subscriber_id, tokens.campaign_scope(campaign_id))
        return template.build(
            Addressee(
                subscriber_id=claim_.subscriber_id,
                email=claim_.email,
                name=claim_.name,
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
