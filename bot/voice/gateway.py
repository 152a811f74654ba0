"""The voice gateway's JSON messages as typed events, sans-I/O: a dict in, one event (or None) out.

discord.py handles the messages it needs itself and hands every JSON message to a hook afterwards
(bot.voice.adapter); the receiver reads them only through `parse()`, so a malformed message is one
`VoiceGatewayError` here instead of a KeyError somewhere in the receive path. Binary (DAVE/MLS)
messages never reach the hook; discord.py's own DaveSession handles them.

`ResumeWatch` is the clock-driven part of a voice resume: it says by when the resume must have
completed, given the events seen, so the asyncio layer can fall back to a fresh connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.voice.errors import VoiceGatewayError

# Opcodes of the voice gateway (v8) that carry receive state.
READY, SESSION_DESCRIPTION, SPEAKING, RESUMED = 2, 4, 5, 9
CLIENTS_CONNECT, CLIENT_CONNECT, CLIENT_DISCONNECT = 11, 12, 13


@dataclass(frozen=True, slots=True)
class Ready:
    """op 2: our own SSRC (our packets echo back with it and are dropped)."""

    ssrc: int


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """op 4: the transport key (new after every identify; also re-sent by some servers on resume)."""

    mode: str
    secret_key: bytes
    dave_protocol_version: int


@dataclass(frozen=True, slots=True)
class SsrcAnnounced:
    """op 5 (speaking) or op 12 (video, `audio_ssrc`): which user sends on which SSRC."""

    user_id: int
    ssrc: int


@dataclass(frozen=True, slots=True)
class Resumed:
    """op 9: the server accepted op 7; the session (UDP, key, DAVE group) carries on."""


@dataclass(frozen=True, slots=True)
class ClientsConnected:
    """op 11: users joined the call (no SSRCs yet)."""

    user_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ClientDisconnected:
    """op 13: a user left; their SSRC may be reused."""

    user_id: int


GatewayEvent = Ready | SessionDescription | SsrcAnnounced | Resumed | ClientsConnected | ClientDisconnected


def parse(message: Mapping[str, object]) -> GatewayEvent | None:
    """The receive-relevant event of one JSON message; None for ops receive does not use (heartbeat
    ACKs, Hello, DAVE transitions) and for op 5/12 without an audio SSRC. Raises VoiceGatewayError
    when a message of a known op lacks or mistypes a field."""
    op = message.get("op")
    data = message.get("d")
    try:
        if op == RESUMED:
            return Resumed()
        if op not in (READY, SESSION_DESCRIPTION, SPEAKING, CLIENTS_CONNECT, CLIENT_CONNECT, CLIENT_DISCONNECT):
            return None
        if not isinstance(data, Mapping):
            raise VoiceGatewayError(f"voice gateway op {op} without an object payload")
        return _parse(op, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise VoiceGatewayError(f"voice gateway op {op}: bad payload ({type(exc).__name__}: {exc})") from None


def _parse(op: object, data: Mapping[str, object]) -> GatewayEvent | None:
    if op == READY:
        return Ready(_int(data["ssrc"]))
    if op == SESSION_DESCRIPTION:
        key = data["secret_key"]
        if not isinstance(key, list | bytes):
            raise TypeError("secret_key is not a list of bytes")
        return SessionDescription(str(data["mode"]), bytes(key), _int(data.get("dave_protocol_version") or 0))
    if op in (SPEAKING, CLIENT_CONNECT):
        ssrc = data.get("ssrc" if op == SPEAKING else "audio_ssrc")
        user_id = data.get("user_id")
        if not ssrc or user_id is None:  # op 12 without audio, or our own op 5 echoed without a user
            return None
        return SsrcAnnounced(_int(user_id), _int(ssrc))
    if op == CLIENTS_CONNECT:
        user_ids = data["user_ids"]
        if not isinstance(user_ids, list):
            raise TypeError("user_ids is not a list")
        return ClientsConnected(tuple(_int(u) for u in user_ids))
    return ClientDisconnected(_int(data["user_id"]))


def _int(value: object) -> int:
    """Snowflakes come as strings, SSRCs as numbers; bools are not ids."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"expected an integer or a decimal string, got {type(value).__name__}")
    return int(value)


class ResumeWatch:
    """When a voice resume (op 7) must give up: `grace_s` after it started, unless it completed.

    discord.py 2.7.1 counts a resumed connection as connected only once a new Session Description
    (op 4) arrives; a server that answers op 9 alone, answers late or not at all would leave it
    waiting for its whole connect timeout. The adapter starts a watch per resume, feeds it the
    events it sees, and falls back to a fresh connection at `deadline`.
    """

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.started_at: float | None = None
        self.resumed = False  # op 9 seen: the old key and DAVE group are still valid
        self.described = False  # op 4 seen: a new key arrived

    def begin(self, now: float) -> None:
        self.started_at, self.resumed, self.described = now, False, False

    def observe(self, event: GatewayEvent | None) -> None:
        if isinstance(event, Resumed):
            self.resumed = True
        elif isinstance(event, SessionDescription):
            self.described = True

    @property
    def deadline(self) -> float | None:
        return None if self.started_at is None else self.started_at + self.grace_s

    def remaining(self, now: float) -> float:
        deadline = self.deadline
        return self.grace_s if deadline is None else max(0.0, deadline - now)

    def expired(self, now: float) -> bool:
        deadline = self.deadline
        return deadline is not None and now >= deadline
