"""The fake Discord's sharded gateway, with unmodified discord.py sharded clients: IDENTIFY's
`shard: [id, count]`, guilds by `(guild_id >> 22) % count`, READY per shard, events only to the
guild's shard, 4010 for a shard outside the range and 4011 when sharding is required."""

from __future__ import annotations

import asyncio

import discord
import pytest

from tests.fakes import secrets
from tests.fakes.discord.clients import client_kwargs, running_clients
from tests.fakes.discord.gateway import CLOSE_INVALID_SHARD, CLOSE_SHARDING_REQUIRED, shard_of
from tests.fakes.discord.model import snowflake_on_shard
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


def sharded(shard_ids: list[int], count: int = 2):
    return lambda: discord.AutoShardedClient(shard_ids=shard_ids, shard_count=count, **client_kwargs())


async def two_shard_world(fake: FakeDiscord):
    """The first guild stays where its id puts it; one more guild on each shard of 2."""
    on = {n: await fake.add_guild(f"Guild on {n}", voice_channels=("Talk",), shard=(n, 2)) for n in (0, 1)}
    return on[0], on[1]


@pytest.mark.parametrize(("shard_id", "count"), [(0, 1), (3, 4), (1, 2), (6, 7)])
def test_snowflake_on_shard_lands_on_its_shard(shard_id, count):
    ids = [snowflake_on_shard(shard_id, count) for _ in range(5)]
    assert {shard_of(i, count) for i in ids} == {shard_id}
    assert len(set(ids)) == 5


async def test_each_sharded_client_gets_ready_and_guilds_of_its_own_shards_only():
    async with FakeDiscord() as fake:
        on_0, on_1 = await two_shard_world(fake)
        first_guild_shard = shard_of(fake.guild.id, 2)
        async with (
            running_clients(fake, [secrets.DISCORD_TOKEN], factory=sharded([0])) as (zero,),
            running_clients(fake, [secrets.DISCORD_TOKEN], factory=sharded([1])) as (one,),
        ):
            expected = {0: {on_0.id}, 1: {on_1.id}}
            expected[first_guild_shard].add(fake.guild.id)
            assert {g.id for g in zero.guilds} == expected[0]
            assert {g.id for g in one.guilds} == expected[1]
            assert {g.shard_id for g in zero.guilds} == {0} and {g.shard_id for g in one.guilds} == {1}
            assert sorted(shard for _, shard in fake.gateway.identified) == [(0, 2), (1, 2)]


async def test_one_client_running_both_shards_sees_every_guild():
    async with FakeDiscord() as fake:
        on_0, on_1 = await two_shard_world(fake)
        async with running_clients(fake, [secrets.DISCORD_TOKEN], factory=sharded([0, 1]), timeout=20) as (both,):
            await wait_until(lambda: len(both.guilds) == 3, what="the guilds of both shards")
            assert {g.id for g in both.guilds} == {fake.guild.id, on_0.id, on_1.id}
            assert fake.gateway.shards_of(fake.bot().id) == [(0, 2), (1, 2)]


async def test_unsharded_clients_still_get_every_guild():
    async with FakeDiscord() as fake:
        await two_shard_world(fake)
        async with running_clients(fake, [secrets.DISCORD_TOKEN]) as (client,):
            await wait_until(lambda: len(client.guilds) == 3, what="all guilds on shard [0, 1]")
            assert fake.gateway.identified == [(fake.bot().id, (0, 1))]


async def test_a_guilds_events_and_interactions_reach_only_its_shard():
    async with FakeDiscord() as fake:
        on_0, on_1 = await two_shard_world(fake)
        alice = await fake.add_user("Alice", guild=on_1)
        async with (
            running_clients(fake, [secrets.DISCORD_TOKEN], factory=sharded([0])) as (zero,),
            running_clients(fake, [secrets.DISCORD_TOKEN], factory=sharded([1])) as (one,),
        ):
            seen: dict[str, list[int]] = {"zero": [], "one": []}
            zero.event(_recorder(seen["zero"], "on_voice_state_update"))
            one.event(_recorder(seen["one"], "on_voice_state_update"))
            await alice.join("Talk")
            talk = one.get_channel(on_1.channel_named("Talk").id)
            await wait_until(lambda: [m.id for m in talk.members] == [alice.id], what="Alice in Talk on shard 1")
            assert seen == {"zero": [], "one": [alice.id]}
            assert zero.get_channel(on_1.channel_named("Talk").id) is None

            interactions: dict[str, int] = {"zero": 0, "one": 0}
            zero.event(_counter(interactions, "zero"))
            one.event(_counter(interactions, "one"))
            await fake.slash_command(fake.bot(), alice, "general", "ping", guild=on_0)
            await wait_until(lambda: interactions["zero"] == 1, what="the interaction on shard 0")
            assert interactions == {"zero": 1, "one": 0}


def _recorder(into: list[int], name: str):
    async def handler(member, _before, _after):
        into.append(member.id)

    handler.__name__ = name
    return handler


def _counter(counts: dict[str, int], key: str):
    async def on_interaction(_interaction):
        counts[key] += 1

    return on_interaction


async def test_a_shard_outside_the_count_is_closed_with_4010():
    async with FakeDiscord() as fake:
        fake.point_discord_py()
        client = discord.Client(shard_id=2, shard_count=2, **client_kwargs())
        with pytest.raises(discord.ConnectionClosed) as closed:
            await asyncio.wait_for(client.start(secrets.DISCORD_TOKEN), 10)
        await client.close()
        assert closed.value.code == CLOSE_INVALID_SHARD
        assert fake.gateway.refused == [(fake.bot().id, CLOSE_INVALID_SHARD)]


async def test_too_many_guilds_for_the_shards_is_closed_with_4011():
    async with FakeDiscord() as fake:
        await fake.add_guild("Second")
        fake.gateway.max_guilds_per_shard = 1
        fake.point_discord_py()
        client = discord.Client(**client_kwargs())
        with pytest.raises(discord.ConnectionClosed) as closed:
            await asyncio.wait_for(client.start(secrets.DISCORD_TOKEN), 10)
        await client.close()
        assert closed.value.code == CLOSE_SHARDING_REQUIRED
        # Two shards of one guild each are enough.
        async with running_clients(fake, [secrets.DISCORD_TOKEN], factory=sharded([0, 1]), timeout=20):
            assert fake.gateway.refused == [(fake.bot().id, CLOSE_SHARDING_REQUIRED)]
