"""The manager's records: what a start was asked to build (`StartPlan`) and what runs (`RunningSession`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord

if TYPE_CHECKING:
    from bot.db.models import GuildSettings
    from bot.interpretation.leasing import SpeakerSlot
    from bot.interpretation.palabra_sessions import RecordingRest
    from bot.interpretation.reports import Placement
    from bot.interpretation.session import LiveSession

SourceChannel = discord.VoiceChannel | discord.StageChannel
# Where transcripts and the summary are posted: a text channel, a thread or a voice channel's chat.
TranscriptChannel = discord.TextChannel | discord.VoiceChannel | discord.StageChannel | discord.Thread


@dataclass(frozen=True)
class StartPlan:
    """Everything checked before anything is built: the session row exists, the rest is to assemble."""

    guild: discord.Guild
    voice_channel: SourceChannel
    transcript_channel: TranscriptChannel
    session_id: int
    prefs: GuildSettings
    opted_out: frozenset[int]
    source: str
    targets: tuple[str, ...]
    warnings: tuple[str, ...]
    started_by_name: str
    continues: tuple[int, ...] = ()  # crashed sessions this one resumes, newest first


@dataclass
class RunningSession:
    live: LiveSession
    guild: discord.Guild
    channel: SourceChannel
    transcript_channel: TranscriptChannel
    source: str
    targets: tuple[str, ...]
    placements: dict[str, Placement]
    rest: RecordingRest
    slots: list[SpeakerSlot] = field(default_factory=list)
    continues: tuple[int, ...] = ()  # crashed sessions this one resumes: their overlay links follow it

    @property
    def session_id(self) -> int:
        return self.live.config.session_id
