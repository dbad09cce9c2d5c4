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
