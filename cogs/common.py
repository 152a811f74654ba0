"""What every cog shares: input errors, the configure permission check, language parsing and
autocomplete, and small reply helpers. No feature lives here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.client import InterpreterBot
from bot.errors import UserFacingError
from bot.messages import clip
from bot.palabra import languages
from bot.palabra.errors import InvalidTaskError

if TYPE_CHECKING:
    from bot.services import Interpretation, Services

MAX_TARGETS = 10
MAX_CHOICES = 25  # Discord's limit for autocomplete choices
GUILD_WAIT_S = 10.0  # how long a command waits for its server's GUILD_CREATE right after the bot comes online
GUILD_POLL_S = 0.1


class CommandInputError(UserFacingError):
    """Bad input to a command; `user_message` says what was wrong and what is accepted."""


class NotAllowed(app_commands.CheckFailure):
    """The caller may not use a command; the message says who may."""


# ---- permissions ----------------------------------------------------------------------------------


async def config_role_id(bot: InterpreterBot, guild_id: int) -> int | None:
    from bot.db import guilds

    async with bot.services.database.session() as s:
        settings = await guilds.get_guild_settings(s, guild_id)
    return settings.config_role_id if settings else None


def has_manage_guild(interaction: discord.Interaction) -> bool:
    return bool(interaction.permissions.manage_guild)


def has_role(interaction: discord.Interaction, role_id: int | None) -> bool:
    user = interaction.user
    return role_id is not None and isinstance(user, discord.Member) and user.get_role(role_id) is not None


async def may_configure(interaction: discord.Interaction) -> bool:
    """Manage Server, or the role the server named with `/setup role`."""
    try:
        await require_configure(interaction)
    except NotAllowed:
        return False
    return True


def who_may_configure(role_id: int | None) -> str:
    role = f" or the <@&{role_id}> role" if role_id else ""
    return f"members with the Manage Server permission{role}"


async def require_configure(interaction: discord.Interaction) -> None:
    """Raise NotAllowed (an ephemeral refusal) unless the caller may change the server's settings."""
    if interaction.guild_id is None:
        raise NotAllowed("Server settings can only be changed inside the server.")
    if has_manage_guild(interaction):
        return
    role_id = await config_role_id(interaction.client, interaction.guild_id)  # type: ignore[arg-type]
    if not has_role(interaction, role_id):
        raise NotAllowed(f"Only {who_may_configure(role_id)} can do this.")


def caller_voice_channel(interaction: discord.Interaction) -> discord.VoiceChannel | discord.StageChannel | None:
    user = interaction.user
    voice = user.voice if isinstance(user, discord.Member) else None
    return voice.channel if voice is not None else None


# ---- languages ------------------------------------------------------------------------------------


@dataclass
class LanguageChoice:
    """Normalised codes, and a warning for each code Palabra does not list (sent anyway)."""

    codes: list[str]
    warnings: list[str] = field(default_factory=list)


def _checked(code: str, check: Callable[[str], str | None]) -> tuple[str, str | None]:
    try:
        warning = check(code)
    except InvalidTaskError as exc:
        raise CommandInputError(f"{exc}. See `/languages` for the accepted codes.") from None
    return languages.normalise(code), warning


def parse_source(text: str) -> LanguageChoice:
    """One source code or `auto`. Unknown but well-formed codes are kept with a warning."""
    code, warning = _checked(text, languages.check_source)
    return LanguageChoice([code], [warning] if warning else [])


def parse_target(text: str) -> LanguageChoice:
    code, warning = _checked(text, languages.check_target)
    return LanguageChoice([code], [warning] if warning else [])


def parse_targets(text: str) -> LanguageChoice:
    """Comma- or space-separated target codes, duplicates dropped, order kept."""
    parts = [part for part in text.replace(",", " ").split() if part]
    if not parts:
        raise CommandInputError("Give at least one target language, e.g. `es` or `es, fr, de`.")
    try:
        result = LanguageChoice(*languages.check_targets(parts))
    except InvalidTaskError as exc:
        raise CommandInputError(f"{exc}. See `/languages` for the accepted codes.") from None
    if len(result.codes) > MAX_TARGETS:
        raise CommandInputError(f"At most {MAX_TARGETS} target languages at once; you gave {len(result.codes)}.")
    return result


