"""/interpret start|stop|status|overlay: parse, check, call the interpretation manager (or the overlay), reply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserFacingError
from bot.interpretation.reports import Placement, SessionStatus, StartReport, StopReport
from bot.messages import clip
from bot.overlay.service import OverlayLink, OverlayService, OverlayUnavailable
from cogs.common import (
    CommandInputError,
    NotAllowed,
    caller_voice_channel,
    channel_mention,
    defer,
    duration,
    guild_id_of,
    interpretation_manager,
    may_configure,
    parse_source,
    parse_targets,
    ready_guild,
    services_of,
    source_autocomplete,
    targets_autocomplete,
    with_warnings,
)

if TYPE_CHECKING:
    from bot.services import Interpretation


def placement_line(placement: Placement) -> str:
    where = {
        "sibling": f"plays in {channel_mention(placement.channel_id)}",
        "same_channel": f"plays in {channel_mention(placement.channel_id)} (the source channel)",
        "text_only": "text only",
    }.get(placement.kind, placement.kind)
    reason = f" — {placement.reason}" if placement.reason else ""
    return f"• **{placement.language}**: {where}{reason}"


def start_text(report: StartReport, voice_channel_id: int) -> str:
    lines = [
        f"Interpreting {channel_mention(voice_channel_id)}: **{report.source}** → "
        + ", ".join(f"**{t}**" for t in report.targets),
        *(placement_line(report.placements[t]) for t in report.targets if t in report.placements),
        f"Transcripts go to {channel_mention(report.transcript_channel_id)}.",
    ]
    return with_warnings("\n".join(lines), report.warnings)


def overlay_text(link: OverlayLink) -> str:
    which = "the source language" if link.is_source else "translation"
    return (
        f"Live captions of this session, **{link.language}** ({which}): {link.url}\n"
        "Open it in a browser, or add it to OBS as a Browser source (the background is transparent). "
        "Options go at the end of the link, e.g. `?lines=2&size=64&position=top&names=0`.\n"
        f"Keep the link private: anyone with it can read along. It stops working "
        f"{int(link.grace_s // 60)} minutes after the session ends."
    )


def overlay_service(interaction: discord.Interaction) -> OverlayService:
    interpretation_manager(interaction)  # no interpretation on this bot: say that first
    overlay: OverlayService | None = services_of(interaction).overlay
    if overlay is None:
        raise OverlayUnavailable()
    return overlay


def voice_channel_id(interaction: discord.Interaction) -> int | None:
    channel = caller_voice_channel(interaction)
    return channel.id if channel is not None else None


async def overlay_language_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """The languages of the caller's session: its source, then its targets."""
    try:
        running = overlay_service(interaction).session_for(guild_id_of(interaction), voice_channel_id(interaction))
    except (UserFacingError, NotAllowed):
        return []
    codes = [running.source, *running.targets]
    return [app_commands.Choice(name=code, value=code) for code in codes if current.lower() in code.lower()][:25]


def stop_text(report: StopReport) -> str:
    lines = f"{report.transcript_lines} transcript line{'s' if report.transcript_lines != 1 else ''}"
    return f"Stopped interpreting after {duration(report.duration_s)} ({lines})."


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _speakers(heard: Sequence[int] | int) -> str:
    if isinstance(heard, int):
        return str(heard)
    if not heard:
        return "nobody yet"
    shown = ", ".join(f"<@{user_id}>" for user_id in heard[:10])
    return shown + (f" and {len(heard) - 10} more" if len(heard) > 10 else "")


def _paused_line(status: SessionStatus) -> list[str]:
    if status.palabra_paused:
        return [f"Palabra paused while nobody speaks (not billed; {duration(status.palabra_paused_s)} so far)"]
    if status.palabra_paused_s >= 1:
        return [f"Palabra was paused for {duration(status.palabra_paused_s)} while nobody spoke (not billed)"]
    return []


def _runner(status: SessionStatus) -> str:
    shard_id, count = status.shard
    return f"Run by instance `{status.instance_id}` on shard {shard_id} of {count}"


