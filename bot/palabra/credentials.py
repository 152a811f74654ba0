"""Palabra credentials: an app's ClientID + ClientSecret pair, or a platform API key.

App credentials authenticate REST calls with `ClientID`/`ClientSecret` headers, and streaming goes
through a session-storage session (its `publisher` JWT). A platform API key (`plbr_...`) is sent as
`Authorization: Bearer <key>` to REST and as `?token=<key>` to the streaming WebSocket directly.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr

from bot.errors import ConfigurationError
from bot.logs import register_secret

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.palabra.ai"
DEFAULT_STREAM_URL = "wss://streaming.palabra.ai"
API_KEY_PREFIX = "plbr_"

CredentialKind = Literal["app", "api_key"]


@dataclass(frozen=True, repr=False)
class Credentials:
    """Exactly one of (client_id + client_secret) or api_key. Build with `app()` or `from_api_key()`."""

    client_id: str | None = None
    client_secret: SecretStr | None = None
    api_key: SecretStr | None = None

    def __post_init__(self) -> None:
        has_pair = self.client_id is not None or self.client_secret is not None
        if has_pair and self.api_key is not None:
            raise ConfigurationError("Palabra credentials: give either a client id + secret or an API key, not both")
        if has_pair:
            self._check_pair()
        elif self.api_key is not None:
            self._check_api_key()
        else:
            raise ConfigurationError("Palabra credentials: a client id + secret or an API key is required")
        for secret in (self.client_secret, self.api_key):
            if secret is not None:
                register_secret(secret.get_secret_value())

    def _check_pair(self) -> None:
        if not (self.client_id or "").strip():
            raise ConfigurationError("PALABRA_CLIENT_ID is empty (set it together with PALABRA_CLIENT_SECRET)")
        if self.client_secret is None or not self.client_secret.get_secret_value().strip():
            raise ConfigurationError("PALABRA_CLIENT_SECRET is empty (set it together with PALABRA_CLIENT_ID)")
        if self.client_id != self.client_id.strip():  # type: ignore[union-attr]
            raise ConfigurationError("PALABRA_CLIENT_ID has leading or trailing whitespace")
        if not self.client_secret.get_secret_value().isprintable() or any(
            ch.isspace() for ch in self.client_secret.get_secret_value()
        ):
            # A trailing newline from a secrets file would otherwise surface, escaped, in an HTTP error.
            raise ConfigurationError("PALABRA_CLIENT_SECRET contains whitespace or control characters")

    def _check_api_key(self) -> None:
        key = self.api_key.get_secret_value() if self.api_key else ""
        if not key.strip():
            raise ConfigurationError("PALABRA_API_KEY is empty")
        if key != key.strip() or any(ch.isspace() for ch in key):
            raise ConfigurationError("PALABRA_API_KEY contains whitespace")
        if not key.startswith(API_KEY_PREFIX):
            # Upstream may issue other shapes; let Palabra be the judge.
            log.warning("PALABRA_API_KEY does not start with %r as platform keys do; using it anyway", API_KEY_PREFIX)

    # --- constructors -------------------------------------------------------------------------------
    @classmethod
    def app(cls, client_id: str, client_secret: str | SecretStr) -> Credentials:
        return cls(client_id=client_id, client_secret=_secret(client_secret))

    @classmethod
    def from_api_key(cls, api_key: str | SecretStr) -> Credentials:
        return cls(api_key=_secret(api_key))

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials | None:
        """The configured credentials, or None when none are set. The API key wins when both are set."""
        has_pair = settings.palabra_client_id is not None or settings.palabra_client_secret is not None
        if settings.palabra_api_key is not None:
            if has_pair:
                log.info("both PALABRA_API_KEY and PALABRA_CLIENT_ID/SECRET are set; using the API key")
            return cls(api_key=settings.palabra_api_key)
        if not has_pair:
            return None
        if settings.palabra_client_id is None or settings.palabra_client_secret is None:
            raise ConfigurationError(
                "PALABRA_CLIENT_ID and PALABRA_CLIENT_SECRET must be set together (or set PALABRA_API_KEY instead)"
            )
        return cls(client_id=settings.palabra_client_id, client_secret=settings.palabra_client_secret)

    # --- use ------------------------------------------------------------------------------------------
    @property
    def kind(self) -> CredentialKind:
        return "api_key" if self.api_key is not None else "app"

    def rest_headers(self) -> dict[str, str]:
        if self.api_key is not None:
            return {"Authorization": f"Bearer {self.api_key.get_secret_value()}"}
        assert self.client_id is not None and self.client_secret is not None
        return {"ClientID": self.client_id, "ClientSecret": self.client_secret.get_secret_value()}

    @property
    def owner_hint(self) -> str:
        """A non-secret label for logs: the client id, or a fingerprint of the API key."""
        if self.api_key is not None:
            return f"api key #{hashlib.sha256(self.api_key.get_secret_value().encode()).hexdigest()[:8]}"
        return f"client {self.client_id}"

    def __repr__(self) -> str:
        if self.kind == "api_key":
            return "Credentials(kind='api_key', api_key='***')"
        return f"Credentials(kind='app', client_id={self.client_id!r}, client_secret='***')"

    __str__ = __repr__


def _secret(value: str | SecretStr) -> SecretStr:
    return value if isinstance(value, SecretStr) else SecretStr(value)


def stream_base_url(api_url: str = DEFAULT_API_URL) -> str:
    """Where the streaming WebSocket lives for a REST base URL.

    Palabra's own API has a separate streaming host; any other URL (the local emulator, a proxy)
    serves both on one origin, so only the scheme changes.
    """
    url = api_url.rstrip("/")
    if url == DEFAULT_API_URL:
        return DEFAULT_STREAM_URL
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    if url.startswith(("ws://", "wss://")):
        return url
    raise ConfigurationError(f"Palabra API URL must start with http:// or https://, got {api_url!r}")
