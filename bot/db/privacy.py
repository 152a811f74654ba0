"""Users' privacy choices (`/privacy optout|optin|delete`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import GLOBAL_SCOPE, InterpretationSession, PrivacyOptOut, TranscriptLine
from bot.db.rows import affected_rows, execute_counting, insert_ignoring_conflicts


@dataclass(frozen=True)
class DeletedUserData:
    transcript_lines: int
    privacy_choices: int

    @property
    def total(self) -> int:
        return self.transcript_lines + self.privacy_choices


def _scope(guild_id: int | None) -> int:
    return GLOBAL_SCOPE if guild_id is None else guild_id


async def opt_out(session: AsyncSession, user_id: int, guild_id: int | None = None) -> bool:
    """Exclude the user's voice in one guild, or everywhere when guild_id is None.
    Returns False if that choice was already recorded."""
    return (
        await insert_ignoring_conflicts(session, PrivacyOptOut, {"user_id": user_id, "guild_id": _scope(guild_id)})
        is not None
    )


async def opt_in(session: AsyncSession, user_id: int, guild_id: int | None = None) -> bool:
    """Undo `opt_out` for the same scope. Returns False if there was nothing to undo.

    A global opt-out still applies in a guild after a per-guild opt-in: undo it with guild_id None.
    """
    result = await session.execute(
        delete(PrivacyOptOut).where(PrivacyOptOut.user_id == user_id, PrivacyOptOut.guild_id == _scope(guild_id))
    )
    return affected_rows(result) > 0


async def is_opted_out(session: AsyncSession, user_id: int, guild_id: int) -> bool:
    """Whether the user's voice must be left out in this guild (a global or a per-guild choice)."""
    found = await session.scalar(
        select(PrivacyOptOut.user_id)
        .where(PrivacyOptOut.user_id == user_id, PrivacyOptOut.guild_id.in_((guild_id, GLOBAL_SCOPE)))
        .limit(1)
    )
    return found is not None


async def opted_out_user_ids(session: AsyncSession, guild_id: int) -> set[int]:
    """Every user whose voice must be left out in this guild: load once per session for the mixer,
    then keep it current from the opt-out/opt-in commands."""
    result = await session.scalars(
        select(PrivacyOptOut.user_id).where(PrivacyOptOut.guild_id.in_((guild_id, GLOBAL_SCOPE)))
    )
    return set(result)


async def opt_out_scopes(session: AsyncSession, user_id: int) -> list[int | None]:
    """Where the user opted out: guild ids, and None for the global choice (shown by `/privacy`)."""
    result = await session.scalars(
        select(PrivacyOptOut.guild_id).where(PrivacyOptOut.user_id == user_id).order_by(PrivacyOptOut.guild_id)
    )
    return [None if guild == GLOBAL_SCOPE else guild for guild in result]


async def delete_user_data(
    session: AsyncSession, user_id: int, guild_id: int | None = None, *, keep_choices: bool = False
) -> DeletedUserData:
    """Delete what is stored about a user: the transcript lines they spoke and (unless `keep_choices`)
    their privacy choices.

    With guild_id, only that guild's lines and that guild's choice; without, everything. Deleting the
    choices means a former opt-out no longer applies.
    """
    lines = delete(TranscriptLine).where(TranscriptLine.speaker_user_id == user_id)
    choices = delete(PrivacyOptOut).where(PrivacyOptOut.user_id == user_id)
    if guild_id is not None:
        guild_sessions = select(InterpretationSession.id).where(InterpretationSession.guild_id == guild_id)
        lines = lines.where(TranscriptLine.session_id.in_(guild_sessions))
        choices = choices.where(PrivacyOptOut.guild_id == guild_id)
    deleted_lines = await execute_counting(session, lines)
    deleted_choices = 0 if keep_choices else await execute_counting(session, choices)
    return DeletedUserData(transcript_lines=deleted_lines, privacy_choices=deleted_choices)
