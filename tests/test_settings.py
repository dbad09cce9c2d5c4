"""Settings: documented in .env.example, read from .env, refusing header injection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.errors import ConfigError
from newsletter.settings import Settings, load_settings
from tests.conftest import ROOT


def test_every_setting_is_documented_in_env_example() -> None:
    documented = set(
        re.findall(r"^(NEWSLETTER_[A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    fields = {"NEWSLETTER_" + name.upper() for name in Settings.model_fields}
    assert documented == fields


def test_env_example_values_load(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    settings = load_settings()
    assert settings.database_url == "sqlite:///newsletter.db"
    assert settings.reply_to is None
    assert settings.secret_key is None


def test_dotenv_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "NEWSLETTER_FROM_NAME=From Dotenv\nNEWSLETTER_SECRET_KEY=s3cret\n"
    )
    settings = load_settings()
    assert settings.from_name == "From Dotenv"
    assert "s3cret" not in repr(settings)
    monkeypatch.setenv("NEWSLETTER_FROM_NAME", "From Env")
    assert load_settings().from_name == "From Env"


def test_sender_name_cannot_inject_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_FROM_NAME", "News\r\nBcc: all@example.org")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert (
        str(info.value) == "NEWSLETTER_FROM_NAME: must be on one line (it goes into a mail header)"
    )


def test_bad_base_url_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "newsletter.example.org")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "NEWSLETTER_BASE_URL: 'newsletter.example.org' is not a full web address; "
        "write it as https://..."
    )


def test_the_sender_address_must_be_a_plain_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_FROM_ADDRESS", "news at example.org")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "NEWSLETTER_FROM_ADDRESS: 'news at example.org' is not a plain email address such as "
        "news@example.org"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SMTP_TIMEOUT", "inf", "NEWSLETTER_SMTP_TIMEOUT: Input should be a finite number"),
        ("SMTP_TIMEOUT", "nan", "NEWSLETTER_SMTP_TIMEOUT: Input should be a finite number"),
        ("SMTP_TIMEOUT", "0", "NEWSLETTER_SMTP_TIMEOUT: Input should be greater than 0"),
        ("SMTP_RATE", "-1", "NEWSLETTER_SMTP_RATE: Input should be greater than or equal to 0"),
        ("SMTP_PORT", "70000", "NEWSLETTER_SMTP_PORT: Input should be less than or equal to 65535"),
        (
            "SMTP_HOST",
            "smtp.example.org\r\nX: y",
            "NEWSLETTER_SMTP_HOST: 'smtp.example.org\r\nX: y' is not a host name or address "
            "such as smtp.example.org",
        ),
        (
            "BUILD_DIR",
            "a-file",
            "NEWSLETTER_BUILD_DIR: 'a-file' is a file; it must name a folder",
        ),
        (
            "OUTBOX_DIR",
            "a-file",
            "NEWSLETTER_OUTBOX_DIR: 'a-file' is a file; it must name a folder",
        ),
        (
            "SEGMENTS_FILE",
            ".",
            "NEWSLETTER_SEGMENTS_FILE: '.' is a folder; it must name a file",
        ),
        (
            "DATABASE_URL",
            "newsletter.db",
            "NEWSLETTER_DATABASE_URL: is not a database URL such as sqlite:///newsletter.db or "
            "postgresql+psycopg://user:password@host/db",
        ),
        (
            "TEST_RECIPIENTS",
            "me@example.org, x=?y@example.org",
            "NEWSLETTER_TEST_RECIPIENTS: must not contain '=?' (mail programs read it as an "
            "encoded header)",
        ),
        (
            "SECRET_KEY",
            "abc\ndef",
            "NEWSLETTER_SECRET_KEY: contains a line break or control character",
        ),
        (
            "DKIM_KEY_FILE",
            "missing.pem",
            "NEWSLETTER_DKIM_KEY_FILE: 'missing.pem' is not a file that can be read",
        ),
        (
            "DKIM_DOMAIN",
            "example.org",
            "NEWSLETTER_DKIM_DOMAIN, _SELECTOR and _KEY_FILE go together; set all three or none",
        ),
        (
            "FROM_NAME",
            "News\u2028Bcc: all@example.org",
            "NEWSLETTER_FROM_NAME: must be on one line (it goes into a mail header)",
        ),
    ],
)
def test_values_that_cannot_work_are_refused_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("NEWSLETTER_" + name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == message
    if "SECRET" in name:
        assert value not in str(info.value)


def test_a_dotenv_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes("NEWSLETTER_FROM_NAME=Caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == ".env: not UTF-8 text (byte 0xe9 at offset 24); save it as UTF-8"
