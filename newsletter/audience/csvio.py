"""CSV import and export of subscribers.

An import is one transaction, read and written in batches so that a million rows need
neither a million round trips nor a million rows in memory. A bad row is reported with its
line and skipped; a file that cannot be read at all (not UTF-8, no email column) changes
nothing. Nobody who left is brought back: an unsubscribed, bounced or complained subscriber
stays so, an unsubscribed list membership stays unsubscribed, and an erased address is
refused.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter import fields
from newsletter.audience.addresses import address_key, normalize_address, suppression_hash
from newsletter.audience.db import (
    SUBSCRIBER_STATUSES,
    SUBSCRIPTION_STATUSES,
    subscribers,
    subscriptions,
    suppressions,
    tags,
)
from newsletter.audience.subscribers import check_tag, find_subscribers, list_ids, on_list
from newsletter.errors import Location, NewsletterError

RESERVED = ("email", "name", "language", "status", "tags", "subscription")
MAX_FIELD = 10_000
MAX_ATTRIBUTE = 1_000
MAX_NAME = 200
MAX_PROBLEMS_KEPT = 1_000
BATCH = 5_000


@dataclass
class ImportReport:
    file: str
    list_name: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    problems: list[str] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(f"{self.file}:{line}: {reason}")

    def summary(self) -> str:
        return (
            f"Imported {self.file} into '{self.list_name}': {self.added} added, "
            f"{self.updated} updated, {self.unchanged} unchanged, {self.rejected} rejected"
        )


@dataclass
class _Row:
    line: int
    email: str
    key: str
    name: str
    language: str | None
    status: str | None
    subscription: str | None
    tags: set[str]
    attributes: dict[str, str]


def _utf8_lines(stream: IO[bytes], file: str) -> Iterator[str]:
    """Decode line by line, so that bad bytes are reported at their line."""
    for number, raw in enumerate(stream, 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NewsletterError(
                f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8 and "
                "import again (nothing was imported)",
                Location(file, number, exc.start + 1),
            ) from None


def _delimiter(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


def _records(path: Path) -> Iterator[tuple[int, list[str]] | list[str]]:
    """First the header (a list), then (line, fields) for every non-blank record."""
    file = str(path)
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise NewsletterError("no such file", Location(file)) from None
    except IsADirectoryError:
        raise NewsletterError("is a folder, not a CSV file", Location(file)) from None
    with stream:
        lines = _utf8_lines(stream, file)
        first = next(lines, None)
        if first is None or not first.strip():
            raise NewsletterError(
                "the file is empty; the first line must name the columns", Location(file)
            )

        def again() -> Iterator[str]:
            yield first
            yield from lines

        reader = csv.reader(again(), delimiter=_delimiter(first), strict=True)
        start = 1
        try:
            yield next(reader)
            start = reader.line_num + 1
            for record in reader:
                if any(value.strip() for value in record):
                    yield start, record
                start = reader.line_num + 1
        except csv.Error as exc:
            raise NewsletterError(
                f"this line cannot be read as CSV ({exc}); nothing was imported",
                Location(file, start),
            ) from None


def _header(names: list[str], file: str) -> list[str]:
    header = [n.strip().lower() for n in names]
    for i, name in enumerate(header, 1):
        if not name:
            raise NewsletterError(f"column {i} has no name in the first line", Location(file, 1))
        if not name.isprintable():
            raise NewsletterError(
                f"column {i}'s name contains a control character", Location(file, 1)
            )
        if header.count(name) > 1:
            raise NewsletterError(f"the column '{name}' appears twice", Location(file, 1))
    if "email" not in header:
        raise NewsletterError(
            f"no 'email' column; the first line has: {', '.join(header)}", Location(file, 1)
        )
    return header


@lru_cache(maxsize=256)
def _language(value: str) -> str:
    return fields.language_tag(value)


@lru_cache(maxsize=1024)
def _tags(value: str) -> frozenset[str]:
    labels = set()
    for tag in value.replace(",", " ").split():
        try:
            labels.add(fields.slug(tag))
        except ValueError as exc:
            raise ValueError(f"tag {exc}") from None
    return frozenset(labels)


class _Parser:
    """Turns one record into a _Row; column positions are worked out once per file."""

    def __init__(self, header: list[str]) -> None:
        self.width = len(header)
        self.at = {name: header.index(name) for name in RESERVED if name in header}
        self.attributes = [(i, name) for i, name in enumerate(header) if name not in RESERVED]

    def _get(self, record: list[str], name: str) -> str:
        i = self.at.get(name)
        return record[i].strip() if i is not None else ""

    def __call__(self, line: int, record: list[str]) -> _Row:
        if len(record) != self.width:
            raise ValueError(f"has {len(record)} fields; the first line names {self.width} columns")
        if max(map(len, record)) > MAX_FIELD:
            raise ValueError(f"a field is longer than {MAX_FIELD} characters")
        raw = self._get(record, "email")
        if not raw:
            raise ValueError("the email is empty")
        try:
            email = normalize_address(raw)
        except ValueError as exc:
            raise ValueError(f"'{raw}' is not a valid email address: {exc}") from None
        name = self._get(record, "name")
        if len(name) > MAX_NAME:
            raise ValueError(f"the name is longer than {MAX_NAME} characters")
        try:
            fields.header_safe(name)
        except ValueError as exc:
            raise ValueError(f"the name {exc}") from None
        language = self._get(record, "language") or None
        if language:
            _language(language)
        status = self._get(record, "status") or None
        if status and status not in SUBSCRIBER_STATUSES:
            raise ValueError(f"status '{status}' is not one of: {', '.join(SUBSCRIBER_STATUSES)}")
        subscription = self._get(record, "subscription") or None
        if subscription and subscription not in SUBSCRIPTION_STATUSES:
            raise ValueError(
                f"subscription '{subscription}' is not one of: {', '.join(SUBSCRIPTION_STATUSES)}"
            )
        attributes = {}
        for i, key in self.attributes:
            value = record[i].strip()
            if not value:
                continue
            if len(value) > MAX_ATTRIBUTE:
                raise ValueError(f"'{key}' is longer than {MAX_ATTRIBUTE} characters")
            if "\x00" in value:
                raise ValueError(f"'{key}' contains a NUL character")
            attributes[key] = value
        labels = set(_tags(self._get(record, "tags")))
        return _Row(
            line,
            email,
            address_key(email),
            name,
            language,
            status,
            subscription,
            labels,
            attributes,
        )


def import_csv(
    engine: Engine,
    path: Path | str,
    *,
    list_name: str,
    tag_names: list[str] | tuple[str, ...] = (),
    default_list: str,
    confirmed: bool = True,
    batch_size: int = BATCH,
) -> ImportReport:
    """Import a CSV file into a list in one transaction; see the module's rules."""
    path = Path(path)
    extra_tags = {check_tag(t) for t in tag_names}
    report = ImportReport(file=str(path), list_name=list_name)
    default_subscription = "confirmed" if confirmed else "unconfirmed"
    records = _records(path)
    header = next(records)
    assert isinstance(header, list)
    parse = _Parser(_header(header, str(path)))
    with engine.begin() as conn:
        list_id = list_ids(conn, [list_name], create=default_list)[list_name]
        batch: list[_Row] = []
        for item in records:
            assert isinstance(item, tuple)
            line, record = item
            try:
                row = parse(line, record)
            except ValueError as exc:
                report.reject(line, str(exc))
                continue
            row.tags |= extra_tags
            row.subscription = row.subscription or default_subscription
            batch.append(row)
            if len(batch) >= batch_size:
                _apply(conn, batch, list_id, path.name, report)
                batch = []
        if batch:
            _apply(conn, batch, list_id, path.name, report)
    return report


