"""Use cases on subscribers: what the editor does from the CLI, and what a subscriber does
on the web (through a signed link or the signup form).

The web's state-changing use cases take the caller's connection, so that the web service
can render its answer inside the same transaction: a page that fails to render leaves the
database as it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter import tokens
from newsletter.audience import declared_segments
from newsletter.audience import subscribers as audience
from newsletter.audience.addresses import normalize_address
from newsletter.audience.csvio import ImportReport, export_to, import_csv
from newsletter.audience.segments import NamedSegment, count, recipients
from newsletter.audience.subscribers import ListChoice, ListInfo, Subscriber
from newsletter.errors import NewsletterError
from newsletter.services import database
from newsletter.settings import Settings

# The editor's use cases --------------------------------------------------------------


def add(
    settings: Settings,
    email: str,
    *,
    name: str = "",
    language: str | None = None,
    list_names: list[str] | None = None,
    tag_names: list[str] | None = None,
) -> tuple[Subscriber, bool]:
    return audience.add_subscriber(
        database(settings),
        email,
        name=name,
        language=language,
        list_names=list_names or [],
        tag_names=tag_names or [],
        default_list=settings.default_list,
    )


def import_file(
    settings: Settings,
    path: Path,
    *,
    list_name: str | None = None,
    tag_names: list[str] | None = None,
    confirmed: bool = True,
) -> ImportReport:
    return import_csv(
        database(settings),
        path,
        list_name=list_name or settings.default_list,
        tag_names=tag_names or [],
        default_list=settings.default_list,
        confirmed=confirmed,
    )


def export_file(settings: Settings, out: Path | None, *, list_name: str | None = None) -> int:
    return export_to(database(settings), out, list_name=list_name)


def show(settings: Settings, email: str) -> Subscriber:
    return audience.get_subscriber(database(settings), email)


def find(
    settings: Settings,
    *,
    status: str | None = None,
    list_name: str | None = None,
    tag: str | None = None,
) -> Iterator[Subscriber]:
    return audience.find_subscribers(
        database(settings), status=status, list_name=list_name, tag=tag
    )


def unsubscribe_address(settings: Settings, email: str, list_name: str | None) -> Subscriber:
    return audience.unsubscribe(database(settings), email, list_name)


def erase(settings: Settings, email: str) -> str:
    """An erasure request: everything goes but a hash that keeps imports from bringing
    the address back."""
    return audience.remove_subscriber(database(settings), email)


def create_list(settings: Settings, name: str, description: str = "") -> None:
    audience.create_list(database(settings), name, description)


def lists(settings: Settings) -> list[ListInfo]:
    return audience.list_lists(database(settings))


def segments(settings: Settings) -> list[tuple[NamedSegment, int]]:
    """Every declared segment with its recipient count."""
    declared = declared_segments(settings)
    engine = database(settings)
    return [(declared.get(n), count(engine, declared.get(n))) for n in declared.names()]


def segment(settings: Settings, name: str, limit: int) -> tuple[NamedSegment, int, list[Any]]:
    """A segment, its count and its first `limit` recipients."""
    named = declared_segments(settings).get(name)
    engine = database(settings)
    first: list[Any] = []
    for batch in recipients(engine, named, batch_size=max(1, min(limit, 1000))):
        first.extend(batch[: limit - len(first)])
        if len(first) >= limit:
            break
    return named, count(engine, named), first


# What a subscriber does on the web -----------------------------------------------------


@dataclass(frozen=True)
class Unsubscribed:
    """What an unsubscribe did: from everything, or from one list (list_name)."""

    subscriber_id: int
    list_name: str | None
    changed: bool


def unsubscribe(conn: Connection, subscriber_id: int, scope: str) -> Unsubscribed:
    """The one-click POST and the mailto unsubscribe: a campaign's link leaves everything,
    a list's link that list, a test send's link nothing."""
    kind = tokens.kind_of(scope)
    if kind == tokens.LIST:
        name = scope.removeprefix("l-")
        return Unsubscribed(subscriber_id, name, audience.unsubscribe_id(conn, subscriber_id, name))
    if kind == tokens.CAMPAIGN:
        return Unsubscribed(subscriber_id, None, audience.unsubscribe_id(conn, subscriber_id))
    return Unsubscribed(subscriber_id, None, False)


def unsubscribe_one_click(conn: Connection, subscriber_id: int, scope: str) -> Unsubscribed:
    """The unsubscribe link of an email (RFC 8058 one-click): unsubscribe(), and, when it
    changed something through a campaign's link, an event that the campaign's report
    counts (the mailbox records its own for mailto unsubscribes)."""
    from newsletter.mailbox.tables import events
    from newsletter.store import utcnow

    before = audience.get_by_id(conn, subscriber_id)
    done = unsubscribe(conn, subscriber_id, scope)
    leaving = before is not None and before.status == "active"
    if done.changed and leaving and tokens.kind_of(scope) == tokens.CAMPAIGN:
        conn.execute(
            sa.insert(events).values(
                subscriber_id=subscriber_id,
                campaign_id=int(scope[1:]),
                kind="unsubscribe",
                diagnostic="the unsubscribe link",
                report_hash="web",
                created_at=utcnow(),
            )
        )
    return done


@dataclass(frozen=True)
class Preferences:
    subscriber: Subscriber
    lists: list[ListChoice]
    # After a save: what it changed (name, language, lists, subscribed); None before one.
    changed: list[str] | None = None


def preferences(conn: Connection, subscriber_id: int) -> Preferences | None:
    found = audience.get_by_id(conn, subscriber_id)
    if found is None:
        return None
    return Preferences(found, audience.list_choices(conn, subscriber_id))


def update_preferences(
    conn: Connection,
    subscriber_id: int,
    *,
    name: str,
    language: str | None,
    wanted_lists: set[str],
    resubscribe: bool,
) -> Preferences | None:
    """Save the subscriber's choices; None when they are not stored (any more)."""
    changed = audience.update_preferences(
        conn,
        subscriber_id,
        name=name.strip()[:200],
        language=(language or "").strip() or None,
        wanted_lists=wanted_lists,
        resubscribe=resubscribe,
    )
    found = preferences(conn, subscriber_id)
    if changed is None or found is None:
        return None
    return dataclasses.replace(found, changed=changed)


