"""The send ledger: one row per (campaign, subscriber), and the moves between states.

    pending -> sending -> sent | deferred | failed      (and skipped, for people who left)

A sender claims rows: it marks them `sending` under its name with a lease (an expiry it
renews while it lives) and commits that before any DATA goes out. A row becomes `sent`
only after the server's 250, with the hash of the bytes that went out. A `sent` row is
never sent again. A row whose lease expired (its sender died or hung) is due again and
goes out with the same Message-ID, counted as resent; a live sender's rows are never
touched. Claims hold the write lock (SQLite) or lock rows with FOR UPDATE SKIP LOCKED
(PostgreSQL), so any number of senders share a campaign without sharing a row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter import languages
from newsletter.audience.db import subscribers
from newsletter.audience.segments import NamedSegment, condition, recipients
from newsletter.audience.subscribers import first_name
from newsletter.errors import NewsletterError
from newsletter.render import RenderedIssue
from newsletter.sending.tables import DELIVERY_STATES, campaign_editions, campaigns, deliveries
from newsletter.sending.transport import Outcome
from newsletter.store import utcnow, write_transaction


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
    state: str = "sending"
    send_at: dt.datetime | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    source_hash: str | None = None


@dataclass(frozen=True)
class Claim:
    subscriber_id: int
    email: str
    name: str
    attempts: int
    # Taken over from a sender whose lease expired: it may have gone out already.
    resent: bool = False
    # The edition (language) fixed for this delivery; None for a campaign of one render.
    edition: str | None = None
    first_name: str = ""  # the subscriber's first_name attribute, for the greeting


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands datetimes back without their zone; every stored time is UTC.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment


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
        row.state,
        _utc(row.send_at),
        row.git_commit,
        row.git_dirty,
        row.source_hash,
    )


def get_campaign(engine: Engine, campaign_id: int) -> Campaign:
    with engine.connect() as conn:
        row = conn.execute(sa.select(campaigns).where(campaigns.c.id == campaign_id)).first()
    if row is None:
        raise NewsletterError(f"no campaign {campaign_id}; `newsletter campaigns` lists them")
    return _campaign(row)


def frozen_issue(engine: Engine, campaign_id: int) -> RenderedIssue | None:
    """The render the campaign froze when it was made (None for campaigns made before)."""
    with engine.connect() as conn:
        frozen = conn.execute(
            sa.select(campaigns.c.frozen).where(campaigns.c.id == campaign_id)
        ).scalar()
    return RenderedIssue.thaw(frozen) if frozen else None


def editions_hash(editions: dict[str, RenderedIssue]) -> str:
    """A campaign's content hash: its one render's, or a hash over every edition's."""
    if len(editions) == 1:
        return next(iter(editions.values())).content_hash
    digest = hashlib.sha256()
    for language in sorted(editions):
        digest.update(f"{language}:{editions[language].content_hash}\n".encode())
    return digest.hexdigest()