def _apply(
    conn: Connection, batch: list[_Row], list_id: int, source: str, report: ImportReport
) -> None:
    keys = list({row.key for row in batch})
    existing: dict[str, dict[str, Any]] = {
        r.email_key: dict(r._mapping)
        for r in conn.execute(
            sa.select(
                subscribers.c.id,
                subscribers.c.email_key,
                subscribers.c.name,
                subscribers.c.language,
                subscribers.c.attributes,
                subscribers.c.status,
            ).where(subscribers.c.email_key.in_(keys))
        )
    }
    hashes = {suppression_hash(k): k for k in keys}
    suppressed = {
        hashes[h]
        for h in conn.execute(
            sa.select(suppressions.c.email_hash).where(suppressions.c.email_hash.in_(list(hashes)))
        ).scalars()
    }
    ids = [e["id"] for e in existing.values()]
    memberships = (
        dict(
            conn.execute(
                sa.select(subscriptions.c.subscriber_id, subscriptions.c.status).where(
                    subscriptions.c.list_id == list_id, subscriptions.c.subscriber_id.in_(ids)
                )
            ).all()
        )
        if ids
        else {}
    )
    labels: dict[int, set[str]] = {}
    if ids:
        for sid, tag in conn.execute(
            sa.select(tags.c.subscriber_id, tags.c.tag).where(tags.c.subscriber_id.in_(ids))
        ):
            labels.setdefault(sid, set()).add(tag)

    # What each subscriber should end up as, merging duplicate rows in file order.
    final: dict[str, dict[str, Any]] = {}
    for row in batch:
        if row.key in suppressed:
            report.reject(row.line, f"{row.email} was erased on request; not imported")
            continue
        before = final.get(row.key)
        if before is None and row.key in existing:
            old = existing[row.key]
            before = {
                **old,
                "attributes": dict(old["attributes"] or {}),
                "tags": set(labels.get(old["id"], ())),
                "subscription": memberships.get(old["id"]),
                "email": None,
            }
        after = _merge(before, row)
        final[row.key] = after
        if before is None:
            report.added += 1
        elif after == before:
            report.unchanged += 1
        else:
            report.updated += 1

    # One timestamp per statement, computed by the database: binding a datetime on every
    # row costs more than the rest of the row.
    now = sa.func.current_timestamp()
    new = [(k, v) for k, v in final.items() if k not in existing]
    if new:
        # Plain executemany, then one SELECT for the ids: RETURNING with many rows falls
        # back to a statement per row on SQLite.
        conn.execute(
            sa.insert(subscribers).values(consent_at=now, created_at=now, updated_at=now),
            [
                {
                    "email": v["email"],
                    "email_key": k,
                    "name": v["name"],
                    "language": v["language"],
                    "attributes": v["attributes"],
                    "status": v["status"],
                    "consent_source": source,
                }
                for k, v in new
            ],
        )
        new_ids = dict(
            conn.execute(
                sa.select(subscribers.c.email_key, subscribers.c.id).where(
                    subscribers.c.email_key.in_([k for k, _ in new])
                )
            ).all()
        )
        for key, state in new:
            state["id"] = new_ids[key]
    changed = [
        v
        for key, v in final.items()
        if key in existing
        and _fields(v)
        != _fields({**existing[key], "attributes": existing[key]["attributes"] or {}})
    ]
    if changed:
        conn.execute(
            sa.update(subscribers)
            .where(subscribers.c.id == sa.bindparam("b_id"))
            .values(
                name=sa.bindparam("b_name"),
                language=sa.bindparam("b_language"),
                attributes=sa.bindparam("b_attributes", type_=sa.JSON),
                status=sa.bindparam("b_status"),
                updated_at=now,
            ),
            [
                {
                    "b_id": v["id"],
                    "b_name": v["name"],
                    "b_language": v["language"],
                    "b_attributes": v["attributes"],
                    "b_status": v["status"],
                }
                for v in changed
            ],
        )
    join = [v for v in final.values() if memberships.get(v["id"]) is None]
    if join:
        conn.execute(
            sa.insert(subscriptions).values(list_id=list_id, created_at=now, updated_at=now),
            [{"subscriber_id": v["id"], "status": v["subscription"]} for v in join],
        )
    confirm = [
        v for v in final.values() if memberships.get(v["id"]) not in (None, v["subscription"])
    ]
    if confirm:
        conn.execute(
            sa.update(subscriptions)
            .where(
                subscriptions.c.subscriber_id == sa.bindparam("b_id"),
                subscriptions.c.list_id == list_id,
            )
            .values(status=sa.bindparam("b_status"), updated_at=now),
            [{"b_id": v["id"], "b_status": v["subscription"]} for v in confirm],
        )
    new_tags = [
        {"subscriber_id": v["id"], "tag": t}
        for v in final.values()
        for t in sorted(v["tags"] - labels.get(v["id"], set()))
    ]
    if new_tags:
        conn.execute(sa.insert(tags), new_tags)


