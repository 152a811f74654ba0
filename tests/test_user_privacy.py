"""bot.user_privacy on both databases, with and without running sessions to tell."""

from __future__ import annotations

from bot import user_privacy
from bot.db import privacy, sessions, transcripts
from bot.services import Core, Services
from bot.settings import Settings
from tests.cogs.conftest import RecordingManager

USER, GUILD, OTHER_GUILD = 501, 9001, 9002


def _services(db, manager=None) -> Services:
    return Services(Core(Settings(_env_file=None), db), interpretation=manager)


async def _scopes(db) -> list[int | None]:
    async with db.session() as s:
        return await privacy.opt_out_scopes(s, USER)


async def test_choices_are_stored_without_a_manager(db):
    services = _services(db)
    assert await user_privacy.opt_out(services, USER, GUILD) is True
    assert await user_privacy.opt_out(services, USER, GUILD) is False
    assert await _scopes(db) == [GUILD]
    assert await user_privacy.opt_in(services, USER, GUILD) == user_privacy.OptInResult(True, False)
    assert await _scopes(db) == []


async def test_running_sessions_hear_only_what_still_applies(db):
    manager = RecordingManager()
    services = _services(db, manager)
    await user_privacy.opt_out(services, USER, None)
    await user_privacy.opt_out(services, USER, OTHER_GUILD)
    result = await user_privacy.opt_in(services, USER, GUILD)  # nothing here; the global choice stands
    assert result == user_privacy.OptInResult(False, True)
    result = await user_privacy.opt_in(services, USER, None)
    assert result == user_privacy.OptInResult(True, True)
    told = [(c["guild_id"], c["opted_out"]) for name, c in manager.calls]
    assert told == [(None, True), (OTHER_GUILD, True), (None, False), (OTHER_GUILD, True)]


async def test_delete_in_one_guild_keeps_other_guilds_and_the_choice(db):
    services = _services(db)
    async with db.session() as s:
        ids = []
        for guild in (GUILD, OTHER_GUILD):
            session = await sessions.start_session(
                s,
                guild_id=guild,
                source_channel_id=guild * 10,
                source_language="en",
                target_languages=["es"],
                instance_id="test:1",
            )
            await transcripts.add_transcript_line(
                s, session_id=session.id, transcription_id="a", source_text="hi", speaker_user_id=USER
            )
            ids.append(session.id)
    await user_privacy.opt_out(services, USER, GUILD)
    await user_privacy.opt_out(services, USER, OTHER_GUILD)
    assert await user_privacy.delete_data(services, USER, GUILD) == user_privacy.DeleteResult(1, 1)
    async with db.session() as s:
        assert await transcripts.session_transcript(s, ids[0]) == []
        assert len(await transcripts.session_transcript(s, ids[1])) == 1
    assert await _scopes(db) == [GUILD, OTHER_GUILD]
    assert await user_privacy.delete_data(services, USER, None) == user_privacy.DeleteResult(1, 2)
    assert await _scopes(db) == [GUILD, OTHER_GUILD]
