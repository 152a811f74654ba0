"""The Discord side of a start: the permissions the listener needs, where transcripts go, the consent
notice, and how transcripts are posted (a webhook, else the bot itself). Each problem that does not
stop the start becomes a warning for the person who started it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import discord

from bot.interpretation.errors import BotMissingPermissions
from bot.interpretation.placement import consent_notice
from bot.interpretation.running import SourceChannel, TranscriptChannel
from bot.interpretation.transcripts import ChannelSink, MessageSink, WebhookSink

log = logging.getLogger(__name__)


def check_permissions(guild: discord.Guild, channel: SourceChannel) -> None:
    me = guild.me
    if me is None:
        return
    perms = channel.permissions_for(me)
    missing = [
        name
        for name, ok in (("Connect", perms.connect), ("Speak", perms.speak), ("View Channel", perms.view_channel))
        if not ok
    ]
    if missing:
        raise BotMissingPermissions(f"The bot needs {', '.join(missing)} in <#{channel.id}>.")


def transcript_channel(
    guild: discord.Guild, channel_id: int | None, voice_channel: SourceChannel, warnings: list[str]
) -> TranscriptChannel:
    """The server's transcript channel, else the voice channel's own chat (with a warning why)."""
    if channel_id:
        channel = guild.get_channel_or_thread(channel_id)
        if isinstance(channel, TranscriptChannel):
            return channel
        warnings.append(
            f"the transcript channel <#{channel_id}> is gone; transcripts go to this voice channel's chat"
            if channel is None
            else f"<#{channel_id}> cannot take messages; transcripts go to this voice channel's chat"
        )
    return voice_channel


async def post_consent(
    channel: SourceChannel,
    *,
    targets: Sequence[str],
    transcript_channel_id: int,
    retention_days: int,
    started_by_name: str,
    warnings: list[str],
) -> None:
    text = consent_notice(
        targets=targets,
        transcript_channel_id=transcript_channel_id,
        retention_days=retention_days,
        started_by=started_by_name,
    )
    try:
        await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
    except discord.HTTPException as exc:
        log.warning("could not post the consent notice in channel %s: %s", channel.id, exc)
        warnings.append(
            "the consent notice could not be posted in the voice channel's chat (the bot needs Send Messages there)"
        )


async def transcript_sink(channel: TranscriptChannel, bot_user_id: int, warnings: list[str]) -> MessageSink:
    try:
        return await WebhookSink.for_channel(channel, bot_user_id)
    except (discord.HTTPException, TypeError) as exc:
        log.info("no webhook in channel %s (%s); posting transcripts as the bot", channel.id, exc)
        warnings.append(
            "transcripts are posted as the bot: give it Manage Webhooks to post them under each speaker's name"
        )
        return ChannelSink(channel)
