"""`/setup create-channels`: a voice channel per target language that has none, named in that language,
next to the source voice channel (in its category), recorded as the language's sibling channel.

A channel is created as the bot, so it needs Manage Channels (in the category, or the server); so does
the caller, so the command never lets someone create channels they could not create themselves. New
channels get no overwrites of their own: they take the category's (synced), like one made by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord

from bot.errors import UserFacingError

if TYPE_CHECKING:
    from bot.db.engine import Database

# Each Palabra target language's own name for itself (its endonym), as a listener looks for it.
ENDONYMS: dict[str, str] = {
    "ar": "العربية",
    "ar-ae": "العربية (الإمارات)",
    "ar-sa": "العربية (السعودية)",
    "az": "Azərbaycanca",
    "be": "Беларуская",
    "bg": "Български",
    "bs": "Bosanski",
    "ca": "Català",
    "cs": "Čeština",
    "cy": "Cymraeg",
    "da": "Dansk",
    "de": "Deutsch",
    "el": "Ελληνικά",
    "en": "English",
    "en-au": "English (Australia)",
    "en-ca": "English (Canada)",
    "en-gb": "English (UK)",
    "en-us": "English (US)",
    "es": "Español",
    "es-ar": "Español (Argentina)",
    "es-co": "Español (Colombia)",
    "es-la": "Español (Latinoamérica)",
    "es-mx": "Español (México)",
    "et": "Eesti",
    "fi": "Suomi",
    "fil": "Filipino",
    "fr": "Français",
    "fr-ca": "Français (Canada)",
    "gl": "Galego",
    "he": "עברית",
    "hi": "हिन्दी",
    "hr": "Hrvatski",
    "hu": "Magyar",
    "hy": "Հայերեն",
    "id": "Bahasa Indonesia",
    "is": "Íslenska",
    "it": "Italiano",
    "ja": "日本語",
    "kk": "Қазақша",
    "ko": "한국어",
    "lt": "Lietuvių",
    "lv": "Latviešu",
    "mk": "Македонски",
    "ms": "Bahasa Melayu",
    "nl": "Nederlands",
    "no": "Norsk",
    "pl": "Polski",
    "pt": "Português",
    "pt-br": "Português (Brasil)",
    "ro": "Română",
    "ru": "Русский",
    "sk": "Slovenčina",
    "sl": "Slovenščina",
    "sr": "Српски",
    "sv": "Svenska",
    "sw": "Kiswahili",
    "ta": "தமிழ்",
    "th": "ไทย",
    "tr": "Türkçe",
    "uk": "Українська",
    "ur": "اردو",
    "vi": "Tiếng Việt",
    "zh": "中文",
    "zh-hans": "中文（简体）",
    "zh-hant": "中文（繁體）",
}


def channel_name(code: str) -> str:
    """The language's own name; for a regional code not in the table, the base language's name with the
    region (`es-ch` -> "Español (CH)"); for an unknown language, the code itself."""
    if code in ENDONYMS:
        return ENDONYMS[code]
    base, _, region = code.partition("-")
    if base in ENDONYMS:
        return f"{ENDONYMS[base]} ({region.upper()})" if region else ENDONYMS[base]
    return code


class CannotCreateChannels(UserFacingError):
    """Refused before creating anything; `user_message` says why and what to do."""


@dataclass
class ChannelsCreated:
    created: dict[str, discord.VoiceChannel] = field(default_factory=dict)
    reused: dict[str, discord.VoiceChannel] = field(default_factory=dict)  # same name, same place, not a sibling yet
    kept: dict[str, int] = field(default_factory=dict)  # already had a channel
    failed: dict[str, str] = field(default_factory=dict)  # language -> why


def _where(category: discord.CategoryChannel | None) -> str:
    return f"the **{category.name}** category" if category else "the server"


def require_manage_channels(
    guild: discord.Guild, category: discord.CategoryChannel | None, caller: discord.Member
) -> None:
    """Both the bot and the caller need Manage Channels where the channels go."""

    def allowed(member: discord.Member) -> bool:
        perms = category.permissions_for(member) if category else member.guild_permissions
        return perms.manage_channels

    if not allowed(caller):
        raise CannotCreateChannels(
            f"You need the Manage Channels permission in {_where(category)} to create channels. Ask an admin, "
            "or set existing voice channels with `/setup channel`."
        )
    if not allowed(guild.me):
        raise CannotCreateChannels(
            f"The bot needs the Manage Channels permission in {_where(category)} to create channels. Fix: Server "
            f"Settings → Roles → **{guild.me.display_name}**'s role → allow Manage Channels (you can remove it "
            "afterwards), or set existing voice channels with `/setup channel`."
        )


def languages_without_channel(guild: discord.Guild, targets: Sequence[str], siblings: dict[str, int]) -> list[str]:
    """Targets with no sibling channel, or one that no longer exists (or is no voice channel)."""
    return [
        t
        for t in targets
        if not isinstance(guild.get_channel(siblings.get(t, 0)), (discord.VoiceChannel, discord.StageChannel))
    ]


async def create_sibling_channels(
    database: Database,
    guild: discord.Guild,
    anchor: discord.VoiceChannel | discord.StageChannel,
    caller: discord.Member,
    targets: Sequence[str],
    siblings: dict[str, int],
) -> ChannelsCreated:
    """Create (or reuse, by exact name in the same place) a voice channel per language without one, and
    record each as the language's sibling channel as soon as it exists."""
    from bot.db import guilds

    category = anchor.category
    wanted = languages_without_channel(guild, targets, siblings)
    result = ChannelsCreated(kept={t: siblings[t] for t in targets if t not in wanted})
    if not wanted:
        return result
    require_manage_channels(guild, category, caller)
    nearby = category.voice_channels if category else [c for c in guild.voice_channels if c.category is None]
    taken = set(siblings.values())
    for language in wanted:
        name = channel_name(language)
        same = next((c for c in nearby if c.name == name and c.id not in taken and c.id != anchor.id), None)
        if same is not None:
            channel, bucket = same, result.reused
        else:
            try:
                channel = await guild.create_voice_channel(
                    name, category=category, reason=f"/setup create-channels by {caller} ({caller.id})"
                )
            except discord.HTTPException as exc:
                result.failed[language] = f"Discord refused ({exc.status}: {exc.text or 'no reason given'})"
                continue
            bucket = result.created
        async with database.session() as s:
            await guilds.set_language_channel(s, guild.id, language, channel.id)
        bucket[language] = channel
        taken.add(channel.id)
    return result


def describe(result: ChannelsCreated, anchor: discord.abc.GuildChannel) -> str:
    category = getattr(anchor, "category", None)
    lines = []
    if result.created:
        made = ", ".join(f"<#{c.id}> for **{lang}**" for lang, c in result.created.items())
        lines.append(f"Created {made} in {_where(category)}, next to <#{anchor.id}>.")
    if result.reused:
        lines.append(
            "Used the existing " + ", ".join(f"<#{c.id}> for **{lang}**" for lang, c in result.reused.items()) + "."
        )
    if result.created or result.reused:
        lines.append(
            "They are recorded as the languages' voice channels; "
            "`/setup check` shows whether the speaker bots can play there."
        )
    if result.kept:
        lines.append("Already set: " + ", ".join(f"**{lang}** → <#{cid}>" for lang, cid in result.kept.items()) + ".")
    for language, why in result.failed.items():
        lines.append(f"⚠️ No channel for **{language}**: {why}.")
    if not (result.created or result.reused or result.failed):
        lines.insert(0, "Every target language already has its voice channel; nothing to create.")
    return "\n".join(lines)
