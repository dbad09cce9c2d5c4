"""Deployment settings, from the environment or a .env file (prefix NEWSLETTER_).

Content never lives here: it lives in the issue YAML. Every field is documented in
.env.example, and a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsletter.errors import ConfigError
from newsletter.fields import AbsoluteURL, HeaderText, Slug, header_safe


def _plain_address(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or not value.isascii() or " " in value:
        raise ValueError(f"'{value}' is not a plain email address such as news@example.org")
    return value


HeaderAddress = Annotated[str, AfterValidator(header_safe), AfterValidator(_plain_address)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    from_address: HeaderAddress = "newsletter@example.org"
    from_name: HeaderText = "Regional Migration News"
    reply_to: HeaderAddress | None = None
    base_url: AbsoluteURL = "https://newsletter.example.org"
    secret_key: SecretStr | None = None
    database_url: str = "sqlite:///newsletter.db"
    outbox_dir: Path = Path("outbox")
    templates_dir: Path = Path("templates")
    issues_dir: Path = Path("issues")
    build_dir: Path = Field(default=Path("build"))
    segments_file: Path = Path("segments.yaml")
    default_list: Slug = "bulletin"
    secret_key_previous: SecretStr | None = None

    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: float = Field(default=30.0, gt=0)
    smtp_connections: int = Field(default=4, ge=1, le=64)
    smtp_rate: float = Field(default=0.0, ge=0)
    smtp_hourly_limit: int = Field(default=0, ge=0)
    smtp_max_attempts: int = Field(default=5, ge=1, le=50)
    smtp_retry_delay: float = Field(default=60.0, ge=0)
    smtp_pause_after: int = Field(default=10, ge=1)
    test_recipients: str = ""
    unsubscribe_mailto: HeaderAddress | None = None

    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_key_file: Path | None = None

    @field_validator(
        "reply_to",
        "secret_key",
        "secret_key_previous",
        "smtp_host",
        "smtp_username",
        "smtp_password",
        "unsubscribe_mailto",
        "dkim_domain",
        "dkim_selector",
        "dkim_key_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `NEWSLETTER_REPLY_TO=` in .env means "not set", as in .env.example.
        return None if value == "" else value

    def test_recipient_list(self) -> list[str]:
        return [a.strip() for a in self.test_recipients.split(",") if a.strip()]

    def sender_domain(self) -> str:
        return self.from_address.rpartition("@")[2]

    def public_url(self, *parts: str) -> str:
        """An absolute link under the public base URL."""
        return "/".join([self.base_url.rstrip("/"), *(p.strip("/") for p in parts)])


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and .env, with a one-line error for a bad value."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        name = "NEWSLETTER_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
        message = str((err.get("ctx") or {}).get("error", err["msg"]))
        raise ConfigError(f"{name}: {message}") from None
