"""Races between a session's start, its stop and the process's shutdown, against the fake Discord, the
emulator and a database: a stop asked during a start, a shutdown during a start, a stop whose first
step fails, a resume that fails in an unexpected way. Nothing may stay behind: no Palabra session, no
speaker bot in its channel, no row left active."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.db import sessions as db_sessions
from bot.interpretation.errors import NoActiveSession, ShuttingDown, StillStarting
from bot.interpretation.recovery import CrashedSession
from tests.interpretation.conftest import wait_for, world_on

pytestmark = pytest.mark.timeout(90)


async def _active_rows(world) -> list:
    async with world.database.session() as s:
        return await db_sessions.list_active_sessions(s)


async def _nothing_left(world) -> None:
    assert world.manager.sessions == {}
    assert world.emulator.state.sessions == {}  # the Palabra session was deleted
    assert world.pool.leases() == []  # the speaker bot was released
    await wait_for(lambda: world.guild.voice_client is None, what="the listener out of voice")
    assert await _active_rows(world) == []


class HeldBuild:
    """The start's build waits here until released: a slow Palabra handshake or speaker wait."""

    def __init__(self, world) -> None:
        self.entered, self.release = asyncio.Event(), asyncio.Event()
        original = world.manager.starter.build

        async def build(*args, **kwargs):
            self.entered.set()
            await self.release.wait()
            return await original(*args, **kwargs)

        world.manager.starter.build = build


async def _start(world, alice):
    return await world.manager.start(
        guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=world.guild.get_member(alice.id)
    )


async def _session_world(db, world):
    await world.configure(targets=("es",), siblings={"es": "Voice B"})
    alice = await world.fake.add_user("Alice")
    await alice.join("Voice A")
    return alice


async def _start_held(db, world):
    """Alice's start, held inside its build: (alice, the hold, the start's task)."""
    alice = await _session_world(db, world)
    held = HeldBuild(world)
    starting = asyncio.create_task(_start(world, alice))
    await held.entered.wait()
    return alice, held, starting


async def test_a_stop_asked_while_the_session_starts_stops_it_once_started(db):
    async with world_on(db) as world:
        _alice, held, starting = await _start_held(db, world)
        with pytest.raises(StillStarting):  # told, not "no session is running"
            await world.manager.stop(guild_id=world.fake.guild.id)
        held.release.set()
        with pytest.raises(NoActiveSession, match="stopped as asked"):
            await starting
        await _nothing_left(world)


async def test_a_shutdown_during_a_start_waits_for_it_and_stops_it_and_later_starts_are_refused(db):
    async with world_on(db) as world:
        alice, held, starting = await _start_held(db, world)
        closing = asyncio.create_task(world.manager.close())
        await asyncio.sleep(0.1)
        assert not closing.done()  # it waits for the start under way
        with pytest.raises(ShuttingDown):
            await world.manager.start(
                guild=world.guild, voice_channel=world.channel("Voice B"), requested_by=world.guild.get_member(alice.id)
            )
        held.release.set()
        with pytest.raises(ShuttingDown):
            await starting
        await closing
        await _nothing_left(world)


async def test_a_stop_whose_wind_down_fails_still_releases_everything(db, caplog):
    async with world_on(db) as world:
        alice = await _session_world(db, world)
        await _start(world, alice)
        [running] = world.manager.sessions.values()
        assert len(world.pool.leases()) == 1

        async def broken_wind_down() -> None:
            raise RuntimeError("the stream failed mid-stop")

        running.live.wind_down = broken_wind_down
        with caplog.at_level(logging.ERROR, logger="bot.interpretation.manager"):
            await world.manager.stop(guild_id=world.fake.guild.id)
        assert any("winding down failed" in r.getMessage() for r in caplog.records)
        await _nothing_left(world)
        await _start(world, alice)  # the server is not stuck with "already running"
        await world.manager.stop(guild_id=world.fake.guild.id)


async def test_a_resume_failing_with_an_unexpected_error_is_logged_and_the_others_still_resume(db, caplog):
    async with world_on(db) as world:
        alice = await _session_world(db, world)
        resumed: list[int] = []
        original = world.manager._start

        async def start(guild, channel, requested):
            if not resumed:
                resumed.append(0)
                raise OSError("connection reset by the voice server")
            resumed.append(channel.id)
            return await original(guild, channel, requested)

        world.manager._start = start
        rows = [CrashedSession(k, world.channel("Voice A").id, "en", ("es",), alice.id, ()) for k in (101, 102)]
        with caplog.at_level(logging.ERROR, logger="bot.interpretation.manager"):
            for row in rows:
                await world.manager._resume(row)
        assert resumed == [0, world.channel("Voice A").id]  # the second one resumed after the first failed
        assert any("could not resume" in r.getMessage() for r in caplog.records)
        assert len(world.manager.sessions) == 1
        await world.manager.stop(guild_id=world.fake.guild.id)


async def test_a_speaker_acquisition_cancelled_during_its_database_write_leaves_the_speaker_free(db, monkeypatch):
    from bot.interpretation import leasing
    from bot.voice.playback import TranslationSource

    async with world_on(db) as world:
        entered = asyncio.Event()

        async def stuck_write(*_args, **_kwargs):
            entered.set()
            await asyncio.Event().wait()

        monkeypatch.setattr(leasing.db_leases, "acquire_speaker", stuck_write)
        acquiring = asyncio.create_task(
            world.manager.leases.acquire(
                guild_id=world.fake.guild.id,
                channel_id=world.channel("Voice B").id,
                language="es",
                session_id=1,
                source=TranslationSource(),
            )
        )
        await entered.wait()
        assert len(world.pool.leases()) == 1
        acquiring.cancel()  # a stop or a shutdown while the keeper moves a language
        await asyncio.gather(acquiring, return_exceptions=True)
        assert world.pool.leases() == []  # not leased forever to a session that never got it
