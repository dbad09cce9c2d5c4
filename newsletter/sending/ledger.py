"""The send ledger: one row per (campaign, subscriber), and the moves between states.

    pending -> sending -> sent | deferred | failed      (and skipped, for people who left)

A row is marked `sending`, and that is committed, before its DATA goes out; it becomes
`sent` only after the server's 250. A rerun never sends a `sent` row again. A row found in
`sending` when a run starts was in flight when the last run died: it goes back to
`pending`, is counted as resent, and goes out with the same Message-ID. Claims use
SELECT ... FOR UPDATE SKIP LOCKED where the database has it (PostgreSQL), so several
senders can share a campaign; SQLite serialises writers anyway.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.audience.db import subscribers
from newsletter.audience.segments import NamedSegment, condition, recipients
from newsletter.errors import NewsletterError
from newsletter.sending.tables import DELIVERY_STATES, campaigns, deliveries
from newsletter.sending.transport import Outcome
from newsletter.store import utcnow


@dataclass(frozen=True)
class Campaign:
    id: int
    issue: str
    issue_path: str
    content_hash: str
    segment: str
    subject: str
    recipients: int
    created_at: dt.datetime


@dataclass(frozen=True)
class Claim:
    subscriber_id: int
    email: str
    name: str
    attempts: int


def _campaign(row: sa.Row) -> Campaign:  # type: ignore[type-arg]
    return Campaign(
        row.id,
        row.issue,
        row.issue_path,
        row.content_hash,
        row.segment,
        row.subject,
        row.recipients,
        row.created_at,
    )


def get_campaign(engine: Engine, campaign_id: int) -> Campaign:
    with engine.connect() as conn:
        row = conn.execute(sa.select(campaigns).where(campaigns.c.id == campaign_id)).first()
    if row is None:
        raise NewsletterError(f"no campaign {campaign_id}; `newsletter campaigns` lists them")
    return _campaign(row)


def all_campaigns(engine: Engine) -> list[Campaign]:
    with engine.connect() as conn:
        return [_campaign(r) for r in conn.execute(sa.select(campaigns).order_by(campaigns.c.id))]


def latest_campaign(engine: Engine, issue: str, segment: str) -> Campaign | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(campaigns)
            .where(campaigns.c.issue == issue, campaigns.c.segment == segment)
            .order_by(campaigns.c.id.desc())
            .limit(1)
        ).first()
    return _campaign(row) if row else None


def create_campaign(
    engine: Engine,
    *,
    issue: str,
    issue_path: str,
    content_hash: str,
    subject: str,
    named: NamedSegment,
) -> Campaign:
    """A new campaign with a pending row for every current recipient of the segment, made
    in one transaction: a campaign exists whole or not at all."""
    now = utcnow()
    with engine.begin() as conn:
        campaign_id = conn.execute(
            sa.insert(campaigns)
            .values(
                issue=issue,
                issue_path=issue_path,
                content_hash=content_hash,
                segment=named.name,
                subject=subject,
                recipients=0,
                created_at=now,
                updated_at=now,
            )
            .returning(campaigns.c.id)
        ).scalar_one()
        total = 0
        for batch in recipients(engine, named, batch_size=5000):
            conn.execute(
                sa.insert(deliveries).values(
                    campaign_id=campaign_id,
                    status="pending",
                    updated_at=sa.func.current_timestamp(),
                ),
                [{"subscriber_id": r.id} for r in batch],
            )
            total += len(batch)
        conn.execute(
            sa.update(campaigns).where(campaigns.c.id == campaign_id).values(recipients=total)
        )
    return get_campaign(engine, campaign_id)


def counts(engine: Engine, campaign_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.status, sa.func.count())
            .where(deliveries.c.campaign_id == campaign_id)
            .group_by(deliveries.c.status)
        ).all()
    found = Counter({status: n for status, n in rows})
    return {state: found.get(state, 0) for state in DELIVERY_STATES}


def recover(engine: Engine, campaign_id: int) -> int:
    """Rows left in `sending` by a run that died go back to pending; returns how many."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == "sending")
            .values(status="pending", resent=deliveries.c.resent + 1, updated_at=utcnow())
        )
    return int(result.rowcount or 0)