def export_data(conn: Connection, subscriber_id: int) -> dict[str, Any] | None:
    """Everything held about a subscriber, as the JSON they download."""
    from newsletter.sending.ledger import received_by

    record = audience.get_by_id(conn, subscriber_id)
    if record is None:
        return None
    return {
        "email": record.email,
        "name": record.name,
        "language": record.language,
        "status": record.status,
        "lists": record.lists,
        "tags": list(record.tags),
        "attributes": record.attributes,
        "consent": {"source": record.consent_source, "at": iso(record.consent_at)},
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "campaigns": [
            {"campaign": r.campaign_id, "issue": r.issue, "status": r.status, "at": iso(r.at)}
            for r in received_by(conn, subscriber_id)
        ],
    }


def check_signup(email: str, name: str) -> tuple[str, str]:
    """The form's values, checked where they enter: (address, name), or NewsletterError."""
    try:
        address = normalize_address(email[:320])
    except ValueError as exc:
        raise NewsletterError(f"please check your entry: {exc}") from None
    name = name.strip()[:200]
    try:
        from newsletter.fields import header_safe

        header_safe(name)
    except ValueError as exc:
        raise NewsletterError(f"please check your entry: the name {exc}") from None
    return address, name


def signup(
    settings: Settings, address: str, name: str, list_name: str, language: str | None = None
) -> None:
    """Double opt-in: record the request (a new subscriber keeps the language of the page
    they signed up on) and mail the confirmation link in it, unless they are already a
    confirmed member. The caller answers the same whatever happens here."""
    with database(settings).begin() as conn:
        pending = audience.request_subscription(
            conn,
            address,
            name=name,
            list_name=list_name,
            default_list=settings.default_list,
            language=language,
        )
    if pending is not None:
        send_confirmation(settings, address, *pending, language=language)


def send_confirmation(
    settings: Settings,
    address: str,
    subscriber_id: int,
    list_name: str,
    *,
    language: str | None = None,
) -> None:
    from email.utils import make_msgid

    from newsletter.sending.message import confirmation_message
    from newsletter.sending.transport import make_transport

    key = tokens.signing_key(settings)
    link = settings.public_url(
        "confirm", tokens.sign(key, subscriber_id, tokens.confirm_scope(list_name))
    )
    now = int(time.time())
    raw = confirmation_message(
        settings,
        address,
        link,
        message_id=make_msgid(domain=settings.sender_domain()),
        date=dt.datetime.now(dt.UTC),
        language=language,
        expires=(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=tokens.CONFIRM_MAX_AGE)).date(),
    )
    transport = make_transport(settings, "confirmations")
    try:
        transport.open()
        transport.send(
            tokens.return_path(settings, key, "k", subscriber_id, now),
            address,
            raw,
            key=f"confirm-{subscriber_id}-{now}",
        )
    except NewsletterError:
        pass  # the relay is down; the person can ask again, and nothing leaks to the page
    finally:
        transport.close()


def confirm(conn: Connection, subscriber_id: int, list_name: str) -> bool:
    return audience.confirm_subscription(conn, subscriber_id, list_name)


def iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # SQLite keeps no zone; every time is UTC
    return moment.isoformat()
