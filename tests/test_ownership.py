"""bot.ownership on a real database with a fake clock: a rival on our shards is waited out when silent,
refused when its heartbeat moves, skipped when long dead; our shards' sessions are taken over, the
others' never."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.db import instances, sessions
from bot.db.instances import ShardClaim
from bot.db.types import utcnow
from bot.ownership import STALE_HEARTBEATS, Ownership, ShardConflict
from bot.shards import ShardPlan
from tests.fakes.database import start_row

INTERVAL = 10.0
GUILD_ON_0 = (1_000_000 << 22) | 5
GUILD_ON_1 = (1_000_001 << 22) | 5


class Clock:
    """Monotonic and wall time that move only when the code under test sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.wall = utcnow()
        self.sleeps: list[float] = []
        self.on_sleep = None  # async callable, run after each sleep (a rival beating, say)

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.wall

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        self.wall += timedelta(seconds=seconds)
        if self.on_sleep is not None:
            await self.on_sleep()


def ownership(db, clock: Clock, shard_ids=(0,), count=2, instance_id="new:1") -> Ownership:
    return Ownership(
        db,
        ShardPlan(tuple(shard_ids), count),
        instance_id,
        interval_s=INTERVAL,
        clock=clock.monotonic,
        sleep=clock.sleep,
        now=clock.now,
    )


async def register(db, claim: ShardClaim, at: datetime) -> None:
    async with db.session() as s:
        await instances.register_instance(s, claim, now=at)


async def live_session(db, guild: int, channel: int, instance: str) -> int:
    async with db.session() as s:
        row = await start_row(s, guild=guild, channel=channel, instance=instance)
        await sessions.add_palabra_session_id(s, row.id, f"palabra-{channel}")
        return row.id


async def test_no_rival_takes_over_our_shards_sessions_at_once(db):
    clock = Clock()
    mine = await live_session(db, GUILD_ON_0, 10, "old:1")
    theirs = await live_session(db, GUILD_ON_1, 20, "other:1")
    taken = await ownership(db, clock).claim()
    assert [(t.id, t.palabra_session_ids, t.previous_instance_id) for t in taken] == [(mine, ("palabra-10",), "old:1")]
    assert clock.sleeps == []
    async with db.session() as s:
        assert (await sessions.get_session(s, theirs)).is_live


async def test_a_long_dead_rival_is_not_waited_for(db):
    clock = Clock()
    await register(db, ShardClaim("old:1", (0,), 2), clock.wall - timedelta(seconds=STALE_HEARTBEATS * INTERVAL + 1))
    await ownership(db, clock).claim()
    assert clock.sleeps == []


async def test_a_silent_rival_is_watched_for_the_stale_window_then_taken_over(db):
    clock = Clock()
    await register(db, ShardClaim("killed:1", (0,), 2), clock.wall - timedelta(seconds=1))
    session_id = await live_session(db, GUILD_ON_0, 10, "killed:1")
    taken = await ownership(db, clock).claim()
    assert [t.id for t in taken] == [session_id]
    assert sum(clock.sleeps) == pytest.approx(STALE_HEARTBEATS * INTERVAL, abs=INTERVAL / 2)
    async with db.session() as s:  # the dead instance's row is gone, ours is there
        assert [r.id for r in await instances.list_instances(s)] == ["new:1"]


async def test_a_rival_whose_heartbeat_moves_is_alive_and_refused(db):
    clock = Clock()
    await register(db, ShardClaim("alive:1", (0, 1), 2), clock.wall)
    session_id = await live_session(db, GUILD_ON_0, 10, "alive:1")

    async def rival_beats():
        async with db.session() as s:
            await instances.heartbeat_instance(s, "alive:1", now=clock.wall)

    clock.on_sleep = rival_beats
    with pytest.raises(ShardConflict) as refused:
        await ownership(db, clock).claim()
    message = str(refused.value)
    assert "shard 0 of 2 is already run by the live instance alive:1" in message and "SHARD_IDS" in message
    async with db.session() as s:
        assert (await sessions.get_session(s, session_id)).is_live  # nothing taken from a live process


async def test_a_live_rival_with_another_shard_count_is_refused(db):
    clock = Clock()
    await register(db, ShardClaim("old-layout:1", (0,), 3), clock.wall)

    async def rival_beats():
        async with db.session() as s:
            await instances.heartbeat_instance(s, "old-layout:1", now=clock.wall)

    clock.on_sleep = rival_beats
    with pytest.raises(ShardConflict, match=r"SHARD_COUNT=3.*SHARD_COUNT=2"):
        await ownership(db, clock).claim()


async def test_a_live_instance_on_other_shards_is_no_rival(db):
    clock = Clock()
    await register(db, ShardClaim("other:1", (1,), 2), clock.wall)
    await ownership(db, clock).claim()
    assert clock.sleeps == []


async def test_a_beat_that_finds_the_row_gone_reports_the_shards_lost(db):
    clock = Clock()
    owner = ownership(db, clock)
    await owner.claim()
    assert await owner.beat() and not owner.lost.is_set()
    async with db.session() as s:  # a successor took over and dropped our row
        await instances.remove_instance(s, "new:1")
    assert not await owner.beat()
    assert owner.lost.is_set() and "took over its shards" in str(owner.lost_error())
    async with db.session() as s:
        assert await instances.get_instance(s, "new:1") is None  # not registered again behind its back


async def test_close_removes_the_instance(db):
    clock = Clock()
    owner = ownership(db, clock)
    await owner.claim()
    await owner.close()
    async with db.session() as s:
        assert await instances.list_instances(s) == []


async def test_a_restart_under_the_same_instance_id_takes_over_at_once(db):
    clock = Clock()
    await register(db, ShardClaim("bot-1", (0,), 2), clock.wall)  # its heartbeat is fresh: it was just killed
    session_id = await live_session(db, GUILD_ON_0, 10, "bot-1")
    taken = await ownership(db, clock, instance_id="bot-1").claim()
    assert [t.id for t in taken] == [session_id] and clock.sleeps == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SQLite's lock is what a cut write leaks
async def test_closing_while_a_heartbeat_writes_lets_it_finish_so_the_last_write_is_not_locked_out(db):
    """close() cancelled the heartbeat task mid-write: on SQLite the cut transaction kept the write lock,
    so close()'s own delete of the instance row waited out the 15 s busy timeout and failed (a bot that
    did not exit after SIGTERM). Closing at random moments of a fast heartbeat, each close stays quick."""
    import asyncio
    import random

    rng = random.Random(5)
    loop = asyncio.get_running_loop()
    for attempt in range(25):
        owner = Ownership(db, ShardPlan((0,), 1), f"beat:{attempt}", interval_s=0.002)
        await owner.claim()
        owner.start_heartbeat()
        await asyncio.sleep(rng.uniform(0.001, 0.03))
        started = loop.time()
        await owner.close()
        assert loop.time() - started < 2.0, f"close {attempt} waited on a lock"
        async with db.session() as s:
            assert await instances.rival_instances(s, ShardClaim("other", (0,), 1)) == []  # its row is gone
