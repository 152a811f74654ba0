"""A failed start tells the user what failed: Palabra's errors as the translation service, the database as
the database, the voice connection and libopus as themselves; and leaves nothing half-started."""

from __future__ import annotations

import asyncio

import discord
import pytest
from sqlalchemy.exc import OperationalError

from bot.audio.opus import OpusUnavailable
from bot.db import sessions as db_sessions
from bot.db.errors import DatabaseUnavailable
from bot.errors import UserFacingError
from bot.interpretation import starting
from bot.interpretation.errors import (
    DatabaseProblem,
    InvalidLanguages,
    PalabraUnavailable,
    VoiceConnectTimeout,
    VoiceUnavailable,
)
from bot.interpretation.starting import start_failure
from bot.palabra.errors import InsufficientBalanceError, PalabraConnectionError
from bot.voice.speakers import SpeakerError
from tests.fakes.database import FlakyDatabase
from tests.interpretation.conftest import world_on

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize(
    ("error", "told", "says"),
    [
        (PalabraConnectionError("connect refused"), PalabraUnavailable, "translation service"),
        (InsufficientBalanceError("no money"), PalabraUnavailable, "out of balance"),
        (DatabaseUnavailable("cannot use the database"), DatabaseProblem, "database"),
        (OperationalError("SELECT 1", {}, ConnectionRefusedError()), DatabaseProblem, "database"),
        (OpusUnavailable("no libopus"), VoiceUnavailable, "libopus"),
        (SpeakerError("cannot see channel"), VoiceUnavailable, "voice channel"),
        (discord.ClientException("already connected"), VoiceUnavailable, "voice channel"),
    ],
)
def test_each_failure_is_told_as_itself(error, told, says):
    shown = start_failure(error)
    assert type(shown) is told and says in shown.user_message
    if told is not PalabraUnavailable:
        assert "translation service" not in shown.user_message


def test_user_facing_errors_pass_through_and_bugs_stay_bugs():
    refusal = InvalidLanguages("xx is not a language")
    assert start_failure(refusal) is refusal
    bug = RuntimeError("a bug")
    assert start_failure(bug) is bug and not isinstance(bug, UserFacingError)
    # A timeout is only "could not join" where it is the voice connection's (VoiceConnectTimeout); any
    # other one is not guessed at: logged with its traceback, told as an unexpected error.
    timeout = TimeoutError()
    assert start_failure(timeout) is timeout


async def alice_in_voice_a(world):
    """The server set up for Spanish, Alice in Voice A: her member and the channel she starts in."""
    await world.configure(targets=("es",))
    alice = await world.fake.add_user("Alice")
    await alice.join("Voice A")
    return world.guild.get_member(alice.id), world.channel("Voice A")


async def test_a_voice_connection_that_never_completes_is_told_as_that_and_leaves_nothing(db, monkeypatch):
    monkeypatch.setattr(starting, "CONNECT_TIMEOUT_S", 1.0)
    async with world_on(db, speaker_count=0) as world:
        fake, manager = world.fake, world.manager
        member, channel = await alice_in_voice_a(world)
        fake.voice.hold_upgrades = asyncio.Event()  # the voice server never answers the websocket
        with pytest.raises(VoiceConnectTimeout) as error:
            await manager.start(guild=world.guild, voice_channel=channel, requested_by=member)
        assert "in time" in error.value.user_message and "translation" not in error.value.user_message
        assert manager.sessions == {} and world.guild.voice_client is None
        assert world.emulator.state.sessions == {}
        async with db.session() as s:
            assert await db_sessions.list_active_sessions(s) == []
        fake.voice.hold_upgrades.set()
        fake.voice.hold_upgrades = None
        report = await manager.start(guild=world.guild, voice_channel=channel, requested_by=member)
        assert report.session_id in {r.session_id for r in manager.sessions.values()}
        await manager.stop(guild_id=fake.guild.id)


async def test_a_database_failure_at_start_is_told_as_a_database_problem(db):
    flaky = FlakyDatabase(db)
    async with world_on(flaky, speaker_count=0) as world:
        fake, manager = world.fake, world.manager
        member, channel = await alice_in_voice_a(world)

        flaky.down = True  # unreachable before anything is built
        with pytest.raises(DatabaseProblem) as error:
            await manager.start(guild=world.guild, voice_channel=channel, requested_by=member)
        assert "database" in error.value.user_message and "translation" not in error.value.user_message
        flaky.down = False
        assert manager.sessions == {} and world.guild.voice_client is None

        # A blip halfway: the session row and the Palabra session exist, recording the Palabra id fails.
        flaky.failing_units = {flaky.units + 3}  # 1: server settings, 2: session row, 3: the Palabra id
        with pytest.raises(DatabaseProblem):
            await manager.start(guild=world.guild, voice_channel=channel, requested_by=member)
        assert flaky.refused == 2
        assert manager.sessions == {} and world.guild.voice_client is None
        assert world.emulator.state.sessions == {}  # the unrecorded Palabra session was deleted
        async with db.session() as s:
            assert await db_sessions.list_active_sessions(s) == []

        report = await manager.start(guild=world.guild, voice_channel=channel, requested_by=member)
        await manager.stop(guild_id=fake.guild.id)
        async with db.session() as s:
            row = await db_sessions.get_session(s, report.session_id)
        assert row is not None and row.end_reason == "stopped"
