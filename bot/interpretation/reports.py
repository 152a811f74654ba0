"""What the manager reports to the slash commands (re-exported by bot.interpretation.manager)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PlacementKind = Literal["sibling", "same_channel", "text_only"]


@dataclass
class Placement:
    language: str
    kind: PlacementKind
    channel_id: int | None
    reason: str | None = None  # why it is not in its sibling channel (None when it is)


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
    palabra_paused: bool = False  # paused because nobody speaks (not billed); speech resumes it
    palabra_paused_s: float = 0.0  # time paused so in this session
    instance_id: str = ""  # the process running the session (bot.ownership)
    shard: tuple[int, int] = (0, 1)  # (shard id, SHARD_COUNT) of the session's guild
