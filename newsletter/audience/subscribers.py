"""Subscribers and lists: the operations behind `newsletter subscribers` and `lists`.

One rule runs through all of it: someone who left (unsubscribed, bounced, complained, or
erased) is never brought back by a tool. Only the subscriber can resubscribe.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter import fields
from newsletter.audience.addresses import address_key, normalize_address, suppression_hash
from newsletter.audience.db import (
    SUBSCRIBER_STATUSES,
    lists,
    subscribers,
    subscriptions,
    suppressions,
    tags,
)
from newsletter.errors import NewsletterError
from newsletter.store import in_batches, utcnow


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    language: str | None
    attributes: dict[str, str]
    status: str
    consent_source: str | None
    consent_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    lists: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListInfo:
    name: str
    description: str
    confirmed: int
    unconfirmed: int
    unsubscribed: int


def check_list_name(name: str) -> str:
    try:
        return fields.slug(name)
    except ValueError as exc:
        raise NewsletterError(f"list name {exc}") from None


def check_tag(tag: str) -> str:
    try:
        return fields.slug(tag)
    except ValueError as exc:
        raise NewsletterError(f"tag {exc}") from None


def list_ids(
    conn: Connection, names: Iterable[str], *, create: str | None = None
) -> dict[str, int]:
    """Ids of the named lists. The list named `create` (the default list) is made on demand;
    any other unknown name is an error."""
    wanted = {check_list_name(n) for n in names}
    found = dict(
        conn.execute(sa.select(lists.c.name, lists.c.id).where(lists.c.name.in_(wanted))).all()
    )
    for name in sorted(wanted - found.keys()):
        if name != create:
            raise NewsletterError(
                f"there is no list '{name}'; create it with: newsletter lists create {name}"
            )
        found[name] = conn.execute(
            sa.insert(lists)
            .values(name=name, description="", created_at=utcnow())
            .returning(lists.c.id)
        ).scalar_one()
    return found


def create_list(engine: Engine, name: str, description: str = "") -> None:
    check_list_name(name)
    with engine.begin() as conn:
        if conn.execute(sa.select(lists.c.id).where(lists.c.name == name)).first():
            raise NewsletterError(f"the list '{name}' already exists")
        conn.execute(
            sa.insert(lists).values(name=name, description=description, created_at=utcnow())
        )


def list_lists(engine: Engine) -> list[ListInfo]:
    def count(status: str) -> sa.ColumnElement[int]:
        return sa.func.count(subscriptions.c.subscriber_id).filter(subscriptions.c.status == status)

    query = (
        sa.select(
            lists.c.name,
            lists.c.description,
            count("confirmed"),
            count("unconfirmed"),
            count("unsubscribed"),
        )
        .select_from(lists.outerjoin(subscriptions, subscriptions.c.list_id == lists.c.id))
        .group_by(lists.c.id, lists.c.name, lists.c.description)
        .order_by(lists.c.name)
    )
    with engine.connect() as conn:
        return [ListInfo(*row) for row in conn.execute(query)]


def set_membership(conn: Connection, subscriber_id: int, list_id: int, status: str) -> None:
    """Give a subscriber this membership status on a list, adding the membership if need be."""
    now = utcnow()
    updated = conn.execute(
        sa.update(subscriptions)
        .where(subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.list_id == list_id)
        .values(status=status, updated_at=now)
    )
    if not updated.rowcount:
        conn.execute(
            sa.insert(subscriptions).values(
                subscriber_id=subscriber_id,
                list_id=list_id,
                status=status,
                created_at=now,
                updated_at=now,
            )
        )


def first_name(attributes: object) -> str:
    """A subscriber's first_name attribute, as text (empty when there is none): what the
    greeting calls them."""
    value = attributes.get("first_name") if isinstance(attributes, dict) else None
    return " ".join(value.split()) if isinstance(value, str) else ""


def insert_subscriber(
    conn: Connection,
    address: str,
    *,
    name: str,
    source: str,
    consent_at: dt.datetime | None,
    language: str | None = None,
) -> int:
    """A new active subscriber (no lists yet); returns the id."""
    now = utcnow()
    return int(
        conn.execute(
            sa.insert(subscribers)
            .values(
                email=address,
                email_key=address_key(address),
                name=name,
                language=language,
                attributes={},
                status="active",
                consent_source=source,
                consent_at=consent_at,
                created_at=now,
                updated_at=now,
            )
            .returning(subscribers.c.id)
        ).scalar_one()
    )


def on_list(list_id: int) -> sa.Exists:
    """Subscribers with any membership (whatever its status) of the list."""
    return sa.exists().where(
        subscriptions.c.subscriber_id == subscribers.c.id, subscriptions.c.list_id == list_id
    )


def is_suppressed(conn: Connection, address: str) -> bool:
    query = sa.select(suppressions.c.email_hash).where(
        suppressions.c.email_hash == suppression_hash(address)
    )
    return conn.execute(query).first() is not None


def _valid_address(email: str) -> str:
    try:
        return normalize_address(email)
    except ValueError as exc:
        raise NewsletterError(f"'{email}' is not a valid email address: {exc}") from None


def _load(conn: Connection, rows: Iterable[sa.Row[Any]]) -> list[Subscriber]:
    rows = list(rows)
    ids = [r.id for r in rows]
    memberships: dict[int, dict[str, str]] = {i: {} for i in ids}
    labels: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for sid, name, status in conn.execute(
            sa.select(subscriptions.c.subscriber_id, lists.c.name, subscriptions.c.status)
            .join(lists, lists.c.id == subscriptions.c.list_id)
            .where(subscriptions.c.subscriber_id.in_(ids))
            .order_by(lists.c.name)
        ):
            memberships[sid][name] = status
        for sid, tag in conn.execute(
            sa.select(tags.c.subscriber_id, tags.c.tag)
            .where(tags.c.subscriber_id.in_(ids))
            .order_by(tags.c.tag)
        ):
            labels[sid].append(tag)
    return [
        Subscriber(
            id=r.id,
            email=r.email,
            name=r.name,
            language=r.language,
            attributes=dict(r.attributes or {}),
            status=r.status,
            consent_source=r.consent_source,
            consent_at=r.consent_at,
            created_at=r.created_at,
            updated_at=r.updated_at,
            lists=memberships[r.id],
            tags=tuple(labels[r.id]),
        )
        for r in rows
    ]


def get_subscriber(engine: Engine, email: str) -> Subscriber:
    with engine.connect() as conn:
        return _get(conn, email)


def _get(conn: Connection, email: str) -> Subscriber:
    row = conn.execute(
        sa.select(subscribers).where(subscribers.c.email_key == address_key(email.strip()))
    ).first()
    if row is None:
        raise NewsletterError(f"no subscriber '{email.strip()}'")
    return _load(conn, [row])[0]


def add_subscriber(
    engine: Engine,
    email: str,
    *,
    name: str = "",
    language: str | None = None,
    list_names: Iterable[str] = (),
    tag_names: Iterable[str] = (),
    default_list: str,
    source: str = "added by hand",
    confirmed: bool = True,
) -> tuple[Subscriber, bool]:
    """Add a subscriber, or add lists and tags to an active one; returns (it, created)."""
    address = _valid_address(email)
    try:
        fields.header_safe(name)
    except ValueError as exc:
        raise NewsletterError(f"the name {exc}") from None
    if language is not None:
        try:
            fields.language_tag(language)
        except ValueError as exc:
            raise NewsletterError(str(exc)) from None
    wanted_tags = sorted({check_tag(t) for t in tag_names})
    now = utcnow()
    with engine.begin() as conn:
        if is_suppressed(conn, address):
            raise NewsletterError(f"{address} was erased on request; it cannot be added back")
        ids = list_ids(conn, list(list_names) or [default_list], create=default_list)
        row = conn.execute(
            sa.select(subscribers.c.id, subscribers.c.status).where(
                subscribers.c.email_key == address_key(address)
            )
        ).first()
        created = row is None
        if row is None:
            sid = insert_subscriber(
                conn, address, name=name, language=language, source=source, consent_at=now
            )
        else:
            sid = row.id
            if row.status != "active":
                raise NewsletterError(f"{address} is {row.status}; only they can subscribe again")
            changes: dict[str, Any] = {}
            if name:
                changes["name"] = name
            if language:
                changes["language"] = language
            if changes:
                conn.execute(
                    sa.update(subscribers)
                    .where(subscribers.c.id == sid)
                    .values(**changes, updated_at=now)
                )
        have = dict(
            conn.execute(
                sa.select(subscriptions.c.list_id, subscriptions.c.status).where(
                    subscriptions.c.subscriber_id == sid
                )
            ).all()
        )
        status = "confirmed" if confirmed else "unconfirmed"
        new = [lid for lid in ids.values() if lid not in have]
        if new:
            conn.execute(
                sa.insert(subscriptions),
                [
                    {
                        "subscriber_id": sid,
                        "list_id": lid,
                        "status": status,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for lid in new
                ],
            )
        old_tags = set(
            conn.execute(sa.select(tags.c.tag).where(tags.c.subscriber_id == sid)).scalars()
        )
        if missing := [t for t in wanted_tags if t not in old_tags]:
            conn.execute(sa.insert(tags), [{"subscriber_id": sid, "tag": t} for t in missing])
        return _get(conn, address), created


def find_subscribers(
    engine: Engine,
    *,
    status: str | None = None,
    list_name: str | None = None,
    tag: str | None = None,
    batch_size: int = 500,
) -> Iterator[Subscriber]:
    """Subscribers matching the filters, in id order, fetched in batches."""
    if status is not None and status not in SUBSCRIBER_STATUSES:
        raise NewsletterError(
            f"'{status}' is not a status; use one of: {', '.join(SUBSCRIBER_STATUSES)}"
        )
    conditions: list[sa.ColumnElement[bool]] = []
    with engine.connect() as conn:
        if status:
            conditions.append(subscribers.c.status == status)
        if list_name:
            lid = list_ids(conn, [list_name])[list_name]
            conditions.append(on_list(lid))
        if tag:
            conditions.append(
                sa.exists().where(
                    tags.c.subscriber_id == subscribers.c.id, tags.c.tag == check_tag(tag)
                )
            )
        query = sa.select(subscribers).where(*conditions)
        for rows in in_batches(conn, query, subscribers.c.id, batch_size):
            yield from _load(conn, rows)


def unsubscribe(engine: Engine, email: str, list_name: str | None = None) -> Subscriber:
    """Unsubscribe from one list, or from everything (the subscriber's status)."""
    with engine.begin() as conn:
        current = _get(conn, email)
        if list_name is not None and list_name not in current.lists:
            raise NewsletterError(f"{current.email} is not on the list '{list_name}'")
        unsubscribe_id(conn, current.id, list_name)
        return _get(conn, email)


def unsubscribe_id(conn: Connection, subscriber_id: int, list_name: str | None = None) -> bool:
    """What an unsubscribe changes, wherever it comes from (the CLI, the one-click POST, a
    mailto): from one list, that membership; from everything, the subscriber's status and
    every membership. Doing it again changes nothing. False when there is nobody (or no
    such list) to unsubscribe."""
    now = utcnow()
    where = subscriptions.c.subscriber_id == subscriber_id
    if list_name is not None:
        list_id = conn.execute(sa.select(lists.c.id).where(lists.c.name == list_name)).scalar()
        if list_id is None:
            return False
        where = sa.and_(where, subscriptions.c.list_id == list_id)
    else:
        found = conn.execute(
            sa.select(subscribers.c.id).where(subscribers.c.id == subscriber_id)
        ).first()
        if found is None:
            return False
        conn.execute(
            sa.update(subscribers)
            .where(subscribers.c.id == subscriber_id, subscribers.c.status == "active")
            .values(status="unsubscribed", updated_at=now)
        )
    conn.execute(
        sa.update(subscriptions)
        .where(where, subscriptions.c.status != "unsubscribed")
        .values(status="unsubscribed", updated_at=now)
    )
    return True


@dataclass(frozen=True)
class ListChoice:
    name: str
    description: str
    on: bool


def get_by_id(conn: Connection, subscriber_id: int) -> Subscriber | None:
    row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
    return None if row is None else _load(conn, [row])[0]


def list_choices(conn: Connection, subscriber_id: int) -> list[ListChoice]:
    """Every list, and whether the subscriber is a confirmed member of it."""
    memberships = dict(
        conn.execute(
            sa.select(subscriptions.c.list_id, subscriptions.c.status).where(
                subscriptions.c.subscriber_id == subscriber_id
            )
        ).all()
    )
    return [
        ListChoice(name, description, memberships.get(lid) == "confirmed")
        for lid, name, description in conn.execute(
            sa.select(lists.c.id, lists.c.name, lists.c.description).order_by(lists.c.name)
        ).all()
    ]


def update_preferences(
    conn: Connection,
    subscriber_id: int,
    *,
    name: str,
    language: str | None,
    wanted_lists: set[str],
    resubscribe: bool,
) -> list[str] | None:
    """The subscriber's own choices, through a link only their mailbox received: name,
    language, lists (joined confirmed, left unsubscribed), and coming back after an
    unsubscribe (never after a bounce or a complaint). Returns what changed (name,
    language, lists, subscribed), or None when they are not stored. While unsubscribed
    and not coming back, their lists stay as they are: ticking one would change nothing
    they receive."""
    try:
        fields.header_safe(name)
        if language:
            fields.language_tag(language)
    except ValueError as exc:
        raise NewsletterError(f"please check your entry: {exc}") from None
    row = conn.execute(
        sa.select(subscribers.c.status, subscribers.c.name, subscribers.c.language).where(
            subscribers.c.id == subscriber_id
        )
    ).first()
    if row is None:
        return None
    changed: list[str] = []
    values: dict[str, Any] = {}
    if name != row.name:
        values["name"], changed = name, [*changed, "name"]
    if (language or None) != row.language:
        values["language"], changed = language or None, [*changed, "language"]
    coming_back = resubscribe and row.status == "unsubscribed"
    if coming_back:
        values["status"] = "active"
        changed.append("subscribed")
    if values:
        values["updated_at"] = utcnow()
        conn.execute(
            sa.update(subscribers).where(subscribers.c.id == subscriber_id).values(**values)
        )
    if row.status != "active" and not coming_back:
        return changed
    have = dict(
        conn.execute(
            sa.select(subscriptions.c.list_id, subscriptions.c.status).where(
                subscriptions.c.subscriber_id == subscriber_id
            )
        ).all()
    )
    moved = False
    for lid, list_name in conn.execute(sa.select(lists.c.id, lists.c.name)).all():
        wanted = list_name in wanted_lists
        if wanted and have.get(lid) != "confirmed":
            set_membership(conn, subscriber_id, lid, "confirmed")
            moved = True
        elif not wanted and have.get(lid) in ("confirmed", "unconfirmed"):
            set_membership(conn, subscriber_id, lid, "unsubscribed")
            moved = True
    return [*changed, "lists"] if moved else changed


def request_subscription(
    conn: Connection,
    address: str,
    *,
    name: str,
    list_name: str,
    default_list: str,
    language: str | None = None,
) -> tuple[int, str] | None:
    """A signup: the subscriber (new, or known) waits on the list, unconfirmed, until they
    confirm. Returns (subscriber id, list) to send the confirmation to, or None when they
    are already a confirmed member (nothing to send, and nothing to tell the form)."""
    list_id = conn.execute(sa.select(lists.c.id).where(lists.c.name == list_name)).scalar()
    if list_id is None:
        list_name = default_list
        list_id = list_ids(conn, [default_list], create=default_list)[default_list]
    row = conn.execute(
        sa.select(subscribers.c.id, subscribers.c.status).where(
            subscribers.c.email_key == address_key(address)
        )
    ).first()
    membership = None
    if row is None:
        sid = insert_subscriber(
            conn,
            address,
            name=name,
            source="signup form, not yet confirmed",
            consent_at=None,
            language=language,
        )
    else:
        sid = row.id
        membership = conn.execute(
            sa.select(subscriptions.c.status).where(
                subscriptions.c.subscriber_id == sid, subscriptions.c.list_id == list_id
            )
        ).scalar()
        if row.status == "active" and membership == "confirmed":
            return None
    if membership is None:
        set_membership(conn, sid, list_id, "unconfirmed")
    return sid, list_name


def confirm_subscription(conn: Connection, subscriber_id: int, list_name: str) -> bool:
    """The confirmation link was followed: active, a confirmed member, consent recorded.
    They asked to come back themselves, so an old erasure no longer applies."""
    now = utcnow()
    row = conn.execute(
        sa.select(subscribers.c.email).where(subscribers.c.id == subscriber_id)
    ).first()
    list_id = conn.execute(sa.select(lists.c.id).where(lists.c.name == list_name)).scalar()
    if row is None or list_id is None:
        return False
    conn.execute(
        sa.update(subscribers)
        .where(subscribers.c.id == subscriber_id)
        .values(
            status="active",
            consent_source="signup form, confirmed by email",
            consent_at=now,
            updated_at=now,
        )
    )
    set_membership(conn, subscriber_id, list_id, "confirmed")
    conn.execute(
        sa.delete(suppressions).where(suppressions.c.email_hash == suppression_hash(row.email))
    )
    return True


def remove_subscriber(engine: Engine, email: str) -> str:
    """Erase a subscriber for good, keeping only a hash so that imports skip them."""
    with engine.begin() as conn:
        current = _get(conn, email)
        conn.execute(sa.delete(tags).where(tags.c.subscriber_id == current.id))
        conn.execute(sa.delete(subscriptions).where(subscriptions.c.subscriber_id == current.id))
        conn.execute(sa.delete(subscribers).where(subscribers.c.id == current.id))
        if not is_suppressed(conn, current.email):
            conn.execute(
                sa.insert(suppressions).values(
                    email_hash=suppression_hash(current.email),
                    reason="erasure request",
                    created_at=utcnow(),
                )
            )
        return current.email
