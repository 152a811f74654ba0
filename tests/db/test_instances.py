from __future__ import annotations

from datetime import timedelta

from bot.db import instances, leases, sessions
from bot.db.instances import ShardClaim
from bot.db.types import utcnow
from bot.shards import shard_of
from tests.fakes.database import start_row

SHARD_COUNT = 2
# Guild ids whose shard (of 2) is known: (n << 22) lands on shard n % 2.
GUILD_ON_0 = (1_000_000 << 22) | 12345
GUILD_ON_1 = (1_000_001 << 22) | 12345
SPEAKER = 2_200_000_000_000_000_001
A = ShardClaim("host-a:1", (0,), SHARD_COUNT)
B = ShardClaim("host-b:1", (1,), SHARD_COUNT)


async def start(db, guild, channel, instance):
    async with db.session() as s:
        row = await start_row(s, guild=guild, channel=channel, instance=instance)
        await leases.acquire_speaker(
            s,
            candidates=[SPEAKER],
            guild_id=guild,
            channel_id=channel + 1,
            language="es",
            instance_id=instance,
            session_id=row.id,
        )
        return row.id


def test_the_test_guilds_are_on_the_shards_they_claim():
    assert (shard_of(GUILD_ON_0, SHARD_COUNT), shard_of(GUILD_ON_1, SHARD_COUNT)) == (0, 1)


async def test_register_refresh_heartbeat_and_remove(db):
    then = utcnow() - timedelta(minutes=5)
    async with db.session() as s:
        row = await instances.register_instance(s, A, now=then)
        assert (row.id, row.shard_ids, row.shard_count, row.heartbeat_at) == (A.instance_id, [0], 2, then)
    async with db.session() as s:  # a restart under the same id takes the row over with new shards
        row = await instances.register_instance(s, ShardClaim(A.instance_id, (0, 1), 2))
        assert row.shard_ids == [0, 1] and row.heartbeat_at > then
    async with db.session() as s:
        assert await instances.heartbeat_instance(s, A.instance_id)
        assert [r.id for r in await instances.list_instances(s)] == [A.instance_id]
        assert await instances.remove_instance(s, A.instance_id)
        assert not await instances.heartbeat_instance(s, A.instance_id)  # gone: the caller re-registers


async def test_instance_heartbeat_also_marks_its_sessions(db):
    session_id = await start(db, GUILD_ON_0, 10, A.instance_id)
    async with db.session() as s:
        await instances.register_instance(s, A)
    later = utcnow() + timedelta(minutes=1)
    async with db.session() as s:
        await instances.heartbeat_instance(s, A.instance_id, now=later)
    async with db.session() as s:
        assert (await sessions.get_session(s, session_id)).heartbeat_at == later


async def test_rivals_are_instances_on_the_same_shards_or_another_shard_count(db):
    async with db.session() as s:
        await instances.register_instance(s, A)
        await instances.register_instance(s, B)
        await instances.register_instance(s, ShardClaim("host-c:1", (0,), 3))
    async with db.session() as s:
        duplicate_of_a = ShardClaim("host-d:1", (0,), SHARD_COUNT)
        assert sorted(r.id for r in await instances.rival_instances(s, duplicate_of_a)) == ["host-a:1", "host-c:1"]
        assert [r.id for r in await instances.rival_instances(s, B)] == ["host-c:1"]
        assert duplicate_of_a.overlaps(await instances.get_instance(s, "host-a:1")) == (0,)


async def test_take_over_ends_only_the_sessions_of_our_shards_and_spares_the_living(db):
    dead_a = await start(db, GUILD_ON_0, 10, A.instance_id)
    alive_b = await start(db, GUILD_ON_1, 20, B.instance_id)
    async with db.session() as s:
        await instances.register_instance(s, A)
        await instances.register_instance(s, B)
    restarted_a = ShardClaim("host-a:2", (0,), SHARD_COUNT)
    async with db.session() as s:
        taken = await instances.take_over_sessions(s, restarted_a, alive=[B.instance_id])
        assert [row.id for row in taken] == [dead_a]
    async with db.session() as s:
        assert (await sessions.get_session(s, dead_a)).end_reason == "crashed"
        assert (await sessions.get_session(s, alive_b)).is_live
        assert await leases.busy_speakers(s, GUILD_ON_0) == set()
        assert await leases.busy_speakers(s, GUILD_ON_1) == {SPEAKER}  # the same bot, the other guild's lease
        # The dead instance's row is gone (its shard is ours now); the living one stays.
        assert [r.id for r in await instances.list_instances(s)] == [B.instance_id]


async def test_take_over_by_a_process_running_every_shard_sees_all_guilds(db):
    first = await start(db, GUILD_ON_0, 10, A.instance_id)
    second = await start(db, GUILD_ON_1, 20, B.instance_id)
    async with db.session() as s:
        taken = await instances.take_over_sessions(s, ShardClaim("solo:1", (0, 1), SHARD_COUNT))
        assert sorted(row.id for row in taken) == [first, second]


async def test_take_over_with_another_shard_count_maps_guilds_by_the_new_count(db):
    # With 3 shards, each guild's shard is recomputed: the formula, not a stored shard id, decides.
    guilds = [GUILD_ON_0 + (n << 22) for n in range(3)]
    ids = [await start(db, guild, 100 + 10 * n, A.instance_id) for n, guild in enumerate(guilds)]
    on_2 = [session_id for guild, session_id in zip(guilds, ids, strict=True) if shard_of(guild, 3) == 2]
    async with db.session() as s:
        taken = await instances.take_over_sessions(s, ShardClaim("new:1", (2,), 3))
        assert [row.id for row in taken] == on_2 and len(on_2) == 1