def frozen_editions(engine: Engine, campaign_id: int) -> dict[str | None, RenderedIssue]:
    """The renders the campaign froze, by edition (language); a campaign made before
    editions has its one render under None."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(campaign_editions.c.language, campaign_editions.c.frozen).where(
                campaign_editions.c.campaign_id == campaign_id
            )
        ).all()
    found: dict[str | None, RenderedIssue] = {
        language: RenderedIssue.thaw(frozen) for language, frozen in rows
    }
    if not found and (single := frozen_issue(engine, campaign_id)) is not None:
        found[None] = single
    return found


def already_received(engine: Engine, issue: str, named: NamedSegment) -> int:
    """How many of the segment's current recipients were sent the issue in an earlier
    campaign."""
    with engine.connect() as conn:
        sent = (
            sa.select(deliveries.c.subscriber_id)
            .join(campaigns, campaigns.c.id == deliveries.c.campaign_id)
            .where(campaigns.c.issue == issue, deliveries.c.status == "sent")
        )
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(subscribers)
                .where(condition(conn, named), subscribers.c.id.in_(sent))
            ).scalar_one()
        )


def edition_counts(engine: Engine, campaign_id: int) -> dict[str | None, dict[str, int]]:
    """Deliveries by edition and state."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.edition, deliveries.c.status, sa.func.count())
            .where(deliveries.c.campaign_id == campaign_id)
            .group_by(deliveries.c.edition, deliveries.c.status)
        ).all()
    found: dict[str | None, dict[str, int]] = {}
    for edition, status, n in rows:
        found.setdefault(edition, {})[status] = int(n)
    return found


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
    issue_path: str,
    rendered: RenderedIssue,
    named: NamedSegment,
    generation: int = 1,
    send_at: dt.datetime | None = None,
    git_commit: str | None = None,
    git_dirty: bool | None = None,
    editions: dict[str, RenderedIssue] | None = None,
    source_hash: str | None = None,
) -> tuple[Campaign, bool]:
    """The campaign (issue, segment, generation), made with a pending row for every current
    recipient of the segment in one transaction, or the one that exists: a unique index,
    not a check then an insert, so two senders started together make one campaign.
    rendered is the source edition; editions, every edition by language (the source's
    too): each row gets the edition nearest its subscriber's language, for good.
    Returns (campaign, whether this call made it)."""
    now = utcnow()
    source = languages.canonical(rendered.language)
    editions = editions or {source: rendered}
    try:
        with engine.begin() as conn:
            campaign_id = conn.execute(
                sa.insert(campaigns)
                .values(
                    issue=rendered.slug,
                    issue_path=issue_path,
                    content_hash=editions_hash(editions),
                    segment=named.name,
                    subject=rendered.subject,
                    recipients=0,
                    created_at=now,
                    updated_at=now,
                    state="scheduled" if send_at is not None else "sending",
                    send_at=send_at,
                    generation=generation,
                    frozen=rendered.freeze(),
                    git_commit=git_commit,
                    git_dirty=git_dirty,
                    source_hash=source_hash,
                )
                .returning(campaigns.c.id)
            ).scalar_one()
            conn.execute(
                sa.insert(campaign_editions),
                [
                    {
                        "campaign_id": campaign_id,
                        "language": language,
                        "source": language == source,
                        "content_hash": edition.content_hash,
                        "subject": edition.subject,
                        "frozen": edition.freeze(),
                    }
                    for language, edition in editions.items()
                ],
            )
            total = 0
            for batch in recipients(engine, named, batch_size=5000):
                conn.execute(
                    sa.insert(deliveries).values(
                        campaign_id=campaign_id,
                        status="pending",
                        updated_at=sa.func.current_timestamp(),
                    ),
                    [
                        {
                            "subscriber_id": r.id,
                            "edition": languages.pick(r.language, editions, source),
                        }
                        for r in batch
                    ],
                )
                total += len(batch)
            conn.execute(
                sa.update(campaigns).where(campaigns.c.id == campaign_id).values(recipients=total)
            )
    except sa.exc.IntegrityError:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(campaigns).where(
                    campaigns.c.issue == rendered.slug,
                    campaigns.c.segment == named.name,
                    campaigns.c.generation == generation,
                )
            ).first()
        if row is None:
            raise
        return _campaign(row), False
    return get_campaign(engine, campaign_id), True


def next_generation(engine: Engine, issue: str, segment: str) -> int:
    with engine.connect() as conn:
        latest = conn.execute(
            sa.select(sa.func.max(campaigns.c.generation)).where(
                campaigns.c.issue == issue, campaigns.c.segment == segment
            )
        ).scalar()
    return int(latest or 0) + 1