def _fields(state: dict[str, Any]) -> tuple[Any, ...]:
    return state["name"], state["language"], state["attributes"], state["status"]


# Subscriber statuses a file may set: it can record that someone left, never undo it.
def _merge(before: dict[str, Any] | None, row: _Row) -> dict[str, Any]:
    if before is None:
        return {
            "id": None,
            "email": row.email,
            "name": row.name,
            "language": row.language,
            "attributes": dict(row.attributes),
            "status": row.status or "active",
            "tags": set(row.tags),
            "subscription": row.subscription,
        }
    after = {
        **before,
        "attributes": {**before["attributes"], **row.attributes},
        "tags": before["tags"] | row.tags,
    }
    if row.name:
        after["name"] = row.name
    if row.language:
        after["language"] = row.language
    if row.status and row.status != "active" and before["status"] == "active":
        after["status"] = row.status
    # A list membership only moves forward: unconfirmed to confirmed, or to unsubscribed.
    current, wanted = before["subscription"], row.subscription
    if (
        current is None
        or (current == "unconfirmed" and wanted in ("confirmed", "unsubscribed"))
        or (current == "confirmed" and wanted == "unsubscribed")
    ):
        after["subscription"] = wanted
    return after


def export_csv(engine: Engine, out: IO[str], *, list_name: str | None = None) -> int:
    """Write subscribers as CSV that imports back to the same data; returns the row count."""
    with engine.connect() as conn:
        where = [on_list(list_ids(conn, [list_name])[list_name])] if list_name else []
        keys: set[str] = set()
        for attributes in conn.execute(sa.select(subscribers.c.attributes).where(*where)).scalars():
            keys.update(attributes or {})
    attribute_columns = sorted(keys - set(RESERVED))
    header = ["email", "name", "language", "status", "tags"]
    if list_name:
        header.append("subscription")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header + attribute_columns)
    count = 0
    for s in find_subscribers(engine, list_name=list_name, batch_size=1000):
        record = [s.email, s.name, s.language or "", s.status, " ".join(s.tags)]
        if list_name:
            record.append(s.lists[list_name])
        record.extend(s.attributes.get(k, "") for k in attribute_columns)
        writer.writerow(record)
        count += 1
    return count


def export_to(engine: Engine, path: Path | None, *, list_name: str | None = None) -> int:
    """Export to a file, written whole or not at all, or to standard output."""
    if path is None:
        import sys

        return export_csv(engine, sys.stdout, list_name=list_name)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as out:
            count = export_csv(engine, out, list_name=list_name)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return count
