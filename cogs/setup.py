"""/setup languages|channel|transcripts|voice|role|autostop|show: the server's interpretation settings."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import discord
from discord import app_commands
from discord.ext import commands
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import guilds
from bot.db.engine import Database
from bot.db.models import GuildSettings
from bot.messages import clip
from bot.setup import channels as sibling_setup
from bot.setup import diagnostics
from cogs.common import (
    CommandInputError,
    NotAllowed,
    caller_voice_channel,
    channel_mention,
    defer,
    duration,
    has_manage_guild,
    parse_source,
    parse_target,
    parse_targets,
    ready_guild,
    require_configure,
    services_of,
    source_autocomplete,
    target_autocomplete,
    targets_autocomplete,
    who_may_configure,
    with_warnings,
)

DEFAULT_TRANSCRIPTS = "the source voice channel's own text chat"


def _guild_id(interaction: discord.Interaction) -> int:
    """Every /setup command is guild-only, so Discord always sends the server's id."""
    if interaction.guild_id is None:
        raise NotAllowed("This command works only inside a server.")
    return interaction.guild_id


def _not_a_target(language: str, settings: GuildSettings) -> list[str]:
    if language in settings.target_languages:
        return []
    current = ", ".join(settings.target_languages) or "none yet"
    return [f"{language!r} is not one of the server's target languages ({current}); add it with `/setup languages`"]


async def _loaded_settings(session: AsyncSession, guild_id: int) -> GuildSettings:
    """The settings row, held for the whole unit of work: the per-language setters reach the row's
    parent through its relationship, which needs the parent still in memory (no lazy IO under asyncio)."""
    return await guilds.get_or_create_guild_settings(session, guild_id)


def show_text(settings: GuildSettings, guild_id: int) -> str:
    targets = settings.target_languages
    channels = settings.sibling_channels
    voices = settings.voices
    lines = [
        "**Interpretation settings**",
        f"Source language: **{settings.source_language}**",
        f"Target languages: {', '.join(f'**{t}**' for t in targets) or 'none (set them with `/setup languages`)'}",
    ]
    for language in sorted(set(targets) | set(channels) | set(voices)):
        channel = channel_mention(channels.get(language), "no sibling channel")
        voice = f"voice `{voices[language]}`" if language in voices else "default voice"
        lines.append(f"• **{language}**: {channel}, {voice}")
    maximum = duration(settings.auto_stop_max_seconds) if settings.auto_stop_max_seconds else "no limit"
    lines += [
        f"Transcripts: {channel_mention(settings.transcript_channel_id, DEFAULT_TRANSCRIPTS)}",
        f"Auto-stop: {duration(settings.auto_stop_empty_seconds)} after the channel empties; at most {maximum}",
        f"Who may configure: {who_may_configure(settings.config_role_id)}",
    ]
    return clip("\n".join(lines))