def set_state(engine: Engine, campaign_id: int, state: str, *, allowed: tuple[str, ...]) -> bool:
    """Move a campaign to state if it is in one of allowed; False when it was not."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(campaigns)
            .where(campaigns.c.id == campaign_id, campaigns.c.state.in_(allowed))
            .values(state=state, updated_at=utcnow())
        )
    return bool(result.rowcount)


def start_due(engine: Engine, now: dt.datetime) -> list[int]:
    """Scheduled campaigns whose time has come start sending; returns their ids."""
    with engine.begin() as conn:
        due = list(
            conn.execute(
                sa.select(campaigns.c.id).where(
                    campaigns.c.state == "scheduled", campaigns.c.send_at <= now
                )
            ).scalars()
        )
        if due:
            conn.execute(
                sa.update(campaigns)
                .where(campaigns.c.id.in_(due), campaigns.c.state == "scheduled")
                .values(state="sending", updated_at=now)
            )
    return due


def _due(now: dt.datetime, started: dt.datetime | None) -> sa.ColumnElement[bool]:
    """Rows a sender may claim: pending; deferred whose next attempt has come (before this
    run started, so that one run tries a row at most once); and rows in `sending` whose
    lease has expired."""
    retry_before = started if started is not None else now
    return sa.or_(
        deliveries.c.status == "pending",
        sa.and_(
            deliveries.c.status == "deferred",
            sa.or_(
                deliveries.c.next_attempt_at.is_(None),
                deliveries.c.next_attempt_at < retry_before,
            ),
        ),
        sa.and_(
            deliveries.c.status == "sending",
            sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
        ),
    )


def work_left(engine: Engine, now: dt.datetime | None = None) -> list[int]:
    """Campaigns in `sending` with rows a sender could claim now."""
    now = now or utcnow()
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(campaigns.c.id)
                .where(
                    campaigns.c.state == "sending",
                    sa.exists().where(deliveries.c.campaign_id == campaigns.c.id, _due(now, None)),
                )
                .order_by(campaigns.c.id)
            ).scalars()
        )


def counts(engine: Engine, campaign_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.status, sa.func.count())
            .where(deliveries.c.campaign_id == campaign_id)
            .group_by(deliveries.c.status)
        ).all()
    found = Counter({status: n for status, n in rows})
    return {state: found.get(state, 0) for state in DELIVERY_STATES}


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


@dataclass
class Claimed:
    claims: list[Claim]
    skipped: int
    # The campaign was paused, cancelled (or is not sending): nothing may be claimed.
    stopped: str | None = None


def claim(
    engine: Engine,
    campaign_id: int,
    named: NamedSegment,
    limit: int,
    *,
    owner: str,
    lease: float,
    started: dt.datetime | None = None,
) -> Claimed:
    """Lease up to limit due rows to owner and commit; rows whose subscriber left the
    segment (unsubscribed, bounced, erased) are marked skipped on the way."""
    now = utcnow()
    until = now + dt.timedelta(seconds=lease)
    with write_transaction(engine) as conn:
        state = conn.execute(
            sa.select(campaigns.c.state).where(campaigns.c.id == campaign_id)
        ).scalar()
        if state == "done":
            return Claimed([], 0)
        if state != "sending":
            return Claimed([], 0, stopped=state or "gone")
        rows = conn.execute(
            sa.select(
                deliveries.c.subscriber_id,
                deliveries.c.attempts,
                deliveries.c.status,
                deliveries.c.edition,
            )
            .where(deliveries.c.campaign_id == campaign_id, _due(now, started))
            .order_by(deliveries.c.subscriber_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return Claimed([], 0)
        found = {sid: (attempts, status, edition) for sid, attempts, status, edition in rows}
        people = conn.execute(
            sa.select(
                subscribers.c.id,
                subscribers.c.email,
                subscribers.c.name,
                subscribers.c.attributes,
            ).where(subscribers.c.id.in_(list(found)), condition(conn, named))
        ).all()
        claims = [
            Claim(
                sid,
                email,
                name,
                found[sid][0] + 1,
                resent=found[sid][1] == "sending",
                edition=found[sid][2],
                first_name=first_name(attributes),
            )
            for sid, email, name, attributes in people
        ]
        kept = {c.subscriber_id for c in claims}
        gone = [sid for sid in found if sid not in kept]
        mine = deliveries.c.campaign_id == campaign_id
        if gone:
            conn.execute(
                sa.update(deliveries)
                .where(mine, deliveries.c.subscriber_id.in_(gone))
                .values(
                    status="skipped",
                    reply="no longer in the segment",
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                )
            )
        # One statement for each kind of row, not one a row: rows found still in
        # `sending` (a sender died with them) count one more resend.
        for resent in (False, True):
            ids = [c.subscriber_id for c in claims if c.resent == resent]
            if ids:
                conn.execute(
                    sa.update(deliveries)
                    .where(mine, deliveries.c.subscriber_id.in_(ids))
                    .values(
                        status="sending",
                        attempts=deliveries.c.attempts + 1,
                        resent=deliveries.c.resent + int(resent),
                        lease_owner=owner,
                        lease_until=until,
                        updated_at=now,
                    )
                )
    return Claimed(claims, len(gone))


def renew(engine: Engine, campaign_id: int, owner: str, lease: float) -> int:
    """Extend owner's leases on the rows it holds; returns how many."""
    until = utcnow() + dt.timedelta(seconds=lease)
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(deliveries)
            .where(
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.status == "sending",
                deliveries.c.lease_owner == owner,
            )
            .values(lease_until=until)
        )
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class Result:
    """What became of one claimed row. outcome None: never started (back to pending)."""

    claim: Claim
    outcome: Outcome | None
    message_hash: str | None = None


