"""Segments: named, declarative filters over subscribers, kept in a YAML file.

A filter compiles to a parameterised SQLAlchemy expression; no SQL is ever built from
strings or taken from the file. Whatever a filter says, only active subscribers with a
confirmed membership of one of the segment's lists match, each once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from sqlalchemy.engine import Engine

from newsletter import yamlfile
from newsletter.audience.db import lists, subscribers, subscriptions, tags
from newsletter.errors import Location, NewsletterError
from newsletter.fields import Language, Slug
from newsletter.store import in_batches

EVERYONE = "everyone"


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Names = Annotated[list[Slug], BeforeValidator(_one_or_many)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TagFilter(_Strict):
    any: Names = Field(default_factory=list)
    all: Names = Field(default_factory=list)
    none: Names = Field(default_factory=list)


class AttributeFilter(_Strict):
    equals: str | None = None
    in_: Annotated[list[str], BeforeValidator(_one_or_many)] | None = Field(
        default=None, alias="in"
    )
    not_in: Annotated[list[str], BeforeValidator(_one_or_many)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> AttributeFilter:
        given = [n for n in ("equals", "in_", "not_in") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of equals, in or not_in")
        return self


class Segment(_Strict):
    description: str = ""
    lists: Names | None = None
    tags: TagFilter = Field(default_factory=TagFilter)
    attributes: dict[Slug, AttributeFilter] = Field(default_factory=dict)
    language: Annotated[list[Language], BeforeValidator(_one_or_many)] | None = None


class SegmentsFile(_Strict):
    segments: dict[Slug, Segment] = Field(default_factory=dict)


@dataclass(frozen=True)
class NamedSegment:
    name: str
    segment: Segment
    lists: tuple[str, ...]
    where: Location | None


@dataclass(frozen=True)
class Segments:
    """The segments file, loaded, plus the built-in 'everyone'."""

    file: str
    default_list: str
    declared: dict[str, NamedSegment]

    def names(self) -> list[str]:
        return [EVERYONE, *sorted(self.declared)]

    def get(self, name: str) -> NamedSegment:
        if name == EVERYONE:
            return NamedSegment(
                EVERYONE,
                Segment(description=f"every confirmed member of '{self.default_list}'"),
                (self.default_list,),
                None,
            )
        if name not in self.declared:
            known = ", ".join(self.names())
            raise NewsletterError(f"no segment '{name}' in {self.file}; known segments: {known}")
        return self.declared[name]


def load_segments(path: Path | str, default_list: str) -> Segments:
    """Read the segments file; a missing file means only the built-in 'everyone'."""
    path = Path(path)
    if not path.exists():
        return Segments(str(path), default_list, {})
    doc = yamlfile.load_yaml(path, what="segments file")
    parsed = yamlfile.validate(SegmentsFile, doc, what="a segments file")
    declared = {}
    for name, segment in parsed.segments.items():
        if name == EVERYONE:
            raise NewsletterError(
                f"'{EVERYONE}' is built in (every confirmed member of the default list); "
                "give your segment another name",
                doc.location(("segments", name), key=True),
            )
        declared[name] = NamedSegment(
            name,
            segment,
            tuple(segment.lists or [default_list]),
            doc.location(("segments", name), key=True),
        )
    return Segments(str(path), default_list, declared)


def condition(conn: sa.Connection, named: NamedSegment) -> sa.ColumnElement[bool]:
    """The WHERE clause selecting the segment's recipients."""
    seg = named.segment
    found = dict(
        conn.execute(sa.select(lists.c.name, lists.c.id).where(lists.c.name.in_(named.lists))).all()
    )
    missing = [n for n in named.lists if n not in found]
    if missing:
        raise NewsletterError(
            f"segment '{named.name}' names the list '{missing[0]}', which does not exist",
            named.where,
        )
    clauses: list[sa.ColumnElement[bool]] = [
        subscribers.c.status == "active",
        sa.exists().where(
            subscriptions.c.subscriber_id == subscribers.c.id,
            subscriptions.c.list_id.in_(list(found.values())),
            subscriptions.c.status == "confirmed",
        ),
    ]

    def tagged(tag_names: list[str]) -> sa.Exists:
        return sa.exists().where(
            tags.c.subscriber_id == subscribers.c.id, tags.c.tag.in_(tag_names)
        )

    if seg.tags.any:
        clauses.append(tagged(seg.tags.any))
    for tag in seg.tags.all:
        clauses.append(tagged([tag]))
    if seg.tags.none:
        clauses.append(~tagged(seg.tags.none))
    for key, rule in seg.attributes.items():
        value = subscribers.c.attributes[key].as_string()
        if rule.equals is not None:
            clauses.append(value == rule.equals)
        elif rule.in_ is not None:
            clauses.append(value.in_(rule.in_))
        elif rule.not_in is not None:
            # A subscriber without the attribute is "not in" any set of values.
            clauses.append(sa.or_(value.is_(None), value.not_in(rule.not_in)))
    if seg.language is not None:
        clauses.append(subscribers.c.language.in_(seg.language))
    return sa.and_(*clauses)


def count(engine: Engine, named: NamedSegment) -> int:
    with engine.connect() as conn:
        where = condition(conn, named)
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(subscribers).where(where)
            ).scalar_one()
        )


def count_by_language(engine: Engine, named: NamedSegment) -> dict[str | None, int]:
    """The segment's recipients, counted by their language (None: not set)."""
    with engine.connect() as conn:
        where = condition(conn, named)
        rows = conn.execute(
            sa.select(subscribers.c.language, sa.func.count())
            .select_from(subscribers)
            .where(where)
            .group_by(subscribers.c.language)
        ).all()
    return {language: int(n) for language, n in rows}


@dataclass(frozen=True)
class RecipientRow:
    id: int
    email: str
    name: str
    language: str | None


def recipients(
    engine: Engine, named: NamedSegment, *, batch_size: int = 1000
) -> Iterator[list[RecipientRow]]:
    """The segment's recipients in id order, in batches, never all in memory at once."""
    columns = (subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.language)
    with engine.connect() as conn:
        query = sa.select(*columns).where(condition(conn, named))
        for rows in in_batches(conn, query, subscribers.c.id, batch_size):
            yield [RecipientRow(row.id, row.email, row.name, row.language) for row in rows]
