from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.db import leases, sessions
from bot.db.errors import NotFound, SessionAlreadyActive
from bot.db.models import SESSION_ACTIVE, SESSION_ENDED, SESSION_STOPPING
from tests.fakes.database import start_row

GUILD = 1_100_000_000_000_000_001
CHANNEL = 1_200_000_000_000_000_001
OTHER_CHANNEL = 1_200_000_000_000_000_002
TEXT_CHANNEL = 1_300_000_000_000_000_001
SPEAKER = 1_400_000_000_000_000_001
HERE = "host-a:100"
DEAD = "host-a:99"


async def start(db, channel=CHANNEL, instance=HERE, guild=GUILD):
    async with db.session() as s:
        return await start_row(
            s,
            guild=guild,
            channel=channel,
            instance=instance,
            targets=("es", "fr"),
            text_channel_id=TEXT_CHANNEL,
            started_by_user_id=42,
        )


async def test_start_records_everything(db):
    started = await start(db)
    async with db.session() as s:
        row = await sessions.get_session(s, started.id)
    assert row.status == SESSION_ACTIVE and row.is_live
    assert (row.guild_id, row.source_channel_id, row.text_channel_id) == (GUILD, CHANNEL, TEXT_CHANNEL)
    assert (row.source_language, row.target_languages) == ("en", ["es", "fr"])
    assert row.instance_id == HERE and row.started_by_user_id == 42
    assert row.started_at.tzinfo is not None and row.ended_at is None
    assert row.palabra_session_ids == []


async def test_one_live_session_per_source_channel(db):
    first = await start(db)
    with pytest.raises(SessionAlreadyActive):
        await start(db)
    async with db.session() as s:
        await sessions.mark_stopping(s, first.id)
    with pytest.raises(SessionAlreadyActive):  # stopping still counts as live
        await start(db)
    await start(db, channel=OTHER_CHANNEL)  # other channels are unaffected
    async with db.session() as s:
        await sessions.stop_session(s, first.id)
    again = await start(db)
    assert again.id != first.id


async def test_concurrent_starts_on_one_channel_yield_one_session(db):
    async def attempt():
        try:
            return await start(db)
        except SessionAlreadyActive:
            return None

    results = await asyncio.gather(*(attempt() for _ in range(6)))
    assert sum(result is not None for result in results) == 1


async def test_stop_is_idempotent_and_releases_leases(db):
    started = await start(db)
    async with db.session() as s:
        lease = await leases.acquire_speaker(
            s,
            candidates=[SPEAKER],
            guild_id=GUILD,
            channel_id=OTHER_CHANNEL,
            language="es",
            instance_id=HERE,
            session_id=started.id,
        )
        assert lease is not None
    ended_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with db.session() as s:
        stopped = await sessions.stop_session(s, started.id, ended_at=ended_at)
        assert (stopped.status, stopped.end_reason, stopped.ended_at) == (SESSION_ENDED, "stopped", ended_at)
    async with db.session() as s:
        assert await leases.leases_of_session(s, started.id) == []
        again = await sessions.stop_session(s, started.id, reason="other")
        assert (again.end_reason, again.ended_at) == ("stopped", ended_at)
        assert await sessions.live_session_in_channel(s, CHANNEL) is None


async def test_mark_stopping_only_moves_active(db):
    started = await start(db)
    async with db.session() as s:
        assert (await sessions.mark_stopping(s, started.id)).status == SESSION_STOPPING
        await sessions.stop_session(s, started.id)
        assert (await sessions.mark_stopping(s, started.id)).status == SESSION_ENDED


async def test_unknown_session_is_not_found(db):
    async with db.session() as s:
        with pytest.raises(NotFound):
            await sessions.stop_session(s, 123456)


