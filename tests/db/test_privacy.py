from __future__ import annotations

from bot.db import privacy, transcripts
from bot.db.models import GLOBAL_SCOPE
from tests.fakes.database import start_row

GUILD = 4_100_000_000_000_000_001
OTHER_GUILD = 4_100_000_000_000_000_002
ALICE = 4_200_000_000_000_000_001
BOB = 4_200_000_000_000_000_002


async def test_opt_out_per_guild(db):
    async with db.session() as s:
        assert await privacy.opt_out(s, ALICE, GUILD) is True
        assert await privacy.opt_out(s, ALICE, GUILD) is False
    async with db.session() as s:
        assert await privacy.is_opted_out(s, ALICE, GUILD) is True
        assert await privacy.is_opted_out(s, ALICE, OTHER_GUILD) is False
        assert await privacy.is_opted_out(s, BOB, GUILD) is False
        assert await privacy.opted_out_user_ids(s, GUILD) == {ALICE}
        assert await privacy.opted_out_user_ids(s, OTHER_GUILD) == set()
        assert await privacy.opt_in(s, ALICE, GUILD) is True
        assert await privacy.opt_in(s, ALICE, GUILD) is False
        assert await privacy.is_opted_out(s, ALICE, GUILD) is False


async def test_global_opt_out_applies_in_every_guild(db):
    async with db.session() as s:
        await privacy.opt_out(s, ALICE)
        await privacy.opt_out(s, BOB, OTHER_GUILD)
    async with db.session() as s:
        assert await privacy.is_opted_out(s, ALICE, GUILD) and await privacy.is_opted_out(s, ALICE, OTHER_GUILD)
        assert await privacy.opted_out_user_ids(s, GUILD) == {ALICE}
        assert await privacy.opted_out_user_ids(s, OTHER_GUILD) == {ALICE, BOB}
        assert await privacy.opt_out_scopes(s, ALICE) == [None]
        # A per-guild opt-in does not undo the global choice.
        assert await privacy.opt_in(s, ALICE, GUILD) is False
        assert await privacy.is_opted_out(s, ALICE, GUILD) is True
        assert await privacy.opt_in(s, ALICE) is True
        assert await privacy.opted_out_user_ids(s, GUILD) == set()


async def _session_with_lines(db, guild: int, channel: int) -> int:
    async with db.session() as s:
        row = await start_row(s, guild=guild, channel=channel)
        for n, speaker in enumerate([ALICE, BOB, ALICE, None]):
            await transcripts.add_transcript_line(
                s, session_id=row.id, transcription_id=f"t{n}", source_text=f"line {n}", speaker_user_id=speaker
            )
        return row.id


async def test_delete_user_data_everywhere_returns_counts_and_keeps_others(db):
    here = await _session_with_lines(db, GUILD, 1)
    there = await _session_with_lines(db, OTHER_GUILD, 2)
    async with db.session() as s:
        await privacy.opt_out(s, ALICE)
        await privacy.opt_out(s, ALICE, GUILD)
        await privacy.opt_out(s, BOB, GUILD)
    async with db.session() as s:
        deleted = await privacy.delete_user_data(s, ALICE)
    assert (deleted.transcript_lines, deleted.privacy_choices, deleted.total) == (4, 2, 6)
    async with db.session() as s:
        for session_id in (here, there):
            lines = await transcripts.session_transcript(s, session_id)
            assert [(line.transcription_id, line.speaker_user_id) for line in lines] == [("t1", BOB), ("t3", None)]
        assert await privacy.opted_out_user_ids(s, GUILD) == {BOB}
        assert await privacy.opt_out_scopes(s, ALICE) == []
        again = await privacy.delete_user_data(s, ALICE)
    assert again.total == 0


async def test_delete_user_data_in_one_guild(db):
    here = await _session_with_lines(db, GUILD, 1)
    there = await _session_with_lines(db, OTHER_GUILD, 2)
    async with db.session() as s:
        await privacy.opt_out(s, ALICE)
        await privacy.opt_out(s, ALICE, GUILD)
    async with db.session() as s:
        deleted = await privacy.delete_user_data(s, ALICE, GUILD)
    assert (deleted.transcript_lines, deleted.privacy_choices) == (2, 1)
    async with db.session() as s:
        assert [line.speaker_user_id for line in await transcripts.session_transcript(s, here)] == [BOB, None]
        assert [line.speaker_user_id for line in await transcripts.session_transcript(s, there)] == [
            ALICE,
            BOB,
            ALICE,
            None,
        ]
        assert await privacy.opt_out_scopes(s, ALICE) == [None]
    assert GLOBAL_SCOPE == 0


async def test_delete_user_data_can_keep_the_privacy_choices(db):
    async with db.session() as s:
        await privacy.opt_out(s, ALICE, GUILD)
        await privacy.opt_out(s, ALICE)
    async with db.session() as s:
        deleted = await privacy.delete_user_data(s, ALICE, keep_choices=True)
    assert deleted.privacy_choices == 0
    async with db.session() as s:
        assert sorted(await privacy.opt_out_scopes(s, ALICE), key=str) == sorted([GUILD, None], key=str)