def status_text(sessions: Sequence[SessionStatus]) -> str:
    if not sessions:
        return "No interpretation is running in this server. Start one with `/interpret start`."
    blocks = []
    for status in sessions:
        blocks.append(
            "\n".join(
                [
                    f"**{channel_mention(status.source_channel_id)}**: **{status.source}** → "
                    + ", ".join(f"**{t}**" for t in status.targets),
                    *(placement_line(status.placements[t]) for t in status.targets if t in status.placements),
                    f"Speakers heard: {_speakers(status.speakers_heard)}",
                    f"Uptime: {duration(status.uptime_s)} · latency p50 {_seconds(status.latency_p50_s)}, "
                    f"p90 {_seconds(status.latency_p90_s)} · packets {status.packets}, "
                    f"decrypt failures {status.decrypt_failures}",
                    *_paused_line(status),
                    _runner(status),
                ]
            )
        )
    return clip("\n\n".join(blocks))


@app_commands.guild_only()
class Interpret(commands.GroupCog, group_name="interpret", group_description="Live interpretation of a voice channel"):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="start", description="Interpret the voice channel you are in")
    @app_commands.describe(
        source="Language spoken in the channel (a code such as en, or auto); default: the server's setting",
        targets="Comma-separated target languages, e.g. es, fr; default: the server's setting",
    )
    @app_commands.autocomplete(source=source_autocomplete, targets=targets_autocomplete)
    async def start(
        self, interaction: discord.Interaction, source: str | None = None, targets: str | None = None
    ) -> None:
        manager = interpretation_manager(interaction)
        guild = await ready_guild(interaction)
        voice_channel = caller_voice_channel(interaction)
        if voice_channel is None:
            raise CommandInputError("Join the voice channel you want interpreted, then run `/interpret start` again.")
        source_choice = parse_source(source) if source else None
        target_choice = parse_targets(targets) if targets else None
        await defer(interaction)
        report = await manager.start(
            guild=guild,
            voice_channel=voice_channel,
            requested_by=interaction.user,
            source=source_choice.codes[0] if source_choice else None,
            targets=target_choice.codes if target_choice else None,
        )
        warnings = [
            *(source_choice.warnings if source_choice else []),
            *(target_choice.warnings if target_choice else []),
        ]
        report.warnings = [*warnings, *report.warnings]
        await interaction.followup.send(start_text(report, voice_channel.id))

    @app_commands.command(name="stop", description="Stop interpreting your voice channel")
    async def stop(self, interaction: discord.Interaction) -> None:
        manager = interpretation_manager(interaction)
        await ready_guild(interaction)
        channel_id = await self._channel_to_stop(interaction, manager)
        await defer(interaction)
        report = await manager.stop(guild_id=guild_id_of(interaction), channel_id=channel_id)
        await interaction.followup.send(stop_text(report))

    @staticmethod
    async def _channel_to_stop(interaction: discord.Interaction, manager: Interpretation) -> int | None:
        """The caller's channel if it is being interpreted; None (the server's session) for those who
        may configure; otherwise a refusal that says where to go."""
        voice_channel = caller_voice_channel(interaction)
        running = [status.source_channel_id for status in manager.status(guild_id_of(interaction))]
        if voice_channel is not None and (voice_channel.id in running or not running):
            return voice_channel.id
        if await may_configure(interaction) or not running:
            return None
        where = ", ".join(channel_mention(channel_id) for channel_id in running)
        raise NotAllowed(
            f"Join the voice channel being interpreted ({where}) to stop it; "
            "members with the Manage Server permission can stop it from anywhere."
        )

    @app_commands.command(name="status", description="Languages, channels, speakers and latency of running sessions")
    async def status(self, interaction: discord.Interaction) -> None:
        manager = interpretation_manager(interaction)
        sessions = manager.status(guild_id_of(interaction))
        await interaction.response.send_message(status_text(sessions), ephemeral=True)

    @app_commands.command(
        name="overlay", description="A private link to live captions of your session (OBS or a browser)"
    )
    @app_commands.describe(language="The source language or one target language; default: the source language")
    @app_commands.autocomplete(language=overlay_language_autocomplete)
    async def overlay(self, interaction: discord.Interaction, language: str | None = None) -> None:
        overlay = overlay_service(interaction)
        running = overlay.session_for(guild_id_of(interaction), voice_channel_id(interaction))
        if not await may_configure(interaction) and await overlay.started_by(running.session_id) != interaction.user.id:
            raise NotAllowed(
                "Only the member who started this session, or members who may configure the bot "
                "(Manage Server or the bot's configuration role), can get its caption link."
            )
        link = overlay.link(running, language)
        await interaction.response.send_message(overlay_text(link), ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Interpret(bot))
