"""Deployment settings, from the environment or a .env file (prefix NEWSLETTER_).

Content never lives here: it lives in the issue YAML. Every field is documented in
.env.example, and a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsletter.errors import ConfigError
from newsletter.fields import AbsoluteURL, HeaderText, Slug, header_safe

HeaderAddress = Annotated[str, AfterValidator(header_safe)]


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

    @field_validator("reply_to", "secret_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `NEWSLETTER_REPLY_TO=` in .env means "not set", as in .env.example.
        return None if value == "" else value

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
