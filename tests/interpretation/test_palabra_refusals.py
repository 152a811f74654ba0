"""A Palabra refusal at `/interpret start` is told to the user as itself, and leaves nothing behind:
no bot in a voice channel, no session row, no Palabra session."""

from __future__ import annotations

import pytest

from bot.db import sessions as db_sessions
from bot.interpretation.errors import PalabraUnavailable
from bot.palabra.errors import ParallelSessionLimitError, UnsupportedLanguageError
from tests.interpretation.conftest import world_on

pytestmark = pytest.mark.timeout(90)


async def _refused_start(world, db) -> PalabraUnavailable:
    alice = await world.fake.add_user("Alice")
    await alice.join("Voice A")
    member = world.guild.get_member(alice.id)
    with pytest.raises(PalabraUnavailable) as error:
        await world.manager.start(guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=member)
    assert world.manager.sessions == {} and world.guild.voice_client is None
    async with db.session() as s:
        assert await db_sessions.list_active_sessions(s) == []
    assert world.emulator.state.sessions == {}
    return error.value


async def test_parallel_session_limit_is_told_as_itself(db):
    async with world_on(db, speaker_count=0) as world:
        await world.configure(targets=("es",))
        world.emulator.state.config.max_parallel_sessions = 0
        error = await _refused_start(world, db)
    assert error.user_message == ParallelSessionLimitError.user_message
    assert "balance" not in error.user_message


async def test_a_language_palabra_rejects_is_one_line_naming_it(db):
    async with world_on(db, speaker_count=0) as world:
        await world.configure(targets=("xx-qq",))  # well-formed, unknown: a warning, then Palabra's verdict
        error = await _refused_start(world, db)
    assert (
        error.user_message
        == UnsupportedLanguageError("VALIDATION_ERROR", "", language="xx-qq", role="target").user_message
    )
    assert "'xx-qq'" in error.user_message and "/languages" in error.user_message and "\n" not in error.user_message
