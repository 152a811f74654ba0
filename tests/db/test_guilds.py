from __future__ import annotations

import asyncio

import pytest

from bot.db import guilds
from bot.db.errors import InvalidSetting
from bot.db.models import DEFAULT_AUTO_STOP_EMPTY_SECONDS, DEFAULT_SOURCE_LANGUAGE, GuildLanguage

GUILD = 1_234_567_890_123_456_789  # needs 64 bits
CHANNEL_ES = 987_654_321_098_765_432
CHANNEL_FR = 987_654_321_098_765_433


async def test_get_or_create_applies_defaults_once(db):
    async with db.session() as s:
        assert await guilds.get_guild_settings(s, GUILD) is None
        created = await guilds.get_or_create_guild_settings(s, GUILD)
        assert created.guild_id == GUILD
        assert created.source_language == DEFAULT_SOURCE_LANGUAGE
        assert created.target_languages == []
        assert created.auto_stop_empty_seconds == DEFAULT_AUTO_STOP_EMPTY_SECONDS
        assert created.created_at.tzinfo is not None
    async with db.session() as s:
        again = await guilds.get_or_create_guild_settings(s, GUILD)
        assert again.created_at == created.created_at


async def test_concurrent_get_or_create_makes_one_row(db):
    async def create() -> int:
        async with db.session() as s:
            return (await guilds.get_or_create_guild_settings(s, GUILD)).guild_id

    assert await asyncio.gather(*(create() for _ in range(8))) == [GUILD] * 8


async def test_update_each_setting_round_trips(db):
    values = {
        "source_language": "EN",
        "target_languages": "es, fr,es",
        "transcript_channel_id": 555_000_000_000_000_001,
        "config_role_id": 555_000_000_000_000_002,
        "floor_audio_enabled": True,
        "floor_volume_base": 0.5,
        "floor_volume_ducked": 0.1,
        "auto_stop_empty_seconds": 60,
        "auto_stop_max_seconds": None,
        "transcript_retention_days": 7,
    }
    assert set(values) == set(guilds.EDITABLE_SETTINGS)
    async with db.session() as s:
        for name, value in values.items():
            await guilds.update_guild_setting(s, GUILD, name, value)
    async with db.session() as s:
        stored = await guilds.get_guild_settings(s, GUILD)
    assert stored.source_language == "en"
    assert stored.target_languages == ["es", "fr"]
    assert stored.transcript_channel_id == 555_000_000_000_000_001
    assert stored.config_role_id == 555_000_000_000_000_002
    assert stored.floor_audio_enabled is True
    assert (stored.floor_volume_base, stored.floor_volume_ducked) == (0.5, 0.1)
    assert stored.auto_stop_empty_seconds == 60
    assert stored.auto_stop_max_seconds is None
    assert stored.transcript_retention_days == 7
    assert stored.updated_at >= stored.created_at


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("colour", "red", "unknown setting"),
        ("floor_volume_base", 3, "volume"),
        ("floor_volume_ducked", float("nan"), "volume"),
        ("auto_stop_empty_seconds", -1, "seconds"),
        ("transcript_retention_days", 1.5, "days"),
        ("transcript_channel_id", 0, "Discord id"),
        ("source_language", "", "language code"),
        ("floor_audio_enabled", "yes", "true or false"),
    ],
)
async def test_bad_values_are_refused_with_what_is_accepted(db, name, value, message):
    async with db.session() as s:
        with pytest.raises(InvalidSetting, match=message):
            await guilds.update_guild_setting(s, GUILD, name, value)


async def test_set_languages(db):
    async with db.session() as s:
        await guilds.set_languages(s, GUILD, "auto", ["es", "fr"])
    async with db.session() as s:
        stored = await guilds.get_guild_settings(s, GUILD)
    assert (stored.source_language, stored.target_languages) == ("auto", ["es", "fr"])


async def test_channel_and_voice_per_language(db):
    async with db.session() as s:
        await guilds.set_language_channel(s, GUILD, "es", CHANNEL_ES)
        await guilds.set_language_channel(s, GUILD, "fr", CHANNEL_FR)
        await guilds.set_language_voice(s, GUILD, "es", "es_female_1")
    async with db.session() as s:
        stored = await guilds.get_guild_settings(s, GUILD)
        assert stored.sibling_channels == {"es": CHANNEL_ES, "fr": CHANNEL_FR}
        assert stored.voices == {"es": "es_female_1"}

        await guilds.clear_language_channel(s, GUILD, "fr")
        await guilds.set_language_channel(s, GUILD, "es", CHANNEL_FR)
    async with db.session() as s:
        stored = await guilds.get_guild_settings(s, GUILD)
        assert stored.sibling_channels == {"es": CHANNEL_FR}
        # "fr" has neither channel nor voice left, so its row is gone.
        assert [row.language for row in stored.languages] == ["es"]
        assert await s.get(GuildLanguage, (GUILD, "fr")) is None

        await guilds.set_language_voice(s, GUILD, "es", None)
    async with db.session() as s:
        assert (await guilds.get_guild_settings(s, GUILD)).voices == {}


async def test_language_rows_are_per_guild(db):
    async with db.session() as s:
        await guilds.set_language_channel(s, GUILD, "es", CHANNEL_ES)
        await guilds.set_language_channel(s, GUILD + 1, "es", CHANNEL_FR)
    async with db.session() as s:
        assert (await guilds.get_guild_settings(s, GUILD)).sibling_channels == {"es": CHANNEL_ES}
        assert (await guilds.get_guild_settings(s, GUILD + 1)).sibling_channels == {"es": CHANNEL_FR}


async def test_bad_voice_refused(db):
    async with db.session() as s:
        with pytest.raises(InvalidSetting, match="voice id"):
            await guilds.set_language_voice(s, GUILD, "es", " ")


async def test_clearing_in_a_fresh_unit_of_work_without_holding_the_settings(db):
    # Regression: pruning the emptied language row used to lazy-load `row.guild`, which fails under
    # asyncio once nothing else holds the settings object.
    async with db.session() as s:
        await guilds.set_language_channel(s, 7, "es", 111)
        await guilds.set_language_voice(s, 7, "fr", "default_high")
    async with db.session() as s:
        await guilds.clear_language_channel(s, 7, "es")
    async with db.session() as s:
        await guilds.set_language_voice(s, 7, "fr", None)
    async with db.session() as s:
        settings = await guilds.get_guild_settings(s, 7)
        assert settings.sibling_channels == {} and settings.voices == {}
