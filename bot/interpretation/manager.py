"""The interpretation sessions of this process: what the slash commands call.

One session per source voice channel. `start` joins the listener, places each target language (a
speaker bot in its sibling channel, else same-channel playback for one language, else text only),
starts the Palabra stream and returns a `StartReport`; `stop` ends it and posts the summary.
`recover` runs at start-up: sessions a crashed process left active are closed (their Palabra sessions
deleted) and resumed where their channel still has people.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import discord

from bot.interpretation.errors import NoActiveSession

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

PlacementKind = Literal["sibling", "same_channel", "text_only"]


@dataclass
class Placement:
    language: str
    kind: PlacementKind
    channel_id: int | None
    reason: str | None = None


@dataclass
class StartReport:
    session_id: int
    source: str
    targets: list[str]
    placements: dict[str, Placement]
    transcript_channel_id: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class StopReport:
    session_id: int
    duration_s: float
    transcript_lines: int
    summary_message_id: int | None


@dataclass
class SessionStatus:
    session_id: int
    guild_id: int
    source_channel_id: int
    source: str
    targets: list[str]
    placements: dict[str, Placement]
    speakers_heard: list[int]
    uptime_s: float
    latency_p50_s: float | None
    latency_p90_s: float | None
    packets: int
    decrypt_failures: int


class InterpretationManager:
    def __init__(self, services: Services, listener: discord.Client, speaker_pool: Any) -> None:
        self.services = services
        self.listener = listener
        self.speaker_pool = speaker_pool
        self.sessions: dict[int, Any] = {}  # source channel id -> LiveSession

    async def start(self, *, guild: discord.Guild, voice_channel: discord.VoiceChannel | discord.StageChannel,
                    requested_by: discord.Member, source: str | None = None,
                    targets: list[str] | None = None) -> StartReport:
        raise NotImplementedError

    async def stop(self, *, guild_id: int, channel_id: int | None = None, reason: str = "stopped") -> StopReport:
        raise NoActiveSession()

    def status(self, guild_id: int) -> list[SessionStatus]:
        return []

    async def set_user_opted_out(self, guild_id: int | None, user_id: int, opted_out: bool) -> None:
        return None

    async def recover(self) -> None:
        return None

    async def close(self) -> None:
        return None
