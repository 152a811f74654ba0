"""Guild settings: defaults for `/interpret start`, the `/setup` commands' storage."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.errors import InvalidSetting
from bot.db.models import LANGUAGE_CODE_LENGTH, GuildLanguage, GuildSettings
from bot.db.rows import insert_ignoring_conflicts


async def get_guild_settings(session: AsyncSession, guild_id: int) -> GuildSettings | None:
    """The guild's settings row, or None if the guild never configured anything."""
    return await session.get(GuildSettings, guild_id)


async def get_or_create_guild_settings(session: AsyncSession, guild_id: int) -> GuildSettings:
    """The guild's settings, created with the defaults on first use (safe under concurrency)."""
    settings = await session.get(GuildSettings, guild_id)
    if settings is not None:
        return settings
    await insert_ignoring_conflicts(session, GuildSettings, _defaults_row(guild_id))
    settings = await session.get(GuildSettings, guild_id, populate_existing=True)
    assert settings is not None, "the row was just inserted or already existed"
    return settings


def _defaults_row(guild_id: int) -> dict[str, Any]:
    """Column defaults evaluated in Python, as a plain INSERT would apply them."""
    row: dict[str, Any] = {"guild_id": guild_id}
    for column in GuildSettings.__table__.columns:
        if column.default is not None and column.name != "guild_id":
            default = column.default
            row[column.name] = default.arg(None) if default.is_callable else default.arg
    return row


def _language(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > LANGUAGE_CODE_LENGTH:
        raise InvalidSetting(f"language code must be a non-empty text of at most {LANGUAGE_CODE_LENGTH} characters")
    return value.strip().lower()


def _languages(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, Iterable):
        raise InvalidSetting("target languages must be a list of language codes")
    codes = [_language(code) for code in value]
    return list(dict.fromkeys(codes))  # drop duplicates, keep order


def _optional_snowflake(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidSetting("a Discord id must be a positive integer (or none to clear it)")
    return value


def _volume(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 2:
        raise InvalidSetting("a volume must be a number from 0 (silent) to 2 (double); 1 is unchanged")
    return float(value)


def _seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSetting("seconds must be a whole number, 0 or more")
    return value


def _optional_seconds(value: Any) -> int | None:
    return None if value is None else _seconds(value)


def _days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSetting("retention must be a whole number of days, 0 or more (0 keeps no transcripts)")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidSetting("must be true or false")
    return value


# Settings `update_guild_setting` may change, each with the validator of its values.
EDITABLE_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "source_language": _language,
    "target_languages": _languages,
    "transcript_channel_id": _optional_snowflake,
    "config_role_id": _optional_snowflake,
    "floor_audio_enabled": _flag,
    "floor_volume_base": _volume,
    "floor_volume_ducked": _volume,
    "auto_stop_empty_seconds": _seconds,
    "auto_stop_max_seconds": _optional_seconds,
    "transcript_retention_days": _days,
}


async def update_guild_setting(session: AsyncSession, guild_id: int, name: str, value: Any) -> GuildSettings:
    """Set one setting (see EDITABLE_SETTINGS); raises InvalidSetting naming what is accepted."""
    validate = EDITABLE_SETTINGS.get(name)
    if validate is None:
        raise InvalidSetting(f"unknown setting {name!r}; settings are: {', '.join(EDITABLE_SETTINGS)}")
    try:
        clean = validate(value)
    except InvalidSetting as exc:
        raise InvalidSetting(f"{name}: {exc}") from None
    settings = await get_or_create_guild_settings(session, guild_id)
    setattr(settings, name, clean)
    await session.flush()
    return settings


async def set_languages(
    session: AsyncSession, guild_id: int, source: str, targets: Iterable[str] | str
) -> GuildSettings:
    """`/setup languages`: the source code (or "auto") and the target codes."""
    await update_guild_setting(session, guild_id, "source_language", source)
    return await update_guild_setting(session, guild_id, "target_languages", targets)


async def _language_row(session: AsyncSession, guild_id: int, language: str) -> tuple[GuildSettings, GuildLanguage]:
    # The settings object is returned with the row and held by the caller: `row.guild` is only a weak
    # back-reference in the identity map, and lazy-loading it again is not allowed under asyncio.
    settings = await get_or_create_guild_settings(session, guild_id)
    for row in settings.languages:
        if row.language == language:
            return settings, row
    row = GuildLanguage(guild_id=guild_id, language=language)
    settings.languages.append(row)
    return settings, row


async def _prune_language(session: AsyncSession, settings: GuildSettings, row: GuildLanguage) -> None:
    """A language row with nothing in it is noise: remove it."""
    if row.voice_channel_id is None and row.voice_id is None:
        settings.languages.remove(row)
    await session.flush()


async def set_language_channel(
    session: AsyncSession, guild_id: int, language: str, channel_id: int | None
) -> GuildSettings:
    """`/setup channel`: the sibling voice channel for a language (None clears it)."""
    language = _language(language)
    settings, row = await _language_row(session, guild_id, language)
    row.voice_channel_id = _optional_snowflake(channel_id)
    await _prune_language(session, settings, row)
    return settings


async def clear_language_channel(session: AsyncSession, guild_id: int, language: str) -> GuildSettings:
    return await set_language_channel(session, guild_id, language, None)


async def set_language_voice(
    session: AsyncSession, guild_id: int, language: str, voice_id: str | None
) -> GuildSettings:
    """`/setup voice`: the Palabra voice id for a language (None clears it)."""
    language = _language(language)
    if voice_id is not None and (not isinstance(voice_id, str) or not voice_id.strip() or len(voice_id) > 128):
        raise InvalidSetting("voice id must be a non-empty text of at most 128 characters")
    settings, row = await _language_row(session, guild_id, language)
    row.voice_id = voice_id.strip() if voice_id else None
    await _prune_language(session, settings, row)
    return settings
