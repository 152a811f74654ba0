"""A slash command typed right after the bot comes online, between READY and GUILD_CREATE: discord.py
knows the server only as an unavailable placeholder (no channels, members or voice states), so the
commands that need it wait for it (deferred, bounded), then proceed; if it never comes, they say so."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bot.broadcasts.service import BroadcastService
from bot.client import InterpreterBot
from bot.db import Database, upgrade_to_head
from bot.services import Core, Services
from bot.settings import Settings
from bot.shards import ShardPlan
from cogs import common
from tests.cogs.conftest import Harness, RecordingManager, ephemeral, shown
from tests.fakes import secrets
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def online_before_its_guild(database_url: str, manager: RecordingManager):
    """The listener bot logged in and READY, its server's GUILD_CREATE held back by the fake."""
    await upgrade_to_head(database_url)
    database = Database(database_url)
    settings = Settings(_env_file=None, discord_token=secrets.DISCORD_TOKEN, database_url=database_url)
    core = Core(settings, database)
    try:
        async with FakeDiscord() as fake:
            fake.point_discord_py()
            fake.gateway.hold_guilds()
            client = InterpreterBot(
                lambda _client: Services(core, interpretation=manager, broadcasts=BroadcastService(core)),
                shards=ShardPlan.of(settings),
                guild_ready_timeout=0.1,
            )
            task = asyncio.create_task(client.start(secrets.DISCORD_TOKEN))
            try:
                placeholder = lambda: (g := client.get_guild(fake.guild.id)) is not None and g.unavailable  # noqa: E731
                await wait_until(lambda: bool(fake.commands(fake.bot())) and placeholder(), 10, what="READY only")
                yield Harness(fake, client, client.services, manager)
            finally:
                fake.gateway.release_guilds()
                await client.close()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        await database.close()


async def test_interpret_start_between_ready_and_guild_create_waits_for_the_guild(tmp_path):
    manager = RecordingManager()
    async with online_before_its_guild(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", manager) as h:
        ana = await h.fake.add_user("Ana")
        await ana.join("Voice A")  # in the channel before the bot has the guild's voice states
        record = await h.fake.slash_command(h.bot_account, ana, "general", "interpret", subcommand="start")
        await h.fake.wait_for_response(record, 5)
        assert record.response_type == 5, shown(record)  # deferred ("thinking…") while the guild is awaited
        h.fake.gateway.release_guilds()  # GUILD_CREATE only now, after the command was acknowledged
        await h.settled(record)
        voice_a = h.fake.channel("Voice A").id
        [(name, call)] = manager.calls
        assert name == "start" and call["voice_channel"].id == voice_a and call["guild"].id == h.fake.guild.id
        assert f"Interpreting <#{voice_a}>" in shown(record) and not ephemeral(record)


async def test_interpret_start_says_so_when_the_guild_never_arrives(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "GUILD_WAIT_S", 0.5)
    manager = RecordingManager()
    async with online_before_its_guild(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", manager) as h:
        ana = await h.fake.add_user("Ana")
        await ana.join("Voice A")
        record = await h.fake.slash_command(h.bot_account, ana, "general", "interpret", subcommand="start")
        await h.fake.wait_for_response(record, 5)
        await h.settled(record)
        assert manager.calls == []
        assert "Discord has not sent it this server's channels and members yet" in shown(record)
        assert ephemeral(record)
