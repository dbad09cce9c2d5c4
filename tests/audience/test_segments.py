"""Segments: the file's errors, their semantics in SQL, and a property test against a
plain-Python reading of the same filters."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from newsletter.audience import audience_of
from newsletter.audience.csvio import import_csv
from newsletter.audience.db import lists, subscribers, subscriptions, tags
from newsletter.audience.segments import (
    AttributeFilter,
    NamedSegment,
    Segment,
    TagFilter,
    count,
    load_segments,
    recipients,
)
from newsletter.audience.subscribers import unsubscribe
from newsletter.cli import app
from newsletter.errors import InputError, NewsletterError
from newsletter.issue import parse_issue
from newsletter.settings import Settings
from newsletter.store import upgrade, utcnow
from tests.conftest import MINIMAL_ISSUE, ROOT

SAMPLE_CSV = ROOT / "sample-subscribers.csv"
SAMPLE_SEGMENTS = ROOT / "segments.yaml"
runner = CliRunner()


def _emails(engine: sa.Engine, named: NamedSegment) -> list[str]:
    return [r.email for batch in recipients(engine, named, batch_size=3) for r in batch]


@pytest.fixture
def sample(engine: sa.Engine) -> sa.Engine:
    import_csv(engine, SAMPLE_CSV, list_name="bulletin", default_list="bulletin")
    return engine


def test_sample_segments(sample: sa.Engine) -> None:
    declared = load_segments(SAMPLE_SEGMENTS, "bulletin")
    assert declared.names() == [
        "everyone",
        "central-america",
        "panama",
        "press",
        "spanish-partners",
    ]
    assert count(sample, declared.get("everyone")) == 12
    assert _emails(sample, declared.get("panama")) == [
        "ana.perez@example.com",
        "jorge.mendez@example.com",
    ]
    assert _emails(sample, declared.get("press")) == [
        "carmen.lopez@example.com",
        "elena.ramirez@example.com",
        "hannah.baker@example.com",
    ]
    # Spanish-speaking partners, minus Elena, who is also press.
    assert _emails(sample, declared.get("spanish-partners")) == [
        "ana.perez@example.com",
        "gabriel.morales@example.com",
        "jorge.mendez@example.com",
        "luis.ortega@example.com",
    ]


def test_people_who_left_never_match(sample: sa.Engine) -> None:
    everyone = load_segments(SAMPLE_SEGMENTS, "bulletin").get("everyone")
    unsubscribe(sample, "ana.perez@example.com")
    unsubscribe(sample, "bruno.silva@example.com", "bulletin")
    with sample.begin() as conn:
        for email, status in (
            ("carmen.lopez@example.com", "bounced"),
            ("david.chen@example.com", "complained"),
        ):
            conn.execute(
                sa.update(subscribers).where(subscribers.c.email == email).values(status=status)
            )
    left = {
        "ana.perez@example.com",
        "bruno.silva@example.com",
        "carmen.lopez@example.com",
        "david.chen@example.com",
    }
    emails = _emails(sample, everyone)
    assert len(emails) == 8 and not left & set(emails)
    assert count(sample, everyone) == 8


def test_unconfirmed_members_do_not_match(engine: sa.Engine) -> None:
    import_csv(engine, SAMPLE_CSV, list_name="bulletin", default_list="bulletin", confirmed=False)
    assert count(engine, load_segments(SAMPLE_SEGMENTS, "bulletin").get("everyone")) == 0


def test_a_subscriber_on_several_lists_is_selected_once(sample: sa.Engine, tmp_path: Path) -> None:
    runner.invoke(app, ["lists", "create", "events"])
    import_csv(sample, SAMPLE_CSV, list_name="events", default_list="bulletin")
    path = tmp_path / "segments.yaml"
    path.write_text("segments:\n  both:\n    lists: [bulletin, events]\n")
    both = load_segments(path, "bulletin").get("both")
    assert count(sample, both) == 12
    assert len(_emails(sample, both)) == 12


def test_recipient_batches_are_stable_and_bounded(sample: sa.Engine) -> None:
    everyone = load_segments(SAMPLE_SEGMENTS, "bulletin").get("everyone")
    batches = list(recipients(sample, everyone, batch_size=5))
    assert [len(b) for b in batches] == [5, 5, 2]
    ids = [r.id for b in batches for r in b]
    assert ids == sorted(ids)
    again = [r.id for b in recipients(sample, everyone, batch_size=7) for r in b]
    assert again == ids


def _segments_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "segments.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "segments:\n  press:\n    tag:\n      any: [press]\n",
            ["3:5: segments.press.tag: unknown key; did you mean 'tags'?"],
        ),
        (
            "segments:\n  panama:\n    attributes:\n      country: {equals: PA, in: [CR]}\n",
            ["4:16: segments.panama.attributes.country: give exactly one of equals, in or not_in"],
        ),
        (
            "segments:\n  es:\n    language: spanish\n",
            [
                "3:15: segments.es.language[0]: 'spanish' is not a language code such as en, "
                "es or pt-BR"
            ],
        ),
        (
            "segments:\n  'bad name':\n    lists: [bulletin]\n",
            [
                "2:3: segments.bad name: 'bad name' is not a name; use letters, digits, dashes "
                "and underscores"
            ],
        ),
        (
            "segments:\n  everyone:\n    tags: {any: [x]}\n",
            [
                "2:3: 'everyone' is built in (every confirmed member of the default list); "
                "give your segment another name"
            ],
        ),
        ("segments: [a, b]\n", ["1:11: segments: must be a mapping of keys, not a list"]),
        (
            "segments:\n  a: {lists: [bulletin\n",
            [
                "3:1: YAML syntax error: did not find expected ',' or ']' "
                "(a flow sequence started at line 2, column 14)"
            ],
        ),
    ],
)
def test_segments_file_errors_have_positions(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = _segments_file(tmp_path, text)
    with pytest.raises(NewsletterError) as info:
        load_segments(path, "bulletin")
    assert info.value.lines() == [f"{path}:{line}" for line in expected]


def test_segment_naming_an_unknown_list(sample: sa.Engine, tmp_path: Path) -> None:
    path = _segments_file(tmp_path, "segments:\n  events:\n    lists: [events]\n")
    with pytest.raises(NewsletterError) as info:
        count(sample, load_segments(path, "bulletin").get("events"))
    assert (
        str(info.value)
        == f"{path}:2:3: segment 'events' names the list 'events', which does not exist"
    )


def test_missing_segments_file_leaves_everyone(tmp_path: Path) -> None:
    declared = load_segments(tmp_path / "nope.yaml", "bulletin")
    assert declared.names() == ["everyone"]


def test_issue_audience_unknown_segment_is_reported_at_the_issue(tmp_path: Path) -> None:
    issue = parse_issue(MINIMAL_ISSUE + "audience: donors\n", "issues/a.yaml")
    settings = Settings(segments_file=SAMPLE_SEGMENTS, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(NewsletterError) as info:
        audience_of(issue, settings)
    assert str(info.value) == (
        f"issues/a.yaml:12:11: audience: no segment 'donors' in {SAMPLE_SEGMENTS}; known segments: "
        "everyone, central-america, panama, press, spanish-partners"
    )


def test_sample_issue_goes_to_everyone_on_the_default_list(sample_issue) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(segments_file=SAMPLE_SEGMENTS, _env_file=None)  # type: ignore[call-arg]
    named = audience_of(sample_issue, settings)
    assert (named.name, named.lists) == ("everyone", ("bulletin",))


def test_filters_never_become_sql_text(sample: sa.Engine, tmp_path: Path) -> None:
    nasty = "x') OR 1=1 --"
    path = _segments_file(
        tmp_path, f'segments:\n  s:\n    attributes:\n      country: {{equals: "{nasty}"}}\n'
    )
    named = load_segments(path, "bulletin").get("s")
    assert count(sample, named) == 0
    with sample.connect() as conn:
        from newsletter.audience.segments import condition

        compiled = sa.select(subscribers.c.id).where(condition(conn, named)).compile(sample)
    assert nasty not in str(compiled)
    assert nasty in compiled.params.values()


def test_segments_cli(sample: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SEGMENTS_FILE", str(SAMPLE_SEGMENTS))
    result = runner.invoke(app, ["segments", "list"])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "segment           recipients  description",
        "everyone                  12  every confirmed member of 'bulletin'",
        "central-america            7  Readers in Central America",
        "panama                     2  Readers in Panama",
        "press                      3  Journalists, for press releases",
        "spanish-partners           4  Spanish-speaking partner organizations, not the press",
    ]
    result = runner.invoke(app, ["segments", "show", "press", "--limit", "2"])
    assert result.stdout == (
        "segment:     press\n"
        "description: Journalists, for press releases\n"
        "lists:       bulletin\n"
        "recipients:  3\n"
        "  carmen.lopez@example.com  Carmen López\n"
        "  elena.ramirez@example.com  Elena Ramírez\n"
        "  ... and 1 more\n"
    )
    result = runner.invoke(app, ["segments", "show", "donors"])
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: no segment 'donors' in {SAMPLE_SEGMENTS}; known segments: everyone, "
        "central-america, panama, press, spanish-partners\n",
    )


# The property: SQL membership equals a plain-Python evaluation of the same filter.

LISTS = ("bulletin", "events")
TAGS = ("press", "partner", "vip")
COUNTRIES = ("PA", "CR", "MX")
LANGUAGES = ("en", "es")

subscriber_strategy = st.fixed_dictionaries(
    {
        "status": st.sampled_from(
            ("active", "active", "active", "unsubscribed", "bounced", "complained")
        ),
        "lists": st.dictionaries(
            st.sampled_from(LISTS), st.sampled_from(("confirmed", "unconfirmed", "unsubscribed"))
        ),
        "tags": st.sets(st.sampled_from(TAGS)),
        "attributes": st.dictionaries(
            st.sampled_from(("country", "sector")), st.sampled_from(COUNTRIES)
        ),
        "language": st.none() | st.sampled_from(LANGUAGES),
    }
)
values = st.lists(st.sampled_from(COUNTRIES), min_size=1, max_size=2, unique=True)
rule_strategy = st.one_of(
    st.builds(AttributeFilter, equals=st.sampled_from(COUNTRIES)),
    st.builds(lambda v: AttributeFilter(**{"in": v}), values),
    st.builds(AttributeFilter, not_in=values),
)
tag_lists = st.lists(st.sampled_from(TAGS), max_size=2, unique=True)
segment_strategy = st.builds(
    Segment,
    lists=st.none() | st.lists(st.sampled_from(LISTS), min_size=1, max_size=2, unique=True),
    tags=st.builds(TagFilter, any=tag_lists, all=tag_lists, none=tag_lists),
    attributes=st.dictionaries(st.sampled_from(("country", "sector")), rule_strategy, max_size=2),
    language=st.none() | st.lists(st.sampled_from(LANGUAGES), min_size=1, max_size=2, unique=True),
)


def _matches(person: dict, segment: Segment) -> bool:  # type: ignore[type-arg]
    wanted = segment.lists or ["bulletin"]
    if person["status"] != "active" or not any(
        person["lists"].get(n) == "confirmed" for n in wanted
    ):
        return False
    have = person["tags"]
    if segment.tags.any and not have & set(segment.tags.any):
        return False
    if not set(segment.tags.all) <= have or have & set(segment.tags.none):
        return False
    for key, rule in segment.attributes.items():
        value = person["attributes"].get(key)
        if rule.equals is not None and value != rule.equals:
            return False
        if rule.in_ is not None and value not in rule.in_:
            return False
        if rule.not_in is not None and value in rule.not_in:
            return False
    return segment.language is None or person["language"] in segment.language


def _fill(engine: sa.Engine, people: list[dict]) -> list[int]:  # type: ignore[type-arg]
    now = utcnow()
    with engine.begin() as conn:
        list_id = {
            name: conn.execute(
                sa.insert(lists).values(name=name, created_at=now).returning(lists.c.id)
            ).scalar_one()
            for name in LISTS
        }
        ids = []
        for i, person in enumerate(people):
            sid = conn.execute(
                sa.insert(subscribers)
                .values(
                    email=f"p{i}@example.com",
                    email_key=f"p{i}@example.com",
                    name="",
                    language=person["language"],
                    attributes=person["attributes"],
                    status=person["status"],
                    created_at=now,
                    updated_at=now,
                )
                .returning(subscribers.c.id)
            ).scalar_one()
            ids.append(sid)
            for name, status in person["lists"].items():
                conn.execute(
                    sa.insert(subscriptions).values(
                        subscriber_id=sid,
                        list_id=list_id[name],
                        status=status,
                        created_at=now,
                        updated_at=now,
                    )
                )
            for tag in person["tags"]:
                conn.execute(sa.insert(tags).values(subscriber_id=sid, tag=tag))
    return ids


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    people=st.lists(subscriber_strategy, max_size=25),
    segments=st.lists(segment_strategy, min_size=1, max_size=4),
)
def test_membership_equals_a_plain_python_evaluation(
    people: list[dict], segments: list[Segment]
) -> None:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as folder:
        engine = sa.create_engine(f"sqlite:///{Path(folder) / 'p.db'}")
        upgrade(engine)
        ids = _fill(engine, people)
        for segment in segments:
            named = NamedSegment("s", segment, tuple(segment.lists or ["bulletin"]), None)
            expected = [
                sid for sid, person in zip(ids, people, strict=True) if _matches(person, segment)
            ]
            got = [r.id for batch in recipients(engine, named, batch_size=4) for r in batch]
            assert got == expected
            assert count(engine, named) == len(expected)
        engine.dispose()


def test_the_segment_models_reject_bad_values() -> None:
    with pytest.raises(ValueError):
        AttributeFilter()
    with pytest.raises(InputError):
        from newsletter import yamlfile
        from newsletter.audience.segments import SegmentsFile

        yamlfile.validate(
            SegmentsFile, yamlfile.parse_yaml("segments:\n  a:\n    lists: ['no way']\n", "x.yaml")
        )