def retry_now(engine: Engine, campaign_id: int) -> int:
    """Make every deferred row due now; returns how many."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == "deferred")
            .values(next_attempt_at=None, updated_at=utcnow())
        )
    return int(result.rowcount or 0)


def next_attempt(engine: Engine, campaign_id: int) -> dt.datetime | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.min(deliveries.c.next_attempt_at)).where(
                deliveries.c.campaign_id == campaign_id, deliveries.c.status == "deferred"
            )
        ).scalar_one_or_none()


def claim(
    engine: Engine, campaign_id: int, named: NamedSegment, limit: int, *, started: dt.datetime
) -> tuple[list[Claim], int]:
    """Mark up to limit due rows `sending` and commit; returns them, and how many rows were
    skipped because their subscriber left the segment (unsubscribed, bounced, erased).

    A deferred row is due when its next attempt fell before this run started: one run
    tries each row at most once, however short the retry delay."""
    now = utcnow()
    due = sa.or_(
        deliveries.c.status == "pending",
        sa.and_(
            deliveries.c.status == "deferred",
            sa.or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at < started),
        ),
    )
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.subscriber_id, deliveries.c.attempts)
            .where(deliveries.c.campaign_id == campaign_id, due)
            .order_by(deliveries.c.subscriber_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return [], 0
        attempts = dict(rows)
        ids = list(attempts)
        people = conn.execute(
            sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name).where(
                subscribers.c.id.in_(ids), condition(conn, named)
            )
        ).all()
        claims = [Claim(sid, email, name, attempts[sid] + 1) for sid, email, name in people]
        gone = [sid for sid in ids if sid not in {c.subscriber_id for c in claims}]
        where = sa.and_(
            deliveries.c.campaign_id == campaign_id,
            deliveries.c.subscriber_id == sa.bindparam("b_id"),
        )
        if gone:
            conn.execute(
                sa.update(deliveries)
                .where(where)
                .values(status="skipped", reply="no longer in the segment", updated_at=now),
                [{"b_id": sid} for sid in gone],
            )
        if claims:
            conn.execute(
                sa.update(deliveries)
                .where(where)
                .values(status="sending", attempts=deliveries.c.attempts + 1, updated_at=now),
                [{"b_id": c.subscriber_id} for c in claims],
            )
    return claims, len(gone)


def record(
    engine: Engine,
    campaign_id: int,
    results: list[tuple[Claim, Outcome | None]],
    *,
    max_attempts: int,
    retry_delay: float,
) -> Counter[str]:
    """Write outcomes, and return how many rows went to each state. None means the
    message was never started: back to pending."""
    now = utcnow()
    rows: list[dict[str, Any]] = []
    bounced = []
    for claim_, outcome in results:
        row: dict[str, Any] = {
            "b_id": claim_.subscriber_id,
            "b_code": None,
            "b_reply": None,
            "b_next": None,
        }
        if outcome is None:
            row |= {"b_status": "pending", "b_attempts": claim_.attempts - 1}
        elif outcome.kind == "deferred" and claim_.attempts >= max_attempts:
            row |= {
                "b_status": "failed",
                "b_attempts": claim_.attempts,
                "b_code": outcome.code,
                "b_reply": f"gave up after {claim_.attempts} attempts: {outcome}"[:500],
            }
        else:
            row |= {
                "b_status": outcome.kind,
                "b_attempts": claim_.attempts,
                "b_code": outcome.code,
                "b_reply": outcome.reply[:500],
            }
            if outcome.kind == "deferred":
                # Exponential backoff with jitter, so retries do not arrive in step.
                delay = retry_delay * 2 ** (claim_.attempts - 1) * random.uniform(0.8, 1.2)
                row["b_next"] = now + dt.timedelta(seconds=delay)
            if outcome.bounced:
                bounced.append(claim_.subscriber_id)
        rows.append(row)
    with engine.begin() as conn:
        if rows:
            conn.execute(
                sa.update(deliveries)
                .where(
                    deliveries.c.campaign_id == campaign_id,
                    deliveries.c.subscriber_id == sa.bindparam("b_id"),
                )
                .values(
                    status=sa.bindparam("b_status"),
                    attempts=sa.bindparam("b_attempts"),
                    code=sa.bindparam("b_code"),
                    reply=sa.bindparam("b_reply"),
                    next_attempt_at=sa.bindparam("b_next", type_=sa.DateTime(timezone=True)),
                    updated_at=now,
                ),
                rows,
            )
        if bounced:
            conn.execute(
                sa.update(subscribers)
                .where(subscribers.c.id.in_(bounced), subscribers.c.status == "active")
                .values(status="bounced", updated_at=now)
            )
        conn.execute(
            sa.update(campaigns).where(campaigns.c.id == campaign_id).values(updated_at=now)
        )
    return Counter(row["b_status"] for row in rows)


@dataclass(frozen=True)
class Problem:
    subscriber_id: int
    email: str | None
    status: str
    attempts: int
    code: int | None
    reply: str | None
    next_attempt_at: dt.datetime | None


def problems(engine: Engine, campaign_id: int, limit: int = 50) -> list[Problem]:
    """Failed and deferred rows with their replies (addresses of erased people are gone)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                deliveries.c.subscriber_id,
                subscribers.c.email,
                deliveries.c.status,
                deliveries.c.attempts,
                deliveries.c.code,
                deliveries.c.reply,
                deliveries.c.next_attempt_at,
            )
            .select_from(
                deliveries.outerjoin(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            )
            .where(
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.status.in_(["failed", "deferred"]),
            )
            .order_by(deliveries.c.status, deliveries.c.subscriber_id)
            .limit(limit)
        ).all()
    return [Problem(*row) for row in rows]


