"""Settings from the environment (and `.env`), with the names fixed by the product brief."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
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
    # Discord gateway sharding, the same for the main bot and every speaker bot (see docs/scaling.md).
    shard_count: int = Field(default=1, ge=1)
    shard_ids: Annotated[list[int] | None, NoDecode] = None  # None = every shard of shard_count
    # How often this process proves it is alive in the database; another process takes over its
    # shards' sessions once it has been silent for STALE_HEARTBEATS intervals.
    heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    # Seconds nobody speaks before a session pauses its Palabra task (not billed while paused; the next
    # speech resumes it); 0 never pauses. Under 2 s it would pause in the gaps between sentences.
    palabra_idle_pause_s: float = Field(default=30.0, ge=0, le=3600)
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

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _split_shard_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            if not parts:
                return None
            if not all(part.isdigit() for part in parts):
                raise ValueError(f"must be comma-separated shard numbers such as 0,1 (got {value.strip()!r})")
            return [int(part) for part in parts]
        return value

    @model_validator(mode="after")
    def _shards_in_range(self) -> Settings:
        if self.shard_ids is None:
            return self
        outside = sorted({i for i in self.shard_ids if not 0 <= i < self.shard_count})
        if outside:
            raise ValueError(
                f"SHARD_IDS {_listed(outside)} outside 0..{self.shard_count - 1}: with SHARD_COUNT={self.shard_count} "
                f"the shard ids are 0 to {self.shard_count - 1}"
            )
        if len(set(self.shard_ids)) != len(self.shard_ids):
            raise ValueError(f"SHARD_IDS lists a shard twice ({_listed(self.shard_ids)})")
        self.shard_ids = sorted(self.shard_ids)
        return self

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

    @field_validator("palabra_idle_pause_s")
    @classmethod
    def _pause_after_sentences(cls, value: float) -> float:
        if 0 < value < 2:
            raise ValueError("must be 0 (never pause) or at least 2 seconds (shorter pauses between sentences)")
        return value

    @property
    def idle_pause_s(self) -> float | None:
        """PALABRA_IDLE_PAUSE_S as the stream takes it (None: never pause)."""
        return self.palabra_idle_pause_s or None

    @field_validator("discord_gateway_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value or None

    @property
    def own_shard_ids(self) -> list[int]:
        """The shards this process runs: SHARD_IDS, or all of them."""
        return list(self.shard_ids) if self.shard_ids is not None else list(range(self.shard_count))

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


def _problem(location: tuple[int | str, ...], message: str) -> str:
    """`NAME: what is wrong`; checks across several settings name them in their own message."""
    message = message.removeprefix("Value error, ")
    name = ".".join(str(part) for part in location).upper()
    return f"{name}: {message}" if name else message


def _listed(ids: list[int]) -> str:
    return ",".join(str(i) for i in ids)


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning pydantic's report into one clear message without values."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], err["msg"]) for err in exc.errors())
        raise ConfigurationError(f"invalid settings: {problems}") from None
    for secret in settings.secrets():
        register_secret(secret)
    return settings
