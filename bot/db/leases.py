"""Speaker-bot leases: which speaker plays which language into which channel, for which session.

Acquisition is atomic in the database (unique constraints + INSERT ... ON CONFLICT DO NOTHING), so
concurrent sessions, even in different processes, never get the same speaker in one guild.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import SpeakerLease
from bot.db.rows import affected_rows, insert_ignoring_conflicts
from bot.db.types import utcnow


async def acquire_speaker(
    session: AsyncSession,
    *,
    candidates: Iterable[int],
    guild_id: int,
    channel_id: int,
    language: str,
    instance_id: str,
    session_id: int | None = None,
) -> SpeakerLease | None:
    """Lease the first free speaker among `candidates` (speaker bot user ids that are members of the
    guild, in order of preference) to play `language` into `channel_id`.

    Returns the lease, or None when every candidate is busy in this guild or the channel already has
    a speaker. If the session already holds a lease for this language and channel, that lease is
    returned (retries are safe).
    """
    existing = await _session_lease(session, session_id, language)
    if existing is not None:
        return existing if existing.channel_id == channel_id else None
    for speaker_user_id in candidates:
        lease_id = await insert_ignoring_conflicts(
            session,
            SpeakerLease,
            {
                "speaker_user_id": speaker_user_id,
                "guild_id": guild_id,
                "channel_id": channel_id,
                "language": language,
                "session_id": session_id,
                "instance_id": instance_id,
                "leased_at": utcnow(),
            },
        )
        if lease_id is not None:
            return await session.get_one(SpeakerLease, lease_id)
        if await _channel_taken(session, guild_id, channel_id):
            return None
    return None


async def _session_lease(session: AsyncSession, session_id: int | None, language: str) -> SpeakerLease | None:
    if session_id is None:
        return None
    return await session.scalar(
        select(SpeakerLease).where(SpeakerLease.session_id == session_id, SpeakerLease.language == language)
    )


async def _channel_taken(session: AsyncSession, guild_id: int, channel_id: int) -> bool:
    taken = await session.scalar(
        select(SpeakerLease.id).where(SpeakerLease.guild_id == guild_id, SpeakerLease.channel_id == channel_id)
    )
    return taken is not None


async def release_speaker(session: AsyncSession, speaker_user_id: int, guild_id: int) -> bool:
    """End the speaker's lease in a guild; False if it held none."""
    result = await session.execute(
        delete(SpeakerLease).where(SpeakerLease.speaker_user_id == speaker_user_id, SpeakerLease.guild_id == guild_id)
    )
    return affected_rows(result) > 0


async def release_lease(session: AsyncSession, lease_id: int) -> bool:
    result = await session.execute(delete(SpeakerLease).where(SpeakerLease.id == lease_id))
    return affected_rows(result) > 0


async def release_session_leases(session: AsyncSession, session_id: int | Iterable[int]) -> int:
    """End every lease of an interpretation session (or of several); returns how many."""
    ids = [session_id] if isinstance(session_id, int) else list(session_id)
    if not ids:
        return 0
    result = await session.execute(delete(SpeakerLease).where(SpeakerLease.session_id.in_(ids)))
    return affected_rows(result)


async def release_instance_leases(session: AsyncSession, instance_id: str) -> int:
    """End every lease held by a process (on shutdown, or for a process known to be dead)."""
    result = await session.execute(delete(SpeakerLease).where(SpeakerLease.instance_id == instance_id))
    return affected_rows(result)


async def leases_of_session(session: AsyncSession, session_id: int) -> list[SpeakerLease]:
    return list(
        await session.scalars(
            select(SpeakerLease).where(SpeakerLease.session_id == session_id).order_by(SpeakerLease.language)
        )
    )


async def busy_speakers(session: AsyncSession, guild_id: int) -> set[int]:
    """Speaker bot user ids leased in a guild."""
    return set(await session.scalars(select(SpeakerLease.speaker_user_id).where(SpeakerLease.guild_id == guild_id)))