@dataclass(frozen=True)
class Received:
    """One campaign a subscriber was in, for the data they can download."""

    campaign_id: int
    issue: str
    status: str
    at: dt.datetime


def received_by(conn: Connection, subscriber_id: int) -> list[Received]:
    rows = conn.execute(
        sa.select(campaigns.c.id, campaigns.c.issue, deliveries.c.status, deliveries.c.updated_at)
        .join(campaigns, campaigns.c.id == deliveries.c.campaign_id)
        .where(deliveries.c.subscriber_id == subscriber_id)
        .order_by(campaigns.c.id)
    ).all()
    return [Received(*row) for row in rows]


@dataclass(frozen=True)
class SentIssue:
    """An issue in the archive: sent live to at least one subscriber."""

    slug: str
    subject: str
    path: str
    first_sent: dt.datetime


def sent_issues(conn: Connection) -> list[SentIssue]:
    """Issues with a live delivery sent (test sends are not in the ledger), newest first;
    for an issue sent in several campaigns, the latest campaign's file and subject."""
    query = (
        sa.select(
            campaigns.c.issue,
            campaigns.c.subject,
            campaigns.c.issue_path,
            sa.func.min(campaigns.c.created_at).label("first"),
        )
        .where(
            sa.exists().where(
                deliveries.c.campaign_id == campaigns.c.id, deliveries.c.status == "sent"
            )
        )
        .group_by(campaigns.c.issue, campaigns.c.subject, campaigns.c.issue_path)
    )
    latest: dict[str, SentIssue] = {}
    for issue, subject, path, first in conn.execute(query).all():
        if issue not in latest or first > latest[issue].first_sent:
            latest[issue] = SentIssue(issue, subject, path, first)
    return sorted(latest.values(), key=lambda i: i.first_sent, reverse=True)
