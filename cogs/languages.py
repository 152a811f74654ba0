"""/languages: the source and target codes Palabra accepts."""

from __future__ import annotations

from collections.abc import Iterable

import discord
from discord import app_commands
from discord.ext import commands

from bot.messages import clip
from bot.palabra import languages

FIELD_LIMIT = 1024  # characters in an embed field's value


def codes(values: Iterable[str]) -> str:
    return clip(" ".join(f"`{code}`" for code in sorted(values)), FIELD_LIMIT)


def languages_embed() -> discord.Embed:
    sources = languages.SOURCE_LANGUAGES - {languages.AUTO}
    embed = discord.Embed(
        title="Supported languages",
        description=(
            "Use these codes with `/interpret start` and `/setup`. Palabra adds languages from time to time: "
            "a code not listed here is sent anyway, with a warning."
        ),
    )
    embed.add_field(name=f"Source languages ({len(sources)})", value=codes(sources), inline=False)
    embed.add_field(name="Source `auto` detects one of", value=codes(languages.AUTO_DETECTABLE), inline=False)
    embed.add_field(
        name=f"Target languages ({len(languages.TARGET_LANGUAGES)})",
        value=codes(languages.TARGET_LANGUAGES),
        inline=False,
    )
    return embed


class Languages(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="languages", description="Supported source and target languages")
    async def languages(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(embed=languages_embed(), ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Languages(bot))
