"""The main Discord client: loads the cogs, syncs the slash commands, turns errors into replies.

Every failure a user can cause or meet ends as an ephemeral message: errors the project raises on
purpose show their user-facing text; anything else shows a short reference id that is also logged
with the traceback, so a report from a user can be matched to the log line.
"""

from __future__ import annotations

import importlib.util
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserFacingError
from bot.messages import clip
from bot.shards import ShardPlan
from bot.voice import adapter

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

CORE_EXTENSIONS: tuple[str, ...] = ("cogs.interpret", "cogs.setup", "cogs.languages", "cogs.privacy")
# Feature cogs built separately join when present, so a checkout without them still starts.
OPTIONAL_EXTENSIONS: tuple[str, ...] = ("cogs.broadcast",)


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


EXTENSIONS: tuple[str, ...] = CORE_EXTENSIONS + tuple(m for m in OPTIONAL_EXTENSIONS if _available(m))


def default_intents() -> discord.Intents:
    """Guilds and voice states are all the bot needs: no message content, no member list."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.voice_states = True
    return intents


def user_message_of(error: BaseException) -> str | None:
    """The text a user may see: a `UserFacingError`'s message; None for anything else."""
    return error.user_message if isinstance(error, UserFacingError) else None


def new_reference() -> str:
    return secrets.token_hex(4)


async def reply_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Answer privately whatever state the interaction is in (unanswered, deferred or answered)."""
    text = clip(text)
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True)
        return
    if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
        # A public "thinking…" placeholder would otherwise stay; the error goes privately instead.
        try:
            await interaction.delete_original_response()
        except discord.HTTPException:
            log.debug("could not delete the deferred response of interaction %s", interaction.id)
    await interaction.followup.send(text, ephemeral=True)


class InterpreterTree(app_commands.CommandTree):
    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError, /) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        text = user_message_of(cause) or self._app_command_error_text(cause)
        if text is None:
            reference = new_reference()
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "command /%s failed (reference %s, guild %s, user %s)",
                command,
                reference,
                interaction.guild_id,
                interaction.user.id,
                exc_info=cause,
            )
            text = f"Something went wrong (reference {reference}). The error was logged; please try again later."
        else:
            log.info("command refused for user %s in guild %s: %s", interaction.user.id, interaction.guild_id, text)
        try:
            await reply_ephemeral(interaction, text)
        except discord.HTTPException:
            log.warning("could not tell user %s about a failed command", interaction.user.id, exc_info=True)

    @staticmethod
    def _app_command_error_text(error: BaseException) -> str | None:
        """discord.py's own refusals (checks, conversions) carry messages meant for users."""
        if isinstance(error, app_commands.CommandInvokeError):
            return None
        if isinstance(error, app_commands.NoPrivateMessage):
            return "This command works only inside a server."
        if isinstance(error, app_commands.TransformerError):
            value = error.value
            mentionable = (
                discord.abc.User,
                discord.abc.GuildChannel,
                discord.Thread,
                discord.Role,
                app_commands.AppCommandChannel,
                app_commands.AppCommandThread,
            )
            given = value.mention if isinstance(value, mentionable) else repr(value)
            expected = adapter.transformer_display_name(error.transformer)
            return f"{given} is not accepted there; expected: {expected}."
        if isinstance(error, app_commands.AppCommandError) and str(error):
            return str(error)
        return None


class InterpreterBot(commands.AutoShardedBot):
    """The listener bot account: slash commands and the cogs; `self.services` is shared with them.

    It runs exactly this process's shards (SHARD_IDS of SHARD_COUNT), like every speaker client, so each
    guild's listener and speakers are in the same process.
    """

    def __init__(
        self,
        services: Services | Callable[[InterpreterBot], Services],
        *,
        shards: ShardPlan | None = None,
        **kwargs: Any,
    ) -> None:
        """`services`, or the function that builds them around this client (the interpretation manager
        needs the listener client it belongs to); `shards` (default: from the services' settings) must
        be given with a function, whose settings are not known yet."""
        if shards is None:
            if callable(services):
                raise TypeError("InterpreterBot(services_for, ...) needs shards=ShardPlan.of(settings)")
            shards = ShardPlan.of(services.settings)
        for key, value in shards.client_kwargs().items():
            kwargs.setdefault(key, value)
        kwargs.setdefault("command_prefix", commands.when_mentioned)
        kwargs.setdefault("intents", default_intents())
        kwargs.setdefault("tree_cls", InterpreterTree)
        kwargs.setdefault("help_command", None)
        super().__init__(**kwargs)
        self.services: Services = services(self) if callable(services) else services
        self.extensions_to_load: tuple[str, ...] = EXTENSIONS

    async def setup_hook(self) -> None:
        for extension in self.extensions_to_load:
            await self.load_extension(extension)
        synced = await self.tree.sync()
        log.info("loaded %d extensions; synced %d slash commands", len(self.extensions_to_load), len(synced))
