from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from bot.db import guilds, sessions, transcripts
from bot.db.models import DEFAULT_TRANSCRIPT_RETENTION_DAYS, TranscriptLine

GUILD = 3_100_000_000_000_000_001
OTHER_GUILD = 3_100_000_000_000_000_002
SPEAKER = 3_200_000_000_000_000_001


async def start(db, guild=GUILD, channel=1):
    async with db.session() as s:
        row = await sessions.start_session(
            s,
            guild_id=guild,
            source_channel_id=channel,
            source_language="en",
            target_languages=["es", "fr"],
            instance_id="host:1",
        )
        return row.id


async def test_line_round_trip_with_translations(db):
    session_id = await start(db)
    async with db.session() as s:
        await transcripts.add_transcript_line(
            s,
            session_id=session_id,
            transcription_id="t-1",
            source_text="Hello there",
            speaker_user_id=SPEAKER,
            source_language="en",
            translations={"es": "Hola"},
            start_time=1.5,
            end_time=2.75,
        )
        await transcripts.add_translation(s, session_id=session_id, transcription_id="t-1", language="fr", text="Salut")
    async with db.session() as s:
        (line,) = await transcripts.session_transcript(s, session_id)
    assert (line.transcription_id, line.source_text, line.speaker_user_id) == ("t-1", "Hello there", SPEAKER)
    assert line.translations == {"es": "Hola", "fr": "Salut"}
    assert (line.start_time, line.end_time, line.source_language) == (1.5, 2.75, "en")
    assert line.created_at.tzinfo is not None


async def test_translation_before_transcript_and_repeated_transcript(db):
    session_id = await start(db)
    async with db.session() as s:
        await transcripts.add_translation(s, session_id=session_id, transcription_id="t-1", language="es", text="Hola")
        await transcripts.add_transcript_line(s, session_id=session_id, transcription_id="t-1", source_text="Hi")
        await transcripts.add_transcript_line(s, session_id=session_id, transcription_id="t-1", source_text="Hi all")
    async with db.session() as s:
        (line,) = await transcripts.session_transcript(s, session_id)
    assert (line.source_text, line.translations) == ("Hi all", {"es": "Hola"})


async def test_concurrent_translations_of_one_line_all_survive(db):
    session_id = await start(db)
    languages = ["es", "fr", "de", "it", "pt", "ja"]

    async def translate(language: str) -> None:
        async with db.session() as s:
            await transcripts.add_translation(
                s, session_id=session_id, transcription_id="t-1", language=language, text=f"text-{language}"
            )

    await asyncio.gather(*(translate(language) for language in languages))
    async with db.session() as s:
        (line,) = await transcripts.session_transcript(s, session_id)
    assert line.translations == {language: f"text-{language}" for language in languages}


async def test_transcript_is_in_spoken_order_and_per_session(db):
    session_id = await start(db)
    other = await start(db, channel=2)
    async with db.session() as s:
        for tid, start_time in [("c", 9.0), ("a", 1.0), ("x", None), ("b", 4.0)]:
            await transcripts.add_transcript_line(
                s, session_id=session_id, transcription_id=tid, source_text=tid, start_time=start_time
            )
        await transcripts.add_transcript_line(s, session_id=other, transcription_id="a", source_text="other")
    async with db.session() as s:
        assert [line.source_text for line in await transcripts.session_transcript(s, session_id)] == [
            "a",
            "b",
            "c",
            "x",
        ]
        assert [line.source_text for line in await transcripts.session_transcript(s, other)] == ["other"]


async def _age(db, session_id: int, transcription_id: str, days: float) -> None:
    async with db.session() as s:
        await s.execute(
            update(TranscriptLine)
            .where(TranscriptLine.session_id == session_id, TranscriptLine.transcription_id == transcription_id)
            .values(created_at=datetime.now(UTC) - timedelta(days=days))
        )


async def test_purge_applies_each_guilds_retention(db):
    short = await start(db, guild=GUILD, channel=1)
    default = await start(db, guild=OTHER_GUILD, channel=2)
    async with db.session() as s:
        await guilds.update_guild_setting(s, GUILD, "transcript_retention_days", 3)
        for session_id in (short, default):
            for tid in ("new", "week-old", "ancient"):
                await transcripts.add_transcript_line(s, session_id=session_id, transcription_id=tid, source_text=tid)
    for session_id in (short, default):
        await _age(db, session_id, "week-old", 7)
        await _age(db, session_id, "ancient", DEFAULT_TRANSCRIPT_RETENTION_DAYS + 1)
    async with db.session() as s:
        assert await transcripts.purge_expired_transcripts(s) == 3
    async with db.session() as s:
        assert [line.transcription_id for line in await transcripts.session_transcript(s, short)] == ["new"]
        assert [line.transcription_id for line in await transcripts.session_transcript(s, default)] == [
            "new",
            "week-old",
        ]
        assert await transcripts.purge_expired_transcripts(s) == 0


async def test_zero_retention_keeps_nothing(db):
    session_id = await start(db)
    async with db.session() as s:
        await guilds.update_guild_setting(s, GUILD, "transcript_retention_days", 0)
        await transcripts.add_transcript_line(s, session_id=session_id, transcription_id="t", source_text="x")
    async with db.session() as s:
        assert await transcripts.purge_expired_transcripts(s, now=datetime.now(UTC) + timedelta(seconds=1)) == 1
