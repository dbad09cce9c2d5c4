"""Running a send: the test send and the live campaign share this path.

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
from pathlib import Path

from newsletter import tokens
from newsletter.audience import audience_of, database
from newsletter.audience.addresses import ascii_address, normalize_address
from newsletter.audience.db import utcnow
from newsletter.audience.segments import NamedSegment, count
from newsletter.errors import NewsletterError
from newsletter.issue import load_issue
from newsletter.render import RenderedIssue, render_issue
from newsletter.sending import ledger
from newsletter.sending.message import (
    Addressee,
    MessageTemplate,
    campaign_template,
    unsubscribe_mailto,
)
from newsletter.sending.ratelimit import RateLimiter
from newsletter.sending.transport import Outcome, Transport, make_transport
from newsletter.settings import Settings


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


def _transport_name(settings: Settings) -> str:
    if settings.smtp_host:
        return f"SMTP {settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security})"
    return f"the outbox folder {settings.outbox_dir}/ (no NEWSLETTER_SMTP_HOST set)"


class _Pool:
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
            return self.transport.send(self.sender, wire, build(), key=key)

        return self.executor.submit(job)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.transport.close()


def send_test(path: Path | str, settings: Settings, to: list[str] | None = None) -> Summary:
    """Send the issue to the test recipients, through the same building and transport
    as a live send, with [TEST] before the subject. Nothing goes into the ledger."""
    issue_file = load_issue(path)
    rendered = render_issue(issue_file, settings)
    recipients = to or settings.test_recipient_list()
    if not recipients:
        raise NewsletterError(
            "no test recipients: set NEWSLETTER_TEST_RECIPIENTS or pass --to ADDRESS"
        )
    addresses = []
    for raw in recipients:
        try:
            addresses.append(normalize_address(raw))
        except ValueError as exc:
            raise NewsletterError(f"'{raw}' is not a valid email address: {exc}") from None
    key = tokens.signing_key(settings)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    template = campaign_template(
        rendered, settings, f"test-{rendered.slug}", f"[TEST] {rendered.subject}"
    )
    transport = make_transport(settings, f"test-{rendered.slug}")
    transport.open()
    pool = _Pool(transport, settings)
    summary = Summary()
    try:
        futures = []
        for n, email in enumerate(addresses, 1):
            token = tokens.sign(key, 0, "test")
            to_ = Addressee(
                subscriber_id=0,
                email=email,
                name="",
                message_id=f"<test.{rendered.content_hash[:12]}.{stamp}.{n}@{settings.sender_domain()}>",
                unsubscribe_url=settings.public_url("unsubscribe", token),
                unsubscribe_mailto=unsubscribe_mailto(settings, token),
            )
            futures.append(
                (email, pool.submit(lambda t=to_: template.build(t), email, f"{stamp}-{n}"))
            )
        for email, future in futures:
            outcome = future.result() or Outcome("deferred", None, "not sent")
            summary.outcomes.append((email, outcome))
            setattr(summary, outcome.kind, getattr(summary, outcome.kind) + 1)
    finally:
        pool.close()
    return summary


def plan_live(path: Path | str, settings: Settings, *, new_campaign: bool = False) -> Plan:
    """Validate, render and resolve everything a live send needs; change nothing."""
    from newsletter.checks import ChecksFailed, check_issue

    issue_file = load_issue(path)
    rendered = render_issue(issue_file, settings)
    tokens.signing_key(settings)
    report = check_issue(issue_file, rendered, settings)
    if report.errors:
        raise ChecksFailed(report, issue_file.path)
    engine = database(settings)
    named = audience_of(issue_file, settings)
    existing = ledger.latest_campaign(engine, rendered.slug, named.name)
    if existing is not None and not new_campaign and existing.content_hash != rendered.content_hash:
        raise NewsletterError(
            f"{issue_file.path} changed since campaign {existing.id} started (content hash "
            f"{existing.content_hash[:12]}, now {rendered.content_hash[:12]}); sending it would "
            "mix two versions. Pass --new-campaign to start a new campaign"
        )
    if existing is not None and not new_campaign:
        remaining = ledger.counts(engine, existing.id)
        return Plan(
            issue_file.path,
            rendered,
            named,
            existing.recipients,
            existing,
            remaining,
            _transport_name(settings),
        )
    return Plan(
        issue_file.path,
        rendered,
        named,
        count(engine, named),
        None,
        None,
        _transport_name(settings),
    )


def connect(plan: Plan, settings: Settings) -> Transport:
    """The transport, checked: authentication and TLS problems stop a send here, before
    any ledger row changes."""
    transport = make_transport(settings, plan.rendered.slug)
    transport.open()
    return transport


def run_live(
    plan: Plan,
    settings: Settings,
    *,
    transport: Transport | None = None,
    progress: Callable[[Summary], None] | None = None,
) -> tuple[ledger.Campaign, Summary]:
    """Create or resume the campaign and send until nothing is due."""
    engine = database(settings)
    key = tokens.signing_key(settings)
    transport = transport or connect(plan, settings)
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
    pool = _Pool(transport, settings)
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


def _stop_on_ctrl_c(pool: _Pool, summary: Summary) -> Callable[[], None]:
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
    return lambda: signal.signal(signal.SIGINT, previous)


def _builder(
    template: MessageTemplate,
    settings: Settings,
    key: str,
    campaign_id: int,
    ident: str,
    claim_: ledger.Claim,
) -> Callable[[], bytes]:
    def build() -> bytes:
        token = tokens.sign(key, claim_.subscriber_id, f"c{campaign_id}")
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
                    "preferences", tokens.sign(key, claim_.subscriber_id, "prefs")
                ),
            )
        )

    return build


def retry(
    campaign_id: int, settings: Settings, progress: Callable[[Summary], None] | None = None
) -> tuple[ledger.Campaign, Summary]:
    """Make the campaign's deferred rows due now and send them."""
    engine = database(settings)
    campaign = ledger.get_campaign(engine, campaign_id)
    plan = plan_live(campaign.issue_path, settings)
    if plan.campaign is None or plan.campaign.id != campaign.id:
        raise NewsletterError(
            f"campaign {campaign_id} is not the latest campaign of {campaign.issue_path}"
        )
    ledger.retry_now(engine, campaign_id)
    return run_live(plan, settings, progress=progress)
