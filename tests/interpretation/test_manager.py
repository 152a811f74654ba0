"""The manager's refusals, auto-stop triggers and crash recovery, against the fake Discord, the emulator
and both databases (no speech needed)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from bot.db import sessions as db_sessions
from bot.db import transcripts as db_transcripts
from bot.db.models import DEFAULT_TRANSCRIPT_RETENTION_DAYS, TranscriptLine
from bot.interpretation.errors import NoActiveSession, NotInVoiceChannel, PalabraUnavailable, SessionAlreadyRunning
from tests.interpretation.conftest import wait_for, world_on

pytestmark = pytest.mark.timeout(90)


async def test_refusals_leave_nothing_behind(db):
    async with world_on(db, speaker_count=0) as world:
        fake, manager = world.fake, world.manager
        await world.configure(targets=("es",))
        alice = await fake.add_user("Alice")
        await alice.join("Voice A")
        member = world.guild.get_member(alice.id)
        with pytest.raises(NotInVoiceChannel):
            await manager.start(guild=world.guild, voice_channel=None, requested_by=member)
        with pytest.raises(NoActiveSession):
            await manager.stop(guild_id=fake.guild.id)

        world.emulator.state.insufficient_balance = True
        with pytest.raises(PalabraUnavailable) as error:
            await manager.start(guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=member)
        assert "balance" in error.value.user_message
        assert manager.sessions == {} and world.guild.voice_client is None
        async with db.session() as s:
            assert await db_sessions.list_active_sessions(s) == []

        world.emulator.state.insufficient_balance = False
        report = await manager.start(guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=member)
        with pytest.raises(SessionAlreadyRunning):
            await manager.start(guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=member)
        with pytest.raises(SessionAlreadyRunning):  # one voice channel per server for the listener
            await manager.start(guild=world.guild, voice_channel=world.channel("Voice B"), requested_by=member)
        stop = await manager.stop(guild_id=fake.guild.id)
        assert stop.session_id == report.session_id and world.emulator.state.sessions == {}

        # Two starts at once in different channels of one server: the second is refused, not raced.
        results = await asyncio.gather(
            manager.start(guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=member),
            manager.start(guild=world.guild, voice_channel=world.channel("Voice B"), requested_by=member),
            return_exceptions=True,
        )
        assert sum(isinstance(r, SessionAlreadyRunning) for r in results) == 1
        assert len(manager.sessions) == 1
        await manager.stop(guild_id=fake.guild.id)


@pytest.mark.parametrize("trigger", ["channel_empty", "bot_disconnected", "bot_moved", "max_duration"])
async def test_auto_stop(db, trigger):
    async with world_on(db) as world:
        fake, manager = world.fake, world.manager
        limits = {"auto_stop_max_seconds": 2} if trigger == "max_duration" else {"auto_stop_empty_seconds": 1}
        await world.configure(targets=("es",), siblings={"es": "Voice B"}, **limits)
        alice = await fake.add_user("Alice")
        await alice.join("Voice A")
        report = await manager.start(
            guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=world.guild.get_member(alice.id)
        )
        assert len(world.pool.leases()) == 1
        listener_id = world.listener.user.id
        if trigger == "channel_empty":
            await alice.leave()
        elif trigger == "bot_disconnected":
            await fake.disconnect_member(listener_id)
        elif trigger == "bot_moved":
            await fake.move_member(listener_id, "Voice C")
        await wait_for(lambda: not manager.sessions, timeout=20, what=f"the auto-stop on {trigger}")
        assert world.emulator.state.sessions == {} and world.pool.leases() == []
        async with db.session() as s:
            row = await db_sessions.get_session(s, report.session_id)
        assert row.status == "ended" and row.end_reason == trigger
        summaries = [m for m in fake.messages("Voice A") if "ended" in m.content and m.files]
        assert len(summaries) == 1


async def crashed_rows(db) -> list:
    async with db.session() as s:
        return [r for r in await db_sessions.list_active_sessions(s) if r.instance_id == "dead-host:1"]


async def test_recovery_deletes_crashed_and_untracked_palabra_sessions_and_resumes_only_where_people_are(db):
    async with world_on(db, speaker_count=0) as world:
        fake, manager, rest = world.fake, world.manager, world.services.palabra
        await world.configure(targets=("es",))
        alice = await fake.add_user("Alice")
        await alice.join("Voice A")
        crashed_busy, crashed_empty, untracked, foreign = [(await rest.create_session()).id for _ in range(4)]
        async with db.session() as s:
            for channel, palabra_id in (("Voice A", crashed_busy), ("Voice B", crashed_empty)):
                row = await db_sessions.start_session(
                    s,
                    guild_id=fake.guild.id,
                    source_channel_id=fake.channel(channel).id,
                    source_language="en",
                    target_languages=["es"],
                    instance_id="dead-host:1",
                    started_by_user_id=alice.id,
                )
                await db_sessions.add_palabra_session_id(s, row.id, palabra_id)
        async with db.session() as s:  # an ended session whose Palabra session was never deleted
            old = await db_sessions.start_session(
                s,
                guild_id=fake.guild.id,
                source_channel_id=fake.channel("Voice C").id,
                source_language="en",
                target_languages=["es"],
                instance_id="dead-host:1",
            )
            await db_sessions.add_palabra_session_id(s, old.id, untracked)
        async with db.session() as s:
            await db_sessions.stop_session(s, old.id)

        async with db.session() as s:  # one line past the default retention, one recent
            for tid in ("ancient", "recent"):
                await db_transcripts.add_transcript_line(s, session_id=old.id, transcription_id=tid, source_text=tid)
            await s.execute(
                update(TranscriptLine)
                .where(TranscriptLine.transcription_id == "ancient")
                .values(created_at=datetime.now(UTC) - timedelta(days=DEFAULT_TRANSCRIPT_RETENTION_DAYS + 1))
            )

        # While a crashed session is being resumed its overlay links wait for it (manager.resuming).
        crashed_ids = sorted(r.id for r in await crashed_rows(db))
        seen_resuming: list[list[bool]] = []
        resume = manager._resume

        async def observed(row):
            seen_resuming.append([manager.resuming(sid) for sid in crashed_ids])
            await resume(row)

        manager._resume = observed
        await manager.recover()
        assert seen_resuming == [[True, True], [False, True]]  # each one until its own resume is done
        assert not any(manager.resuming(sid) for sid in crashed_ids)

        async with db.session() as s:  # retention is enforced from start-up on
            kept = await db_transcripts.session_transcript(s, old.id)
            assert [line.transcription_id for line in kept] == ["recent"]
        remaining = set(world.emulator.state.sessions)
        assert crashed_busy not in remaining and crashed_empty not in remaining and untracked not in remaining
        assert foreign in remaining  # not ours: never touched
        assert list(manager.sessions) == [fake.channel("Voice A").id]  # resumed where Alice still is
        async with db.session() as s:
            live = await db_sessions.list_active_sessions(s)
            assert [r.source_channel_id for r in live] == [fake.channel("Voice A").id]
            assert live[0].instance_id == manager.instance_id and live[0].started_by_user_id == alice.id
        await manager.stop(guild_id=fake.guild.id)
        assert set(world.emulator.state.sessions) == {foreign}