def _ranked(current: str, codes: Iterable[str]) -> list[str]:
    wanted = languages.normalise(current)
    ordered = sorted(codes)
    starts = [c for c in ordered if c.startswith(wanted)]
    contains = [c for c in ordered if wanted in c and c not in starts]
    return (starts + contains)[:MAX_CHOICES]


async def source_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=code, value=code) for code in _ranked(current, languages.SOURCE_LANGUAGES)]


async def target_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=code, value=code) for code in _ranked(current, languages.TARGET_LANGUAGES)]


async def targets_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """Completes the last code of a comma-separated list, keeping the ones already typed."""
    head, _, last = current.rpartition(",")
    done = [languages.normalise(c) for c in head.split(",") if c.strip()]
    prefix = ", ".join(done)
    choices = []
    for code in _ranked(last, languages.TARGET_LANGUAGES - set(done)):
        value = f"{prefix}, {code}" if prefix else code
        if len(value) <= 100:
            choices.append(app_commands.Choice(name=value, value=value))
    return choices


# ---- replies --------------------------------------------------------------------------------------


def channel_mention(channel_id: int | None, default: str = "not set") -> str:
    return f"<#{channel_id}>" if channel_id else default


def with_warnings(text: str, warnings: Iterable[str]) -> str:
    unique = list(dict.fromkeys(w for w in warnings if w))
    if unique:
        text += "\n" + "\n".join(f"⚠️ {w}" for w in unique)
    return clip(text)


def services_of(interaction: discord.Interaction) -> Services:
    client = interaction.client
    assert isinstance(client, InterpreterBot), "the cogs run in the listener bot"
    return client.services


def guild_of(interaction: discord.Interaction) -> discord.Guild:
    """The server the command was used in (commands that need one are guild-only)."""
    if interaction.guild is None:
        raise CommandInputError("This command works only inside a server.")
    return interaction.guild


def guild_id_of(interaction: discord.Interaction) -> int:
    """The server the command was used in (commands that need one are guild-only)."""
    if interaction.guild_id is None:
        raise CommandInputError("This command works only inside a server.")
    return interaction.guild_id


class GuildNotReady(UserFacingError):
    """Discord has not sent the server (GUILD_CREATE) within GUILD_WAIT_S of the command."""

    default_message = (
        "The bot has just come online and Discord has not sent it this server's channels and members yet; "
        "try again in a minute."
    )


def _guild_if_ready(interaction: discord.Interaction, guild_id: int) -> discord.Guild | None:
    guild = interaction.client.get_guild(guild_id)
    return guild if guild is not None and not guild.unavailable else None


async def defer(interaction: discord.Interaction, *, ephemeral: bool = False) -> None:
    """Acknowledge the command ("thinking…") unless that is done already."""
    if not interaction.response.is_done():
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)


async def ready_guild(interaction: discord.Interaction, *, ephemeral: bool = False) -> discord.Guild:
    """The command's server once discord.py has it. Between READY and GUILD_CREATE (right after the bot
    comes online) the guild is a placeholder without channels, members or voice states, so the reply is
    deferred and the wait bounded by GUILD_WAIT_S; then GuildNotReady."""
    guild_id = guild_id_of(interaction)
    guild = _guild_if_ready(interaction, guild_id)
    if guild is not None:
        return guild
    await defer(interaction, ephemeral=ephemeral)
    deadline = asyncio.get_running_loop().time() + GUILD_WAIT_S
    while (guild := _guild_if_ready(interaction, guild_id)) is None:
        if asyncio.get_running_loop().time() >= deadline:
            raise GuildNotReady()
        await asyncio.sleep(GUILD_POLL_S)
    return guild


class InterpretationUnavailable(UserFacingError):
    """The bot runs without an interpretation manager (a deployment without voice)."""

    default_message = "Interpretation is not available on this bot right now; ask its operator."


def interpretation_manager(interaction: discord.Interaction) -> Interpretation:
    manager = services_of(interaction).interpretation
    if manager is None:
        raise InterpretationUnavailable()
    return manager


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