@app_commands.guild_only()
class Setup(commands.GroupCog, group_name="setup", group_description="Server settings for interpretation"):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.command is not None and interaction.command.name == "show":
            return True
        await require_configure(interaction)
        return True

    def _session(self, interaction: discord.Interaction) -> AbstractAsyncContextManager[AsyncSession]:
        database: Database = services_of(interaction).database
        return database.session()

    @app_commands.command(name="languages", description="Default source and target languages for /interpret start")
    @app_commands.describe(
        source="Language spoken (a code such as en, or auto)", targets="Comma-separated target codes, e.g. es, fr"
    )
    @app_commands.autocomplete(source=source_autocomplete, targets=targets_autocomplete)
    async def languages(self, interaction: discord.Interaction, source: str, targets: str) -> None:
        source_choice, target_choice = parse_source(source), parse_targets(targets)
        async with self._session(interaction) as s:
            guild_id = _guild_id(interaction)
            settings = await guilds.set_languages(s, guild_id, source_choice.codes[0], target_choice.codes)
        text = f"Defaults set: **{settings.source_language}** → " + ", ".join(
            f"**{t}**" for t in settings.target_languages
        )
        await interaction.response.send_message(
            with_warnings(text, [*source_choice.warnings, *target_choice.warnings]), ephemeral=True
        )

    @app_commands.command(name="channel", description="The voice channel where a language is heard")
    @app_commands.describe(language="Target language code", channel="Its voice channel (leave out to clear)")
    @app_commands.autocomplete(language=target_autocomplete)
    async def channel(
        self, interaction: discord.Interaction, language: str, channel: discord.VoiceChannel | None = None
    ) -> None:
        choice = parse_target(language)
        code = choice.codes[0]
        async with self._session(interaction) as s:
            settings = await _loaded_settings(s, _guild_id(interaction))
            await guilds.set_language_channel(s, _guild_id(interaction), code, channel.id if channel else None)
        warnings = [*choice.warnings, *(_not_a_target(code, settings) if channel else [])]
        sharing = [
            lang for lang, cid in settings.sibling_channels.items() if channel and cid == channel.id and lang != code
        ]
        if sharing and channel is not None:
            warnings.append(
                f"{channel.mention} is also the channel of {', '.join(sharing)}; each language needs its own"
            )
        text = f"**{code}** is heard in {channel.mention}." if channel else f"**{code}** has no sibling channel now."
        await interaction.response.send_message(with_warnings(text, warnings), ephemeral=True)

    @app_commands.command(name="transcripts", description="Where transcripts are posted")
    @app_commands.describe(channel="A text channel or thread (leave out for the voice channel's own chat)")
    async def transcripts(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.Thread | discord.VoiceChannel | None = None,
    ) -> None:
        async with self._session(interaction) as s:
            await guilds.update_guild_setting(
                s, _guild_id(interaction), "transcript_channel_id", channel.id if channel else None
            )
        found = [] if channel is None else diagnostics.transcript_channel_problems(channel.guild.me, channel)
        warnings = [finding.text for finding in found]
        text = f"Transcripts go to {channel.mention}." if channel else f"Transcripts go to {DEFAULT_TRANSCRIPTS}."
        await interaction.response.send_message(with_warnings(text, warnings), ephemeral=True)

    @app_commands.command(name="voice", description="The Palabra voice a language is spoken with")
    @app_commands.describe(language="Target language code", voice="Palabra voice id (leave out for the default voice)")
    @app_commands.autocomplete(language=target_autocomplete)
    async def voice(self, interaction: discord.Interaction, language: str, voice: str | None = None) -> None:
        choice = parse_target(language)
        code = choice.codes[0]
        async with self._session(interaction) as s:
            settings = await _loaded_settings(s, _guild_id(interaction))
            await guilds.set_language_voice(s, _guild_id(interaction), code, voice)
        text = (
            f"**{code}** speaks with voice `{settings.voices[code]}`."
            if voice
            else f"**{code}** uses the default voice."
        )
        await interaction.response.send_message(
            with_warnings(text, [*choice.warnings, *(_not_a_target(code, settings) if voice else [])]), ephemeral=True
        )

    @app_commands.command(name="role", description="A role whose members may change these settings")
    @app_commands.describe(role="The role (leave out so only Manage Server can configure)")
    async def role(self, interaction: discord.Interaction, role: discord.Role | None = None) -> None:
        if not has_manage_guild(interaction):
            raise NotAllowed("Only members with the Manage Server permission can choose who may configure.")
        async with self._session(interaction) as s:
            settings = await guilds.update_guild_setting(
                s, _guild_id(interaction), "config_role_id", role.id if role else None
            )
        await interaction.response.send_message(
            f"Settings can now be changed by {who_may_configure(settings.config_role_id)}.", ephemeral=True
        )

    @app_commands.command(name="autostop", description="When a session stops by itself")
    @app_commands.describe(
        empty_minutes="Minutes after the source channel empties", max_hours="Longest session in hours (0 = no limit)"
    )
    async def autostop(
        self,
        interaction: discord.Interaction,
        empty_minutes: app_commands.Range[int, 1, 1440] | None = None,
        max_hours: app_commands.Range[int, 0, 48] | None = None,
    ) -> None:
        if empty_minutes is None and max_hours is None:
            raise CommandInputError("Give `empty_minutes` (1–1440), `max_hours` (0–48, 0 = no limit), or both.")
        # Discord enforces the ranges in its client; a crafted request is refused here too.
        if empty_minutes is not None and not 1 <= empty_minutes <= 1440:
            raise CommandInputError(f"`empty_minutes` must be from 1 to 1440; got {empty_minutes}.")
        if max_hours is not None and not 0 <= max_hours <= 48:
            raise CommandInputError(f"`max_hours` must be from 0 (no limit) to 48; got {max_hours}.")
        async with self._session(interaction) as s:
            if empty_minutes is not None:
                await guilds.update_guild_setting(
                    s, _guild_id(interaction), "auto_stop_empty_seconds", empty_minutes * 60
                )
            if max_hours is not None:
                await guilds.update_guild_setting(
                    s, _guild_id(interaction), "auto_stop_max_seconds", max_hours * 3600 or None
                )
            settings = await guilds.get_or_create_guild_settings(s, _guild_id(interaction))
        maximum = duration(settings.auto_stop_max_seconds) if settings.auto_stop_max_seconds else "no limit"
        await interaction.response.send_message(
            f"Sessions stop {duration(settings.auto_stop_empty_seconds)} after the channel empties; at most {maximum}.",
            ephemeral=True,
        )

    @app_commands.command(name="show", description="The server's interpretation settings")
    async def show(self, interaction: discord.Interaction) -> None:
        async with self._session(interaction) as s:
            settings = await guilds.get_or_create_guild_settings(s, _guild_id(interaction))
        await interaction.response.send_message(show_text(settings, _guild_id(interaction)), ephemeral=True)

    @app_commands.command(
        name="check", description="Diagnose this server: permissions, speaker bots, channels, Palabra"
    )
    async def check(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await ready_guild(interaction, ephemeral=True)
        services = services_of(interaction)
        async with self._session(interaction) as s:
            settings = await guilds.get_or_create_guild_settings(s, _guild_id(interaction))
        source = caller_voice_channel(interaction)
        view = diagnostics.ServerView(interaction.guild, settings, source)  # type: ignore[arg-type]
        pool = services.speakers
        report = await diagnostics.diagnose(
            view,
            speakers=diagnostics.SpeakerBots(
                pool.ready_speakers() if pool is not None else [],
                configured=len(services.settings.speaker_tokens),
                logging_in=pool.logging_in if pool is not None else 0,
                failed=pool.failed_logins if pool is not None else 0,
            ),
            palabra=services.palabra,
            palabra_url=services.settings.palabra_api_url,
            database=services.database,
        )
        embed = discord.Embed(
            title=report.title, description=clip("\n".join(report.lines()), 4096), colour=report.colour
        )
        await interaction.followup.send(embed=embed, ephemeral=True)

    @app_commands.command(
        name="create-channels", description="Create a voice channel for each target language that has none"
    )
    async def create_channels(self, interaction: discord.Interaction) -> None:
        await ready_guild(interaction, ephemeral=True)
        anchor = caller_voice_channel(interaction)
        if anchor is None or not isinstance(interaction.user, discord.Member):
            raise CommandInputError(
                "Join the voice channel to be interpreted first: the new channels are created next to it."
            )
        async with self._session(interaction) as s:
            settings = await guilds.get_or_create_guild_settings(s, _guild_id(interaction))
        targets = list(settings.target_languages)
        if not targets:
            raise CommandInputError("Set the target languages first with `/setup languages`.")
        await defer(interaction, ephemeral=True)
        result = await sibling_setup.create_sibling_channels(
            services_of(interaction).database,
            interaction.guild,  # type: ignore[arg-type]
            anchor,
            interaction.user,
            targets,
            dict(settings.sibling_channels),
        )
        await interaction.followup.send(clip(sibling_setup.describe(result, anchor)), ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Setup(bot))
