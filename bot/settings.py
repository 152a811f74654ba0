"""Settings from the environment (and `.env`), with the names fixed by the product brief."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import ConfigurationError
from bot.logs import register_secret

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    discord_token: SecretStr | None = None
    speaker_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    palabra_client_id: str | None = None
    palabra_client_secret: SecretStr | None = None
    palabra_api_key: SecretStr | None = None
    palabra_api_url: str = "https://api.palabra.ai"
    database_url: str = Field(default="sqlite+aiosqlite:///data/bot.db", repr=False)  # may hold a password
    discord_api_base: str = "https://discord.com/api/v10"
    discord_gateway_url: str | None = None
    http_port: int = Field(default=8080, ge=0, le=65535)
    # All interfaces by default: health probes come from outside a container. Tests narrow it to loopback.
    http_host: str = "0.0.0.0"
    log_level: str = "INFO"
    # Where people reach the HTTP server (caption overlay links); unset: http://127.0.0.1:<bound port>.
    public_url: str | None = None
    # Signs caption overlay links; unset: a random key generated once and kept in the database.
    overlay_secret: SecretStr | None = None

    @field_validator(
        "discord_token",
        "palabra_client_id",
        "palabra_client_secret",
        "palabra_api_key",
        "public_url",
        "overlay_secret",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """`NAME=` with nothing after it (as in a freshly copied .env.example) means not set."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("speaker_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("palabra_api_url", "discord_api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (the address people open overlay links at)")
        if "?" in value or "#" in value:
            raise ValueError("must be a base URL without a query or fragment")
        return value.rstrip("/")

    @field_validator("overlay_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 16:
            raise ValueError("must be at least 16 characters (better: 32 random bytes, e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("discord_gateway_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value or None

    @property
    def has_palabra_credentials(self) -> bool:
        return self.palabra_api_key is not None or (
            self.palabra_client_id is not None and self.palabra_client_secret is not None
        )

    def secrets(self) -> list[str]:
        """Every secret value, so the log redactor can hide them."""
        values = [
            self.discord_token,
            self.palabra_client_secret,
            self.palabra_api_key,
            self.overlay_secret,
            *self.speaker_tokens,
        ]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning pydantic's report into one clear message without values."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None
    for secret in settings.secrets():
        register_secret(secret)
    return settings
