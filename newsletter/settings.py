"""Deployment settings, from the environment or a .env file (prefix NEWSLETTER_).

Content never lives here: it lives in the issue YAML. Every field is documented in
.env.example, and a test keeps the two in step.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsletter.errors import ConfigError
from newsletter.fields import AbsoluteURL, HeaderText, Slug, header_safe


def _plain_address(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or not value.isascii() or " " in value:
        raise ValueError(f"'{value}' is not a plain email address such as news@example.org")
    return value


HeaderAddress = Annotated[str, AfterValidator(header_safe), AfterValidator(_plain_address)]

_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
_DNS_LABELS = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?")
_DATABASE_URL = re.compile(r"[a-z][a-z0-9]*(\+[a-z0-9_]+)?://\S*")


def _hostname(value: str) -> str:
    if not _HOSTNAME.fullmatch(value):
        raise ValueError(f"'{value}' is not a host name or address such as smtp.example.org")
    return value


def _dns_name(value: str) -> str:
    if not _DNS_LABELS.fullmatch(value):
        raise ValueError(f"'{value}' is not a DNS name such as example.org")
    return value


def _database_url(value: str) -> str:
    if not _DATABASE_URL.fullmatch(value):
        raise ValueError(
            "is not a database URL such as sqlite:///newsletter.db or "
            "postgresql+psycopg://user:password@host/db"
        )
    return value


def _one_line_secret(value: SecretStr | None) -> SecretStr | None:
    # Never echo the value itself: it is a secret.
    if value is not None and not value.get_secret_value().isprintable():
        raise ValueError("contains a line break or control character")
    return value


def _mailbox_url(value: str) -> str:
    if not re.fullmatch(r"(imaps://[^\s@/]+@[^\s/]+(/\S*)?|maildir:\S+|mbox:\S+)", value):
        raise ValueError("use imaps://user@host/INBOX, maildir:/path or mbox:/path")
    return value


def _timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{value}' is not a time zone such as UTC or America/Panama") from None
    return value


def _folder(value: Path) -> Path:
    """A folder the tool writes into or reads from: it may not exist yet, but it must not
    be a file."""
    if value.exists() and not value.is_dir():
        raise ValueError(f"'{value}' is a file; it must name a folder")
    return value


def _file(value: Path) -> Path:
    if value.exists() and value.is_dir():
        raise ValueError(f"'{value}' is a folder; it must name a file")
    return value


def _existing_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        raise ValueError(f"'{value}' is not a file that can be read")
    return value


def _client_names(value: str) -> str:
    for name in (c.strip() for c in value.split(",")):
        if name and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,40}", name.lower()):
            raise ValueError(f"'{name}' is not a client name such as gmail or outlook-windows")
    return value


Folder = Annotated[Path, AfterValidator(_folder)]
FilePath = Annotated[Path, AfterValidator(_file)]
Secret = Annotated[SecretStr | None, AfterValidator(_one_line_secret)]
Seconds = Annotated[float, Field(allow_inf_nan=False)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    from_address: HeaderAddress = "newsletter@example.org"
    from_name: HeaderText = "Regional Migration News"
    reply_to: HeaderAddress | None = None
    # The mail clients whose support `newsletter check` compares the email with
    # (caniemail.com's names: a family such as gmail, or family-platform such as
    # outlook-windows).
    target_clients: Annotated[str, AfterValidator(_client_names)] = (
        "gmail,outlook-windows,outlook-macos,apple-mail,yahoo"
    )
    # The sender's postal address, in every email's footer (CAN-SPAM asks for one).
    postal_address: Annotated[str, AfterValidator(header_safe)] = ""
    base_url: AbsoluteURL = "https://newsletter.example.org"
    secret_key: Secret = None
    database_url: Annotated[str, AfterValidator(_database_url)] = "sqlite:///newsletter.db"
    outbox_dir: Folder = Path("outbox")
    templates_dir: Folder = Path("templates")
    issues_dir: Folder = Path("issues")
    build_dir: Folder = Path("build")
    media_dir: Folder = Path("media")
    media_url: AbsoluteURL | None = None
    segments_file: FilePath = Path("segments.yaml")
    default_list: Slug = "bulletin"
    secret_key_previous: Secret = None

    smtp_host: Annotated[str, AfterValidator(_hostname)] | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_username: Annotated[str, AfterValidator(header_safe)] | None = None
    smtp_password: Secret = None
    smtp_timeout: Seconds = Field(default=30.0, gt=0, le=3600)
    smtp_connections: int = Field(default=4, ge=1, le=64)
    smtp_rate: Seconds = Field(default=0.0, ge=0, le=100_000)
    smtp_hourly_limit: int = Field(default=0, ge=0)
    smtp_max_attempts: int = Field(default=5, ge=1, le=50)
    smtp_retry_delay: Seconds = Field(default=60.0, ge=0, le=7 * 24 * 3600)
    smtp_pause_after: int = Field(default=10, ge=1)
    smtp_lease: Seconds = Field(default=60.0, ge=2, le=3600)
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    worker_poll: Seconds = Field(default=10.0, gt=0, le=3600)
    test_recipients: str = ""
    unsubscribe_mailto: HeaderAddress | None = None
    bounce_address: HeaderAddress | None = None
    mailbox_url: Annotated[str, AfterValidator(_mailbox_url)] | None = None
    mailbox_password: Secret = None
    mailbox_ca_file: Annotated[Path | None, AfterValidator(_existing_file)] = None
    soft_bounce_limit: int = Field(default=3, ge=1, le=100)
    soft_bounce_campaigns: int = Field(default=2, ge=1, le=100)
    soft_bounce_days: int = Field(default=30, ge=1, le=3650)

    dkim_domain: Annotated[str, AfterValidator(_dns_name)] | None = None
    dkim_selector: Annotated[str, AfterValidator(_dns_name)] | None = None
    dkim_key_file: Annotated[Path | None, AfterValidator(_existing_file)] = None

    @field_validator(
        "reply_to",
        "secret_key",
        "secret_key_previous",
        "smtp_host",
        "smtp_username",
        "smtp_password",
        "unsubscribe_mailto",
        "bounce_address",
        "media_url",
        "mailbox_url",
        "mailbox_password",
        "mailbox_ca_file",
        "dkim_domain",
        "dkim_selector",
        "dkim_key_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `NEWSLETTER_REPLY_TO=` in .env means "not set", as in .env.example.
        return None if value == "" else value

    @field_validator("test_recipients")
    @classmethod
    def _addresses(cls, value: str) -> str:
        for raw in value.split(","):
            if raw.strip():
                header_safe(raw.strip())
                _plain_address(raw.strip())
        return value

    @model_validator(mode="after")
    def _dkim_complete(self) -> Settings:
        given = [self.dkim_domain, self.dkim_selector, self.dkim_key_file]
        if any(v is not None for v in given) and not all(v is not None for v in given):
            raise ValueError(
                "NEWSLETTER_DKIM_DOMAIN, _SELECTOR and _KEY_FILE go together; set all three or none"
            )
        return self

    def client_list(self) -> list[str]:
        return [c.strip().lower() for c in self.target_clients.split(",") if c.strip()]

    def test_recipient_list(self) -> list[str]:
        return [a.strip() for a in self.test_recipients.split(",") if a.strip()]

    def sender_domain(self) -> str:
        return self.from_address.rpartition("@")[2]

    def media_base(self) -> str:
        """Where prepared images are published: NEWSLETTER_MEDIA_URL (a CDN, a bucket) or
        the web service's /media/."""
        return (self.media_url or self.public_url("media")).rstrip("/")

    def unsubscribe_address(self) -> str:
        """Where the List-Unsubscribe mailto leads."""
        return self.unsubscribe_mailto or f"unsubscribe@{self.sender_domain()}"

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
        if not err["loc"]:
            message = message.removeprefix("Value error, ")
            raise ConfigError(message) from None
        raise ConfigError(f"{name}: {message}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f".env: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