def record(
    engine: Engine,
    campaign_id: int,
    results: list[Result],
    *,
    owner: str,
    max_attempts: int,
    retry_delay: float,
) -> Counter[str]:
    """Write outcomes in one commit, and return how many rows went to each state. Only
    rows this owner still holds are written."""
    now = utcnow()
    rows: list[dict[str, Any]] = []
    bounced = []
    for result in results:
        claim_, outcome = result.claim, result.outcome
        row: dict[str, Any] = {
            "b_id": claim_.subscriber_id,
            "b_code": None,
            "b_reply": None,
            "b_next": None,
            "b_hash": result.message_hash,
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
                row["b_next"] = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)
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
                    deliveries.c.status == "sending",
                    deliveries.c.lease_owner == owner,
                )
                .values(
                    status=sa.bindparam("b_status"),
                    attempts=sa.bindparam("b_attempts"),
                    code=sa.bindparam("b_code"),
                    reply=sa.bindparam("b_reply"),
                    next_attempt_at=sa.bindparam("b_next", type_=sa.DateTime(timezone=True)),
                    message_hash=sa.bindparam("b_hash"),
                    lease_owner=None,
                    lease_until=None,
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
        # The campaign's own row is not touched here: every sender records, and a sender
        # stalled inside its commit would hold that one row against all the others.
    return Counter(row["b_status"] for row in rows)


def finish_if_done(engine: Engine, campaign_id: int) -> bool:
    """A sending campaign with no pending, in-flight or deferred rows is done."""
    with engine.begin() as conn:
        left = conn.execute(
            sa.select(sa.func.count())
            .select_from(deliveries)
            .where(
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.status.in_(["pending", "sending", "deferred"]),
            )
        ).scalar_one()
        if left:
            return False
        conn.execute(
            sa.update(campaigns)
            .where(campaigns.c.id == campaign_id, campaigns.c.state == "sending")
            .values(state="done", updated_at=utcnow())
        )
    return True


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
    language: str | None = None  # the issue's own (None: a campaign from before editions)
    # Its translated editions: language and subject.
    editions: tuple[tuple[str, str], ...] = ()


def sent_issues(conn: Connection) -> list[SentIssue]:
    """Issues with a live delivery sent (test sends are not in the ledger), newest first;
    for an issue sent in several campaigns, the latest campaign's file, subject and
    editions."""
    query = (
        sa.select(
            campaigns.c.id,
            campaigns.c.issue,
            campaigns.c.subject,
            campaigns.c.issue_path,
            campaigns.c.created_at,
        )
        .where(
            sa.exists().where(
                deliveries.c.campaign_id == campaigns.c.id, deliveries.c.status == "sent"
            )
        )
        .order_by(campaigns.c.id)
    )
    first: dict[str, dt.datetime] = {}
    latest: dict[str, tuple[int, str, str]] = {}
    for campaign_id, issue, subject, path, created in conn.execute(query).all():
        first.setdefault(issue, created)
        latest[issue] = (campaign_id, subject, path)
    rows = conn.execute(
        sa.select(
            campaign_editions.c.campaign_id,
            campaign_editions.c.language,
            campaign_editions.c.source,
            campaign_editions.c.subject,
        ).where(campaign_editions.c.campaign_id.in_([c for c, _, _ in latest.values()]))
    ).all()
    languages_of: dict[int, list[tuple[str, bool, str]]] = {}
    for campaign_id, language, is_source, subject in rows:
        languages_of.setdefault(campaign_id, []).append((language, is_source, subject))
    found = []
    for issue, (campaign_id, subject, path) in latest.items():
        editions = sorted(languages_of.get(campaign_id, []))
        own = next((language for language, is_source, _ in editions if is_source), None)
        others = tuple((language, s) for language, is_source, s in editions if not is_source)
        found.append(
            SentIssue(issue, subject, path, _utc(first[issue]) or first[issue], own, others)
        )
    return sorted(found, key=lambda i: i.first_sent, reverse=True)


def message_hash(engine: Engine, campaign_id: int, subscriber_id: int) -> str | None:
    """The fingerprint (message.record_digest) of the bytes last sent to the subscriber
    in the campaign."""
    with engine.connect() as conn:
        found: str | None = conn.execute(
            sa.select(deliveries.c.message_hash).where(
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.subscriber_id == subscriber_id,
            )
        ).scalar()
    return found


def release_dead(engine: Engine, campaign_id: int, host: str, alive: Callable[[int], bool]) -> int:
    """End the leases of senders on this machine whose process is gone (a crash, a kill):
    their rows are due now instead of when the lease runs out. A sender elsewhere is
    only ever taken over when its lease expires."""
    with engine.begin() as conn:
        owners = conn.execute(
            sa.select(deliveries.c.lease_owner)
            .where(
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.status == "sending",
                deliveries.c.lease_owner.is_not(None),
            )
            .distinct()
        ).scalars()
        dead = []
        for owner in owners:
            name, _, rest = owner.partition(":")
            pid = rest.partition(":")[0]
            if name == host and pid.isdigit() and not alive(int(pid)):
                dead.append(owner)
        if not dead:
            return 0
        result = conn.execute(
            sa.update(deliveries)
            .where(
                deliveries.c.campaign_id == campaign_id,
                deliveries.c.status == "sending",
                deliveries.c.lease_owner.in_(dead),
            )
            .values(lease_until=None)
        )
    return int(result.rowcount or 0)
