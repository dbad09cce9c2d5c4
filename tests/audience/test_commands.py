"""The subscriber, list and database commands as a user sees them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.store import SCHEMA_VERSION, make_engine, schema_version, upgrade
from tests.conftest import ROOT

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_add_show_and_list(engine: sa.Engine) -> None:
    assert run(
        "subscribers", "add", "Ana@Example.com", "--name", "Ana Pérez", "--tag", "press"
    ) == (
        0,
        "Added Ana@example.com (lists: bulletin)\n",
        "",
    )
    assert run("lists", "create", "events")[0] == 0
    assert run("subscribers", "add", "ana@example.com", "--list", "events", "--language", "es") == (
        0,
        "Updated Ana@example.com (lists: bulletin, events)\n",
        "",
    )
    code, out, _ = run("subscribers", "show", "ANA@example.com")
    assert code == 0
    lines = out.splitlines()
    assert lines[:7] == [
        "email:      Ana@example.com",
        "name:       Ana Pérez",
        "language:   es",
        "status:     active",
        "lists:      bulletin (confirmed), events (confirmed)",
        "tags:       press",
        "attributes:",
    ]
    assert lines[7].startswith("consent:    added by hand, ") and lines[7].endswith(" UTC")
    run("subscribers", "add", "bo@example.com")
    assert run("subscribers", "list", "--tag", "press") == (
        0,
        "email\tname\tstatus\tlists\ttags\n"
        "Ana@example.com\tAna Pérez\tactive\tbulletin:confirmed,events:confirmed\tpress\n",
        "1 subscriber\n",
    )
    assert run("subscribers", "list", "--list", "bulletin")[2] == "2 subscribers\n"


def test_bad_input_is_one_line(engine: sa.Engine) -> None:
    assert run("subscribers", "add", "not-an-address") == (
        1,
        "",
        "Error: 'not-an-address' is not a valid email address: "
        "An email address must have an @-sign.\n",
    )
    assert run("subscribers", "add", "a@example.com", "--name", "A\nBcc: x@example.com")[2] == (
        "Error: the name must be on one line (it goes into a mail header)\n"
    )
    assert run("subscribers", "add", "a@example.com", "--language", "english")[2] == (
        "Error: 'english' is not a language code such as en, es or pt-BR\n"
    )
    assert run("subscribers", "add", "a@example.com", "--list", "events") == (
        1,
        "",
        "Error: there is no list 'events'; create it with: newsletter lists create events\n",
    )
    assert run("subscribers", "show", "nobody@example.com") == (
        1,
        "",
        "Error: no subscriber 'nobody@example.com'\n",
    )
    assert run("subscribers", "list", "--status", "gone")[2] == (
        "Error: 'gone' is not a status; use one of: active, unsubscribed, bounced, complained\n"
    )


def test_unsubscribe_and_the_way_back_is_closed(engine: sa.Engine) -> None:
    run("lists", "create", "events")
    run("subscribers", "add", "ana@example.com", "--list", "bulletin", "--list", "events")
    assert run("subscribers", "unsubscribe", "ana@example.com", "--list", "events") == (
        0,
        "Unsubscribed ana@example.com from the list 'events'\n",
        "",
    )
    assert run("subscribers", "unsubscribe", "ana@example.com") == (
        0,
        "Unsubscribed ana@example.com from everything\n",
        "",
    )
    assert "status:     unsubscribed" in run("subscribers", "show", "ana@example.com")[1]
    assert run("subscribers", "add", "ana@example.com") == (
        1,
        "",
        "Error: ana@example.com is unsubscribed; only they can subscribe again\n",
    )


def test_remove_erases_and_suppresses(engine: sa.Engine) -> None:
    run("subscribers", "add", "ana@example.com", "--tag", "press")
    assert run("subscribers", "remove", "ANA@example.com") == (
        0,
        "Erased ana@example.com; a hash of the address is kept so that imports skip it\n",
        "",
    )
    with engine.connect() as conn:
        dump = "\n".join(
            str(row)
            for table in ("subscribers", "tags", "subscriptions", "suppressions")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
        )
    assert "ana" not in dump.lower()
    assert run("subscribers", "add", "ana@example.com") == (
        1,
        "",
        "Error: ana@example.com was erased on request; it cannot be added back\n",
    )


def test_lists_list_counts(engine: sa.Engine) -> None:
    run("lists", "create", "events", "--description", "Event invitations")
    run("subscribers", "import", str(ROOT / "sample-subscribers.csv"))
    run(
        "subscribers",
        "import",
        str(ROOT / "sample-subscribers.csv"),
        "--list",
        "events",
        "--unconfirmed",
    )
    run("subscribers", "unsubscribe", "ana.perez@example.com", "--list", "events")
    assert run("lists", "list") == (
        0,
        "list      confirmed  unconfirmed  unsubscribed  description\n"
        "bulletin         12            0             0\n"
        "events            0           11             1  Event invitations\n",
        "",
    )
    assert run("lists", "create", "events")[2] == "Error: the list 'events' already exists\n"


def test_schema_is_versioned_and_upgrades_itself(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
    assert run("db", "upgrade") == (
        0,
        f"Upgraded the database from schema version 0 to {SCHEMA_VERSION}\n",
        "",
    )
    assert (
        run("db", "upgrade")[1]
        == f"The database is at schema version {SCHEMA_VERSION}; nothing to do\n"
    )
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 2  # FULL
    with engine.begin() as conn:
        conn.execute(sa.update(schema_version).values(version=SCHEMA_VERSION + 1))
    with pytest.raises(Exception, match="newer than this newsletter understands"):
        upgrade(engine)
    assert run("subscribers", "list")[2] == (
        f"Error: the database has schema version {SCHEMA_VERSION + 1}, newer than this newsletter "
        f"understands ({SCHEMA_VERSION}); upgrade newsletter\n"
    )


def test_a_database_in_a_missing_folder_is_one_line(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path}/no/such/folder/x.db")
    code, out, err = run("lists", "list")
    assert (code, out) == (1, "")
    assert err.startswith(
        f"Error: cannot open the database sqlite:///{tmp_path}/no/such/folder/x.db: "
    )
    assert err.count("\n") == 1
