"""/privacy optout|optin|delete: a user's own choices about their voice and data."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import user_privacy
from cogs.common import services_of

EVERYWHERE = "Apply to every server this bot is in (default: this server only)"


def _where(everywhere: bool) -> str:
    return "in every server" if everywhere else "in this server"


@app_commands.guild_only()
class Privacy(commands.GroupCog, group_name="privacy", group_description="Your voice and data"):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="optout", description="Leave your voice out of interpretation")
    @app_commands.describe(everywhere=EVERYWHERE)
    async def optout(self, interaction: discord.Interaction, everywhere: bool = False) -> None:
        scope = None if everywhere else interaction.guild_id
        changed = await user_privacy.opt_out(services_of(interaction), interaction.user.id, scope)
        state = "Your voice is now left out" if changed else "Your voice was already left out"
        await interaction.response.send_message(
            f"{state} of interpretation {_where(everywhere)}, from the next moment you speak. "
            "Undo it with `/privacy optin`.",
            ephemeral=True,
        )

    @app_commands.command(name="optin", description="Let your voice be interpreted again")
    @app_commands.describe(everywhere=EVERYWHERE)
    async def optin(self, interaction: discord.Interaction, everywhere: bool = False) -> None:
        scope = None if everywhere else interaction.guild_id
        result = await user_privacy.opt_in(services_of(interaction), interaction.user.id, scope)
        text = (
            f"Your opt-out {_where(everywhere)} is removed."
            if result.changed
            else f"You had not opted out {_where(everywhere)}."
        )
        if result.still_opted_out:
            other = "for every server" if not everywhere else "for some servers"
            other_flag = "with `everywhere: True`" if not everywhere else "in those servers"
            text += f" You still have an opt-out {other}; run `/privacy optin` {other_flag} to remove it."
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(name="delete", description="Delete the transcripts of what you said")
    @app_commands.describe(everywhere=EVERYWHERE)
    async def delete(self, interaction: discord.Interaction, everywhere: bool = False) -> None:
        scope = None if everywhere else interaction.guild_id
        result = await user_privacy.delete_data(services_of(interaction), interaction.user.id, scope)
        lines = f"{result.transcript_lines} transcript line{'s' if result.transcript_lines != 1 else ''}"
        text = f"Deleted {lines} of yours {_where(everywhere)}."
        if result.kept_opt_outs:
            text += " Your opt-out stays in force (it is what keeps your voice out); remove it with `/privacy optin`."
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Privacy(bot))