async def test_list_active_filters(db):
    a = await start(db, channel=1, instance=HERE)
    b = await start(db, channel=2, instance=DEAD)
    c = await start(db, channel=3, instance=HERE, guild=GUILD + 1)
    ended = await start(db, channel=4, instance=HERE)
    async with db.session() as s:
        await sessions.stop_session(s, ended.id)
    async with db.session() as s:
        assert [r.id for r in await sessions.list_active_sessions(s)] == [a.id, b.id, c.id]
        assert [r.id for r in await sessions.list_active_sessions(s, guild_id=GUILD)] == [a.id, b.id]
        assert [r.id for r in await sessions.list_active_sessions(s, instance_id=HERE)] == [a.id, c.id]
        assert [r.id for r in await sessions.list_active_sessions(s, guild_id=GUILD, instance_id=DEAD)] == [b.id]
        assert (await sessions.live_session_in_channel(s, 2)).id == b.id


async def test_palabra_session_ids_accumulate_without_duplicates(db):
    started = await start(db)
    async with db.session() as s:
        await sessions.add_palabra_session_id(s, started.id, "ps-1")
        await sessions.add_palabra_session_id(s, started.id, "ps-2")
        await sessions.add_palabra_session_id(s, started.id, "ps-1")
    async with db.session() as s:
        assert (await sessions.get_session(s, started.id)).palabra_session_ids == ["ps-1", "ps-2"]


async def test_crash_recovery_closes_sessions_of_a_dead_instance(db):
    mine = await start(db, channel=1, instance=HERE)
    orphan = await start(db, channel=2, instance=DEAD)
    async with db.session() as s:
        await sessions.add_palabra_session_id(s, orphan.id, "ps-orphan")
        await leases.acquire_speaker(
            s,
            candidates=[SPEAKER],
            guild_id=GUILD,
            channel_id=10,
            language="es",
            instance_id=DEAD,
            session_id=orphan.id,
        )
    async with db.session() as s:
        assert [r.id for r in await sessions.list_active_sessions(s, instance_id=DEAD)] == [orphan.id]
        crashed = await sessions.mark_crashed_sessions(s, except_instance_id=HERE)
    assert [(r.id, r.status, r.end_reason) for r in crashed] == [(orphan.id, SESSION_ENDED, "crashed")]
    assert crashed[0].palabra_session_ids == ["ps-orphan"]
    async with db.session() as s:
        assert await sessions.list_active_sessions(s, instance_id=DEAD) == []
        assert [r.id for r in await sessions.list_active_sessions(s)] == [mine.id]
        assert await leases.busy_speakers(s, GUILD) == set()
        # The channel is free again.
    await start(db, channel=2)


async def test_crash_recovery_by_instance_and_by_heartbeat(db):
    old = datetime.now(UTC) - timedelta(minutes=10)
    quiet = await start(db, channel=1, instance="host-b:1")
    alive = await start(db, channel=2, instance="host-c:1")
    dead = await start(db, channel=3, instance=DEAD)
    async with db.session() as s:
        assert await sessions.heartbeat(s, "host-b:1", now=old) == 1
        assert await sessions.heartbeat(s, "host-c:1") == 1
    async with db.session() as s:
        by_instance = await sessions.mark_crashed_sessions(s, instance_id=DEAD)
        by_heartbeat = await sessions.mark_crashed_sessions(
            s, heartbeat_before=datetime.now(UTC) - timedelta(minutes=1)
        )
    assert [r.id for r in by_instance] == [dead.id]
    assert [r.id for r in by_heartbeat] == [quiet.id]
    async with db.session() as s:
        assert [r.id for r in await sessions.list_active_sessions(s)] == [alive.id]
        assert await sessions.mark_crashed_sessions(s, instance_id=DEAD) == []


def test_default_instance_id_names_host_and_process_and_differs_per_run():
    import os
    import socket

    first, second = sessions.default_instance_id(), sessions.default_instance_id()
    assert first.startswith(f"{socket.gethostname()}:{os.getpid()}:") and first != second
