"""CSV import and export against real SQLite files (and PostgreSQL when configured)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from newsletter.audience.csvio import export_csv, import_csv
from newsletter.audience.db import subscribers, subscriptions
from newsletter.audience.subscribers import get_subscriber, remove_subscriber, unsubscribe
from newsletter.cli import app
from newsletter.errors import NewsletterError
from tests.conftest import ROOT

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bad_csv"
SAMPLE = ROOT / "sample-subscribers.csv"
runner = CliRunner()


def _import(engine: sa.Engine, path: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    options = {"list_name": "bulletin", "default_list": "bulletin", **kwargs}
    return import_csv(engine, path, **options)  # type: ignore[arg-type]


def _count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar_one())


def _write(tmp_path: Path, text: str | bytes, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.csv")), ids=lambda p: p.stem)
def test_bad_csv_corpus(engine: sa.Engine, path: Path) -> None:
    expected = [f"{path}{line}" for line in path.with_suffix(".expected").read_text().splitlines()]
    result = runner.invoke(app, ["subscribers", "import", str(path)])
    assert result.stderr.splitlines() == expected
    if result.exit_code == 0:
        assert result.stdout.startswith(f"Imported {path} into 'bulletin': ")
    else:
        assert result.stdout == ""
        assert _count(engine) == 0


def test_good_rows_of_a_bad_file_are_imported(engine: sa.Engine) -> None:
    report = _import(engine, CORPUS / "bad-rows.csv")
    assert (report.added, report.updated, report.unchanged, report.rejected) == (2, 0, 0, 6)
    quoted = get_subscriber(engine, "ok3@example.com")
    assert quoted.name == "Quoted, Name"
    assert quoted.attributes == {"country": "C,R"}
    assert quoted.lists == {"bulletin": "confirmed"}


def test_a_fatal_error_late_in_the_file_imports_nothing(engine: sa.Engine, tmp_path: Path) -> None:
    _import(engine, SAMPLE)
    before = _count(engine)
    good = "".join(f"new{i}@example.com,New {i}\n" for i in range(12_000))
    path = _write(tmp_path, b"email,name\n" + good.encode() + b"late@example.com,Caf\xe9\n")
    with pytest.raises(NewsletterError) as info:
        _import(engine, path, batch_size=1000)
    assert str(info.value) == (
        f"{path}:12002:21: not UTF-8 text (byte 0xe9); save the file as UTF-8 and import again "
        "(nothing was imported)"
    )
    assert _count(engine) == before


def test_bom_semicolons_and_quotes(engine: sa.Engine, tmp_path: Path) -> None:
    text = (
        '\ufeffEmail;Name;Country\n"a@example.com";"Pérez; Ana";"PA"\n'
        'B@Example.com;"Bo ""B"" Li";CR\n'
    )
    report = _import(engine, _write(tmp_path, text))
    assert (report.added, report.rejected) == (2, 0)
    assert get_subscriber(engine, "a@example.com").name == "Pérez; Ana"
    b = get_subscriber(engine, "b@example.com")
    assert (b.email, b.name, b.attributes) == ("B@example.com", 'Bo "B" Li', {"country": "CR"})


def test_duplicates_merge_regardless_of_case(engine: sa.Engine, tmp_path: Path) -> None:
    text = (
        "email,name,city\nAna@Example.com,Ana,\nana@example.COM,,Panama\n"
        "ANA@EXAMPLE.COM,Ana,Panama\n"
    )
    report = _import(engine, _write(tmp_path, text))
    assert (report.added, report.updated, report.unchanged, report.rejected) == (1, 1, 1, 0)
    assert _count(engine) == 1
    ana = get_subscriber(engine, "ANA@example.com")
    assert (ana.email, ana.name, ana.attributes) == ("Ana@example.com", "Ana", {"city": "Panama"})


def test_duplicates_across_batches_merge_too(engine: sa.Engine, tmp_path: Path) -> None:
    rows = "".join(f"p{i}@example.com,P{i}\n" for i in range(30))
    path = _write(tmp_path, "email,name\n" + rows + "P3@EXAMPLE.COM,Renamed\n")
    report = _import(engine, path, batch_size=7)
    assert (report.added, report.updated) == (30, 1)
    assert get_subscriber(engine, "p3@example.com").name == "Renamed"


def test_reimport_reports_updated_and_unchanged(engine: sa.Engine, tmp_path: Path) -> None:
    first = _import(engine, SAMPLE)
    assert (first.added, first.updated, first.unchanged, first.rejected) == (12, 0, 0, 0)
    again = _import(engine, SAMPLE)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 12)
    changed = _write(tmp_path, "email,name\nana.perez@example.com,Ana P.\nnew@example.com,New\n")
    third = _import(engine, changed, tag_names=["2021"])
    assert (third.added, third.updated, third.unchanged) == (1, 1, 0)
    ana = get_subscriber(engine, "ana.perez@example.com")
    assert ana.name == "Ana P."
    assert ana.tags == ("2021", "partner")
    assert ana.attributes == {
        "country": "PA",
        "first_name": "Ana",
        "organization": "Ministry of Labour",
    }


@pytest.mark.parametrize("left", ["unsubscribed", "bounced", "complained"])
def test_reimport_never_brings_back_someone_who_left(
    engine: sa.Engine, tmp_path: Path, left: str
) -> None:
    _import(engine, SAMPLE)
    with engine.begin() as conn:
        conn.execute(
            sa.update(subscribers)
            .where(subscribers.c.email_key == "ana.perez@example.com")
            .values(status=left)
        )
    report = _import(engine, _write(tmp_path, "email,status\nana.perez@example.com,active\n"))
    assert report.rejected == 0
    assert get_subscriber(engine, "ana.perez@example.com").status == left


def test_an_unsubscribed_membership_stays_unsubscribed(engine: sa.Engine) -> None:
    _import(engine, SAMPLE)
    unsubscribe(engine, "ana.perez@example.com", "bulletin")
    _import(engine, SAMPLE)
    ana = get_subscriber(engine, "ana.perez@example.com")
    assert ana.lists == {"bulletin": "unsubscribed"}
    assert ana.status == "active"


def test_a_file_can_record_that_someone_left(engine: sa.Engine, tmp_path: Path) -> None:
    _import(engine, SAMPLE)
    _import(engine, _write(tmp_path, "email,status\nana.perez@example.com,bounced\n"))
    assert get_subscriber(engine, "ana.perez@example.com").status == "bounced"


def test_an_erased_address_is_refused(engine: sa.Engine, tmp_path: Path) -> None:
    _import(engine, SAMPLE)
    remove_subscriber(engine, "Ana.Perez@example.com")
    path = _write(tmp_path, "email\nANA.PEREZ@example.com\nother@example.com\n")
    report = _import(engine, path)
    assert report.problems == [
        f"{path}:2: ANA.PEREZ@example.com was erased on request; not imported"
    ]
    assert (report.added, report.rejected) == (1, 1)
    with pytest.raises(NewsletterError, match="no subscriber"):
        get_subscriber(engine, "ana.perez@example.com")


def test_unconfirmed_import_then_confirmed_import(engine: sa.Engine) -> None:
    _import(engine, SAMPLE, confirmed=False)
    assert get_subscriber(engine, "ana.perez@example.com").lists == {"bulletin": "unconfirmed"}
    report = _import(engine, SAMPLE)
    assert report.updated == 12
    assert get_subscriber(engine, "ana.perez@example.com").lists == {"bulletin": "confirmed"}


def test_consent_source_is_the_file_name(engine: sa.Engine) -> None:
    _import(engine, SAMPLE)
    ana = get_subscriber(engine, "ana.perez@example.com")
    assert ana.consent_source == "sample-subscribers.csv"
    assert ana.consent_at is not None


def test_unknown_list_is_an_error_but_the_default_list_is_made(engine: sa.Engine) -> None:
    with pytest.raises(NewsletterError) as info:
        _import(engine, SAMPLE, list_name="events")
    assert (
        str(info.value)
        == "there is no list 'events'; create it with: newsletter lists create events"
    )
    assert _count(engine) == 0
    assert _import(engine, SAMPLE).added == 12


def test_oversized_field_is_a_rejected_row(engine: sa.Engine, tmp_path: Path) -> None:
    path = _write(
        tmp_path, "email,bio\nbig@example.com," + "x" * 20_000 + "\nok@example.com,short\n"
    )
    report = _import(engine, path)
    assert report.problems == [f"{path}:2: a field is longer than 10000 characters"]
    assert report.added == 1


def _export(engine: sa.Engine, list_name: str | None = None) -> str:
    out = io.StringIO()
    export_csv(engine, out, list_name=list_name)
    return out.getvalue()


@pytest.mark.parametrize("list_name", [None, "bulletin"])
def test_export_imports_back_to_the_same_data(
    engine: sa.Engine, tmp_path: Path, list_name: str | None
) -> None:
    _import(engine, SAMPLE, tag_names=["sample"])
    unsubscribe(engine, "bruno.silva@example.com", "bulletin")
    unsubscribe(engine, "farah.khan@example.com")
    first = _export(engine, list_name)
    path = _write(tmp_path, first, "exported.csv")

    other = sa.create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    from newsletter.store import upgrade

    upgrade(other)
    import_csv(other, path, list_name="bulletin", default_list="bulletin")
    assert _export(other, list_name) == first
    assert len(first.splitlines()) == 13
    assert "farah.khan@example.com,Farah Khan,en,unsubscribed," in first
    if list_name:
        assert ",unsubscribed,BR," in first  # bruno's membership, not his status
        with other.connect() as conn:
            statuses = sorted(conn.execute(sa.select(subscriptions.c.status)).scalars())
        assert statuses.count("unsubscribed") == 2


def test_export_cli_writes_a_file(engine: sa.Engine, tmp_path: Path) -> None:
    _import(engine, SAMPLE)
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["subscribers", "export", "--list", "bulletin", "--out", str(out)])
    assert (result.exit_code, result.stdout) == (0, f"Exported 12 subscribers to {out}\n")
    assert out.read_text(encoding="utf-8") == _export(engine, "bulletin")
