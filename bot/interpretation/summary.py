"""The message posted when a session ends: duration, lines, languages, speakers heard, translation delay,
with the transcript attached as .txt and .srt."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord

if TYPE_CHECKING:
    from bot.interpretation.running import RunningSession
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

REASON_TEXT = {
    "stopped": "stopped with /interpret stop",
    "channel_empty": "the channel was empty",
    "max_duration": "the maximum duration was reached",
    "bot_disconnected": "the bot was disconnected",
    "bot_moved": "the bot was moved to another channel",
    "shutdown": "the bot is shutting down",
    "palabra_error": "the translation service failed",
    "palabra_closed": "the translation service ended the stream",
}


def reason_text(reason: str) -> str:
    return REASON_TEXT.get(reason, reason)


def summary_text(
    *,
    channel_id: int,
    reason: str,
    uptime_s: float,
    lines: int,
    source: str,
    targets: Sequence[str],
    speakers_heard: Sequence[int],
    latency: tuple[float | None, float | None],
    paused_s: float = 0.0,
) -> str:
    minutes, seconds = divmod(int(uptime_s), 60)
    heard = ", ".join(f"<@{uid}>" for uid in sorted(speakers_heard)) or "nobody"
    p50, p90 = latency
    delay = (
        f"; translation delay median {p50:.1f} s, 90th percentile {p90:.1f} s"
        if p50 is not None and p90 is not None
        else ""
    )
    paused_minutes, paused_seconds = divmod(int(paused_s), 60)
    paused = (
        f"; Palabra paused for {paused_minutes} min {paused_seconds} s while nobody spoke (not billed)"
        if paused_s >= 1
        else ""
    )
    return (
        f"⏹️ Interpretation of <#{channel_id}> ended ({reason_text(reason)}) after "
        f"{minutes} min {seconds} s: {lines} lines, {source} → "
        f"{', '.join(targets)}; speakers heard: {heard}{delay}{paused}."
    )


async def post_summary(running: RunningSession, reason: str, metrics: Metrics) -> int | None:
    """Post the summary in the transcript channel; its message id, or None if Discord refused it."""
    live = running.live
    transcript = live.parts.transcript
    text = summary_text(
        channel_id=running.channel.id,
        reason=reason,
        uptime_s=live.uptime_s,
        lines=len(transcript.finals()),
        source=running.source,
        targets=running.targets,
        speakers_heard=sorted(live.speakers_heard),
        latency=live.latency_percentiles(),
        paused_s=live.parts.streaming.idle_paused_s(),
    )
    targets = list(running.targets)
    files = [
        discord.File(io.BytesIO(transcript.to_txt(targets).encode()), f"transcript-{running.session_id}.txt"),
        discord.File(io.BytesIO(transcript.to_srt(targets).encode()), f"transcript-{running.session_id}.srt"),
    ]
    try:
        message = await running.transcript_channel.send(
            text, files=files, allowed_mentions=discord.AllowedMentions.none()
        )
        return message.id
    except discord.HTTPException as exc:
        log.warning("could not post the summary of session %s: %s", running.session_id, exc)
        metrics.errors.labels("summary_post").inc()
        return None
