"""Processing the mailbox: every report that came back is classified, matched to a
delivery we made, acted on, recorded as an event with its evidence, and filed away.

- A hard bounce marks the subscriber bounced. Soft bounces count: NEWSLETTER_SOFT_BOUNCE_
  LIMIT of them across at least NEWSLETTER_SOFT_BOUNCE_CAMPAIGNS campaigns within
  NEWSLETTER_SOFT_BOUNCE_DAYS days mark them bounced too. A delay is recorded, no more.
- A complaint unsubscribes from everything and marks the subscriber complained, which no
  import or tool undoes.
- A mailto unsubscribe does exactly what the one-click POST does (the same function).
- Auto-replies are filed as processed; what is not recognised goes to Unrecognised for a
  person. Nothing is deleted.

Matching trusts our signed VERP tag first, then our headers in a returned copy, then the
address the report names; a report that matches no delivery we made changes nobody. The
act and the record that the report was acted on commit together, before the report is
filed: a crash between the two leaves a report that the next run files without acting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter import tokens
from newsletter.audience import subscribers as audience
from newsletter.audience.addresses import address_key
from newsletter.audience.db import subscribers as subscriber_table
from newsletter.errors import NewsletterError
from newsletter.mailbox.classify import Classified, classify, parse
from newsletter.mailbox.sources import PROCESSED, UNRECOGNISED, Source, open_source
from newsletter.mailbox.tables import events, reports
from newsletter.sending.tables import deliveries
from newsletter.services import database
from newsletter.settings import Settings
from newsletter.store import utcnow


@dataclass
class MailboxSummary:
    counts: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        order = (
            "bounce",
            "soft-bounce",
            "delayed",
            "complaint",
            "unsubscribe",
            "autoreply",
            "unmatched",
            "already",
            "unrecognised",
        )
        return ", ".join(f"{self.counts[k]} {k}" for k in order if self.counts[k]) or "nothing"


@dataclass(frozen=True)
class Match:
    subscriber_id: int
    campaign_id: int | None


def _delivered(conn: Connection, subscriber_id: int, campaign_id: int | None) -> bool:
    query = sa.select(deliveries.c.subscriber_id).where(deliveries.c.subscriber_id == subscriber_id)
    if campaign_id is not None:
        query = query.where(deliveries.c.campaign_id == campaign_id)
    return conn.execute(query.limit(1)).first() is not None


def _match(conn: Connection, settings: Settings, raw: bytes, found: Classified) -> Match | None:
    """Which delivery the report is about: the VERP tag, our headers, the address."""
    message = parse(raw)
    if message is not None:
        for header in ("Delivered-To", "X-Original-To", "To", "Envelope-To"):
            for value in message.get_all(header) or []:
                for word in str(value).replace(",", " ").split():
                    tag = tokens.read_return_path(settings, word)
                    if tag is not None and tag[0] == "c":
                        if _delivered(conn, tag[2], tag[1]):
                            return Match(tag[2], tag[1])
                        return None
    if found.subscriber and found.subscriber.isdigit():
        sid = int(found.subscriber)
        campaign = (found.campaign or "").removeprefix("campaign-")
        cid = int(campaign) if campaign.isdigit() else None
        if _delivered(conn, sid, cid):
            return Match(sid, cid)
    if found.recipient:
        by_address = conn.execute(
            sa.select(subscriber_table.c.id).where(
                subscriber_table.c.email_key == address_key(found.recipient)
            )
        ).scalar()
        if by_address is not None and _delivered(conn, by_address, None):
            return Match(int(by_address), None)
    return None


def _soft_limit_reached(conn: Connection, settings: Settings, subscriber_id: int) -> bool:
    since = utcnow() - dt.timedelta(days=settings.soft_bounce_days)
    rows = conn.execute(
        sa.select(events.c.campaign_id).where(
            events.c.subscriber_id == subscriber_id,
            events.c.kind == "soft-bounce",
            events.c.created_at >= since,
        )
    ).all()
    campaigns = {r.campaign_id for r in rows}
    return len(rows) >= settings.soft_bounce_limit and len(campaigns) >= (
        settings.soft_bounce_campaigns
    )


def _set_status(conn: Connection, subscriber_id: int, status: str) -> None:
    conn.execute(
        sa.update(subscriber_table)
        .where(subscriber_table.c.id == subscriber_id, subscriber_table.c.status == "active")
        .values(status=status, updated_at=utcnow())
    )


def act(conn: Connection, settings: Settings, raw: bytes, found: Classified) -> str:
    """Act on one classified report inside the caller's transaction; returns what it was
    counted as."""
    from newsletter.services.subscribers import unsubscribe

    digest = fingerprint(raw)
    if conn.execute(sa.select(reports.c.kind).where(reports.c.report_hash == digest)).first():
        return "already"
    counted = found.kind
    if found.kind == "unsubscribe":
        try:
            sid, scope = tokens.verify_for(
                settings, found.token or "", frozenset({tokens.CAMPAIGN, tokens.LIST})
            )
        except tokens.BadToken:
            counted = "unmatched"
        else:
            unsubscribe(conn, sid, scope)  # exactly what the one-click POST does
            campaign = scope[1:] if tokens.kind_of(scope) == tokens.CAMPAIGN else ""
            _event(conn, sid, int(campaign) if campaign else None, "unsubscribe", found, digest)
    elif found.kind in ("bounce", "delayed", "complaint"):
        match = _match(conn, settings, raw, found)
        if match is None:
            counted = "unmatched"
        else:
            sid = match.subscriber_id
            if found.kind == "complaint":
                audience.unsubscribe_id(conn, sid)
                conn.execute(
                    sa.update(subscriber_table)
                    .where(subscriber_table.c.id == sid)
                    .values(status="complained", updated_at=utcnow())
                )
            kind = found.kind
            if found.kind == "bounce" and not found.hard:
                kind = counted = "soft-bounce"
            _event(conn, sid, match.campaign_id, kind, found, digest)
            if kind == "bounce" or (
                kind == "soft-bounce" and _soft_limit_reached(conn, settings, sid)
            ):
                _set_status(conn, sid, "bounced")
    conn.execute(sa.insert(reports).values(report_hash=digest, kind=counted, created_at=utcnow()))
    return counted


def fingerprint(raw: bytes) -> str:
    """What identifies a report across mailboxes and folders, which may change its line
    ends: the SHA-256 of its bytes with LF line ends and no trailing whitespace."""
    return hashlib.sha256(raw.replace(b"\r\n", b"\n").rstrip()).hexdigest()


def _event(
    conn: Connection,
    subscriber_id: int,
    campaign_id: int | None,
    kind: str,
    found: Classified,
    digest: str,
) -> None:
    conn.execute(
        sa.insert(events).values(
            subscriber_id=subscriber_id,
            campaign_id=campaign_id,
            kind=kind,
            status=found.status,
            diagnostic=found.diagnostic[:300],
            report_id=(found.message_id or "")[:200] or None,
            report_hash=digest,
            created_at=utcnow(),
        )
    )


def process(
    settings: Settings, *, report: Callable[[str], None] = lambda _line: None
) -> MailboxSummary:
    """Read the mailbox NEWSLETTER_MAILBOX_URL names, act on every report, file each."""
    if not settings.mailbox_url:
        raise NewsletterError("NEWSLETTER_MAILBOX_URL is not set; it names the mailbox to read")
    source = _open(settings, settings.mailbox_url)
    engine = database(settings)
    summary = MailboxSummary()
    unsubscribe_to = settings.unsubscribe_address()
    try:
        for item in source.messages():
            found = classify(item.raw, unsubscribe_address=unsubscribe_to)
            if found.kind == "unrecognised":
                counted = "unrecognised"
            else:
                with engine.begin() as conn:
                    counted = act(conn, settings, item.raw, found)
            source.file(item, UNRECOGNISED if counted == "unrecognised" else PROCESSED)
            summary.counts[counted] += 1
            report(f"{counted}: {found.recipient or '-'} {found.status or ''}".rstrip())
    finally:
        source.close()
    return summary


@dataclass(frozen=True)
class Event:
    kind: str
    campaign_id: int | None
    status: str | None
    diagnostic: str
    report_id: str | None
    at: dt.datetime


def wait_for_reports(settings: Settings, seconds: float, stop: threading.Event) -> None:
    """Wait until the next round: on an IMAP server that offers IDLE, until new mail
    arrives (or seconds pass); elsewhere, seconds."""
    from newsletter.mailbox.sources import ImapSource

    if settings.mailbox_url and settings.mailbox_url.lower().startswith("imaps:"):
        try:
            source = _open(settings, settings.mailbox_url)
        except NewsletterError:
            source = None
        if source is not None:
            try:
                if isinstance(source, ImapSource) and source.can_idle:
                    source.idle(seconds, stop)
                    return
            finally:
                source.close()
    # No IDLE (or no mailbox to ask): wait the whole poll, never spin.
    stop.wait(seconds)


def _open(settings: Settings, url: str) -> Source:
    password = settings.mailbox_password.get_secret_value() if settings.mailbox_password else None
    ca_file = str(settings.mailbox_ca_file) if settings.mailbox_ca_file else None
    return open_source(url, password, ca_file)


def events_of(settings: Settings, subscriber_id: int) -> list[Event]:
    """A subscriber's events, oldest first."""
    with database(settings).connect() as conn:
        rows = conn.execute(
            sa.select(
                events.c.kind,
                events.c.campaign_id,
                events.c.status,
                events.c.diagnostic,
                events.c.report_id,
                events.c.created_at,
            )
            .where(events.c.subscriber_id == subscriber_id)
            .order_by(events.c.id)
        ).all()
    return [Event(*row) for row in rows]


def campaign_events(settings: Settings, campaign_id: int) -> Counter[str]:
    with database(settings).connect() as conn:
        rows = conn.execute(
            sa.select(events.c.kind, sa.func.count())
            .where(events.c.campaign_id == campaign_id)
            .group_by(events.c.kind)
        ).all()
    return Counter({kind: n for kind, n in rows})
