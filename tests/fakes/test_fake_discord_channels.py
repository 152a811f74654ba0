"""The fake Discord's channels and permissions, seen by an unmodified discord.py client: overwrites reach
its cache, the fake refuses what Discord refuses (403, 50013), and channels are created like Discord's."""

from __future__ import annotations

import asyncio

import discord
import pytest

from tests.fakes.discord import FakeDiscord, running_clients
from tests.fakes.discord.model import (
    CATEGORY,
    MANAGE_CHANNELS,
    MANAGE_WEBHOOKS,
    SEND_MESSAGES,
    SPEAK,
    VIEW_CHANNEL,
    VOICE,
)

pytestmark = pytest.mark.timeout(60)


async def _until(predicate) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("condition not met")


async def test_overwrites_reach_discord_py_and_are_enforced():
    async with FakeDiscord() as fake, running_clients(fake, [fake.bots[0].token]) as (client,):
        general = client.get_channel(fake.channel("general").id)
        await general.send("allowed")
        await fake.set_overwrite("general", fake.bot(), deny=SEND_MESSAGES)
        await _until(lambda: not client.get_channel(general.id).permissions_for(general.guild.me).send_messages)
        with pytest.raises(discord.Forbidden) as refused:
            await general.send("refused")
        assert refused.value.code == 50013
        await general.create_webhook(name="allowed")  # the Bots role has Manage Webhooks
        await fake.set_overwrite("general", fake.bot(), deny=SEND_MESSAGES | MANAGE_WEBHOOKS)
        with pytest.raises(discord.Forbidden):
            await general.create_webhook(name="refused")
        assert [w.name for w in fake.rest.webhooks.values()] == ["allowed"]
        assert [m.content for m in fake.messages("general")] == ["allowed"]

        everyone = fake.guild.roles[fake.guild.id]
        await fake.set_overwrite("Voice B", everyone, deny=SPEAK)
        await fake.set_overwrite("Voice B", fake.bot_role, allow=SPEAK)  # a role's allow beats @everyone's deny
        voice_b = client.get_channel(fake.channel("Voice B").id)
        await _until(lambda: len(client.get_channel(voice_b.id).overwrites) == 2)
        assert client.get_channel(voice_b.id).permissions_for(voice_b.guild.me).speak
        await fake.set_overwrite("Voice B", fake.bot(), deny=VIEW_CHANNEL)  # no View Channel: nothing at all
        assert fake.guild.channel_permissions_of(fake.bot(), fake.channel("Voice B")) == 0


async def test_channels_are_created_in_a_category_with_its_overwrites_only_with_manage_channels():
    async with FakeDiscord() as fake:
        events = fake.guild.add_channel("Events", CATEGORY)
        fake.guild.channels[events.id].overwrites = {}
        async with running_clients(fake, [fake.bots[0].token]) as (client,):
            guild = client.get_guild(fake.guild.id)
            category = guild.get_channel(events.id)
            await fake.set_overwrite(fake.channel("Events"), fake.guild.roles[fake.guild.id], deny=SPEAK)
            await _until(lambda: guild.get_channel(events.id).overwrites)
            channel = await guild.create_voice_channel("Español", category=category)
            assert channel.category_id == events.id and channel.type is discord.ChannelType.voice
            assert fake.rest.channels.created[0].overwrites.keys() == {fake.guild.id}  # synced with the category
            await _until(lambda: guild.get_channel(channel.id) is not None)  # CHANNEL_CREATE reached the client
            await fake.set_overwrite(fake.channel("Events"), fake.bot(), deny=MANAGE_CHANNELS)
            with pytest.raises(discord.Forbidden):
                await guild.create_voice_channel("Français", category=category)
            assert [c.name for c in fake.rest.channels.created] == ["Español"]
            assert fake.channel("Español").type == VOICE


async def test_a_bot_removed_from_the_guild_gets_no_guild():
    async with FakeDiscord() as fake:
        fake.remove_member(fake.bots[1])
        client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.1)
        fake.point_discord_py()
        task = asyncio.create_task(client.start(fake.bots[1].token))
        try:
            await _until(client.is_ready)
            assert list(client.guilds) == [] and fake.guilds_of(fake.bots[1]) == []
        finally:
            await client.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
