"""Transcript lines: one per transcription id, translations merged in as they arrive; retention purge."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import DEFAULT_TRANSCRIPT_RETENTION_DAYS, GuildSettings, InterpretationSession, TranscriptLine
from bot.db.rows import affected_rows, insert_ignoring_conflicts_statement
from bot.db.types import utcnow


async def add_transcript_line(
    session: AsyncSession,
    *,
    session_id: int,
    transcription_id: str,
    source_text: str,
    speaker_user_id: int | None = None,
    source_language: str | None = None,
    translations: Mapping[str, str] | None = None,
    start_time: float | None = None,
    end_time: float | None = None,
) -> TranscriptLine:
    """Store a final (validated) transcript. A repeated transcription id updates the line instead of
    duplicating it, keeping translations already stored."""
    await session.execute(
        insert_ignoring_conflicts_statement(session, TranscriptLine).values(
            session_id=session_id,
            transcription_id=transcription_id,
            source_text=source_text,
            translations={},
            created_at=utcnow(),
        )
    )
    line = await _line_for_update(session, session_id, transcription_id)
    line.source_text = source_text
    if speaker_user_id is not None:
        line.speaker_user_id = speaker_user_id
    if source_language is not None:
        line.source_language = source_language
    if start_time is not None:
        line.start_time = start_time
    if end_time is not None:
        line.end_time = end_time
    if translations:
        line.translations = {**line.translations, **translations}
    await session.flush()
    return line


async def add_translation(
    session: AsyncSession, *, session_id: int, transcription_id: str, language: str, text: str
) -> TranscriptLine:
    """Merge one language's translation into its line (created empty if the transcript is not in yet)."""
    await session.execute(
        insert_ignoring_conflicts_statement(session, TranscriptLine).values(
            session_id=session_id,
            transcription_id=transcription_id,
            source_text="",
            translations={},
            created_at=utcnow(),
        )
    )
    line = await _line_for_update(session, session_id, transcription_id)
    # Assign a new dict: in-place changes to a JSON value are not tracked.
    line.translations = {**line.translations, language: text}
    await session.flush()
    return line


async def _line_for_update(session: AsyncSession, session_id: int, transcription_id: str) -> TranscriptLine:
    # Row lock on PostgreSQL so two translations arriving at once both survive (SQLite serialises writers).
    line = await session.scalar(
        select(TranscriptLine)
        .where(TranscriptLine.session_id == session_id, TranscriptLine.transcription_id == transcription_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert line is not None, "inserted or already present just before"
    return line


async def session_transcript(session: AsyncSession, session_id: int) -> list[TranscriptLine]:
    """A session's lines in spoken order (by start time when known, then arrival)."""
    return list(
        await session.scalars(
            select(TranscriptLine)
            .where(TranscriptLine.session_id == session_id)
            .order_by(TranscriptLine.start_time.is_(None), TranscriptLine.start_time, TranscriptLine.id)
        )
    )


async def purge_expired_transcripts(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete lines older than their guild's retention (guilds without settings: the default).

    A retention of 0 days deletes every line of that guild. Returns the number of lines deleted.
    """
    now = now or utcnow()
    rows = await session.execute(select(GuildSettings.guild_id, GuildSettings.transcript_retention_days))
    retention = {guild_id: days for guild_id, days in rows}
    deleted = 0
    for days in sorted(set(retention.values())):
        guilds = [guild for guild, guild_days in retention.items() if guild_days == days]
        sessions = select(InterpretationSession.id).where(InterpretationSession.guild_id.in_(guilds))
        deleted += await _delete_lines_before(session, now - timedelta(days=days), sessions)
    unconfigured = select(InterpretationSession.id)
    if retention:
        unconfigured = unconfigured.where(InterpretationSession.guild_id.not_in(list(retention)))
    deleted += await _delete_lines_before(
        session, now - timedelta(days=DEFAULT_TRANSCRIPT_RETENTION_DAYS), unconfigured
    )
    return deleted


async def _delete_lines_before(session: AsyncSession, cutoff: datetime, session_ids: Select[int]) -> int:
    result = await session.execute(
        delete(TranscriptLine).where(TranscriptLine.created_at <= cutoff, TranscriptLine.session_id.in_(session_ids))
    )
    return affected_rows(result)
