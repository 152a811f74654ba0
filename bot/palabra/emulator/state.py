"""In-memory state shared by the emulator's REST and streaming halves.

REST (session storage, broadcasts) lives in `rest.py`; the WebSocket protocol in `streaming.py`.
Both reach this object through `request.app[STATE]`. Tests in the same process read it directly;
tests in another process use the admin endpoints (`GET /_emulator/streams`, ...).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.palabra.emulator.config import EmulatorConfig


@dataclass
class SessionRecord:
    id: str
    publisher: str  # JWT-shaped token accepted at the WebSocket upgrade
    owner: str  # the client id or api key fingerprint that created it
    intent: str
    created_at: float
    updated_at: float
    expires_at: float
    legacy: bool = False
    active_streams: int = 0


@dataclass
class StreamRecord:
    """One WebSocket connection, as the emulator saw it (for assertions in tests)."""

    id: int
    session_id: str | None  # None for platform-API-key connections
    opened_at: float
    task: dict[str, Any] | None = None
    input_pcm: bytearray = field(default_factory=bytearray)  # everything received, decoded
    messages_in: dict[str, int] = field(default_factory=dict)
    messages_out: dict[str, int] = field(default_factory=dict)
    closed_at: float | None = None
    close_code: int | None = None


class EmulatorState:
    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.sessions: dict[str, SessionRecord] = {}
        self.broadcasts: dict[str, dict[str, Any]] = {}
        self.streams: list[StreamRecord] = []
        self.rest_calls = 0
        self.insufficient_balance = False  # REST: session creation answers 403 / error_code 100050
        self.ws_connect_times: dict[str, list[float]] = {}

    # --- tokens ---------------------------------------------------------------------------------
    @staticmethod
    def new_token(prefix: str = "eyJ") -> str:
        """Opaque JWT-shaped token (three dot-separated url-safe parts)."""
        return f"{prefix}{secrets.token_urlsafe(18)}.{secrets.token_urlsafe(24)}.{secrets.token_urlsafe(32)}"

    def authenticate_stream_token(self, token: str | None) -> SessionRecord | str | None:
        """The live session a publisher token belongs to, the api key itself, or None (-> 403)."""
        if not token:
            return None
        if token in self.config.api_keys:
            return token
        self.expire_sessions()
        for session in self.sessions.values():
            if secrets.compare_digest(session.publisher, token):
                return session
        return None

    def allow_ws_connection(self, token: str) -> bool:
        """20 new connections per minute per token."""
        now = time.monotonic()
        recent = [t for t in self.ws_connect_times.get(token, []) if now - t < 60.0]
        if len(recent) >= self.config.ws_connections_per_minute:
            self.ws_connect_times[token] = recent
            return False
        recent.append(now)
        self.ws_connect_times[token] = recent
        return True

    def expire_sessions(self) -> None:
        now = time.time()
        for session_id in [s.id for s in self.sessions.values() if s.expires_at <= now and not s.active_streams]:
            del self.sessions[session_id]

    def open_stream(self, session: SessionRecord | str) -> StreamRecord:
        record = StreamRecord(
            id=len(self.streams) + 1,
            session_id=session.id if isinstance(session, SessionRecord) else None,
            opened_at=time.time(),
        )
        if isinstance(session, SessionRecord):
            session.active_streams += 1
        self.streams.append(record)
        return record

    def close_stream(self, record: StreamRecord, code: int | None) -> None:
        record.closed_at, record.close_code = time.time(), code
        session = self.sessions.get(record.session_id or "")
        if session:
            session.active_streams = max(0, session.active_streams - 1)
            # expires_at auto-extends while a connection is active (docs).
            session.expires_at = max(session.expires_at, time.time() + 60)


STATE: web.AppKey[EmulatorState] = web.AppKey("palabra_emulator_state", EmulatorState)
