"""/setup create-channels through the fake Discord: voice channels named in each language, in the caller's
category, recorded as the sibling channels and used by the next /interpret start; refused clearly
without Manage Channels."""

from __future__ import annotations

import pytest

from bot.db import guilds
from bot.setup.channels import channel_name
from tests.cogs.conftest import ephemeral, running_world, shown
from tests.fakes.discord.model import CATEGORY, MANAGE_CHANNELS, VOICE

pytestmark = pytest.mark.timeout(90)


def _url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"


async def _in_category(fake) -> None:
    category = fake.guild.add_channel("Events", CATEGORY)
    fake.channel("Voice A").parent_id = category.id


async def _channel_manager(h, name="Admin"):
    """A member with Manage Server (the Admins role) and Manage Channels (a role of its own), in Voice A."""
    user = await h.fake.add_user(name, admin=True)
    role = await h.add_role("Channel managers", MANAGE_CHANNELS)
    user.account.role_ids.append(role.id)
    await h.join_voice(user, "Voice A")
    return user


async def _siblings(h) -> dict[str, int]:
    async with h.services.database.session() as s:
        return dict((await guilds.get_or_create_guild_settings(s, h.fake.guild.id)).sibling_channels)


def test_channel_names_are_endonyms_with_a_fallback():
    assert [channel_name(c) for c in ("es", "fr", "de", "ja", "pt-br")] == [
        "Español",
        "Français",
        "Deutsch",
        "日本語",
        "Português (Brasil)",
    ]
    assert channel_name("es-ch") == "Español (CH)"  # a region the table does not name
    assert channel_name("xx-yy") == "xx-yy"  # a language it does not know


async def test_creates_named_channels_in_the_category_and_the_next_start_uses_them(tmp_path):
    async with running_world(_url(tmp_path), prepare=_in_category) as h:
        fake = h.fake
        admin = await _channel_manager(h)
        await h.command(admin, "setup", "languages", source="en", targets="es, fr")

        record = await h.command(admin, "setup", "create-channels", timeout=20)
        assert ephemeral(record)
        created = fake.rest.channels.created
        assert [(c.name, c.type, c.parent_id) for c in created] == [
            ("Español", VOICE, fake.channel("Voice A").parent_id),
            ("Français", VOICE, fake.channel("Voice A").parent_id),
        ]
        es, fr = created
        text = shown(record)
        assert f"Created <#{es.id}> for **es**, <#{fr.id}> for **fr** in the **Events** category" in text
        assert await _siblings(h) == {"es": es.id, "fr": fr.id}

        # A second run has nothing left to do.
        again = await h.command(admin, "setup", "create-channels", timeout=20)
        assert "nothing to create" in shown(again) and len(fake.rest.channels.created) == 2

        record = await h.command(admin, "interpret", "start", timeout=30)
        text = shown(record)
        assert f"• **es**: plays in <#{es.id}>" in text, text
        assert f"• **fr**: plays in <#{fr.id}>" in text, text
        speakers = {b.id for b in fake.bots[1:]}
        assert {s.user_id for s in fake.guild.voice_states.values() if s.channel_id in (es.id, fr.id)} == speakers
        await h.command(admin, "interpret", "stop", timeout=30)


async def test_only_missing_languages_get_a_channel_and_an_existing_one_of_that_name_is_reused(tmp_path):
    async with running_world(_url(tmp_path), speaker_tokens=()) as h:
        fake = h.fake
        admin = await _channel_manager(h)
        await h.command(admin, "setup", "languages", source="en", targets="es, fr, de")
        await h.command(admin, "setup", "channel", language="es", channel=fake.channel("Voice B"))
        deutsch = await fake.add_channel("Deutsch", VOICE)
        record = await h.command(admin, "setup", "create-channels", timeout=20)
        (fr,) = fake.rest.channels.created
        assert fr.name == "Français" and fr.parent_id is None
        text = shown(record)
        assert f"Used the existing <#{deutsch.id}> for **de**" in text
        assert f"Already set: **es** → <#{fake.channel('Voice B').id}>" in text
        assert await _siblings(h) == {"es": fake.channel("Voice B").id, "fr": fr.id, "de": deutsch.id}


async def test_refused_without_manage_channels_for_the_caller_or_the_bot(tmp_path):
    async with running_world(_url(tmp_path), speaker_tokens=(), prepare=_in_category) as h:
        fake = h.fake
        admin = await fake.add_user("Admin", admin=True)  # Manage Server, but not Manage Channels
        await h.join_voice(admin, "Voice A")
        await h.command(admin, "setup", "languages", source="en", targets="es")
        record = await h.command(admin, "setup", "create-channels")
        assert ephemeral(record)
        assert shown(record).startswith("You need the Manage Channels permission in the **Events** category")

        manager = await _channel_manager(h, "Manager")
        await fake.set_overwrite(fake.channel("Events"), fake.bot(), deny=MANAGE_CHANNELS)
        record = await h.command(manager, "setup", "create-channels")
        assert ephemeral(record)
        text = shown(record)
        assert text.startswith("The bot needs the Manage Channels permission in the **Events** category"), text
        assert "Server Settings → Roles" in text
        assert fake.rest.channels.created == [] and await _siblings(h) == {}

        outside = await fake.add_user("Outside", admin=True)
        record = await h.command(outside, "setup", "create-channels")
        assert shown(record).startswith("Join the voice channel to be interpreted first")
