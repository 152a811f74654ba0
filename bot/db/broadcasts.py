"""Palabra broadcasts owned by a guild (`/broadcast ...`).

Every lookup is scoped to a guild: another guild's broadcast is reported as not found, so one
server can never see or change another's.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.errors import NotFound
from bot.db.models import Broadcast

_UNCHANGED = object()


async def add_broadcast(
    session: AsyncSession,
    *,
    guild_id: int,
    palabra_broadcast_id: str,
    creator_user_id: int,
    title: str,
    announce_channel_id: int | None = None,
    status: str | None = None,
) -> Broadcast:
    row = Broadcast(
        guild_id=guild_id,
        palabra_broadcast_id=palabra_broadcast_id,
        creator_user_id=creator_user_id,
        title=title,
        announce_channel_id=announce_channel_id,
        status=status,
    )
    session.add(row)
    await session.flush()
    return row


async def list_broadcasts(session: AsyncSession, guild_id: int) -> list[Broadcast]:
    """The guild's broadcasts, newest first."""
    return list(
        await session.scalars(
            select(Broadcast)
            .where(Broadcast.guild_id == guild_id)
            .order_by(Broadcast.created_at.desc(), Broadcast.id.desc())
        )
    )


async def find_broadcast(session: AsyncSession, guild_id: int, palabra_broadcast_id: str) -> Broadcast | None:
    return await session.scalar(
        select(Broadcast).where(Broadcast.guild_id == guild_id, Broadcast.palabra_broadcast_id == palabra_broadcast_id)
    )


async def get_broadcast(session: AsyncSession, guild_id: int, palabra_broadcast_id: str) -> Broadcast:
    """The guild's broadcast; raises NotFound if it does not exist or another guild owns it."""
    row = await find_broadcast(session, guild_id, palabra_broadcast_id)
    if row is None:
        raise NotFound(f"this server has no broadcast {palabra_broadcast_id!r}")
    return row


async def update_broadcast(
    session: AsyncSession,
    guild_id: int,
    palabra_broadcast_id: str,
    *,
    status: str | object | None = _UNCHANGED,
    title: str | object = _UNCHANGED,
    announce_channel_id: int | object | None = _UNCHANGED,
) -> Broadcast:
    """Change the last known status, title or announce channel (only the ones given)."""
    row = await get_broadcast(session, guild_id, palabra_broadcast_id)
    if status is not _UNCHANGED:
        row.status = status  # type: ignore[assignment]
    if title is not _UNCHANGED:
        row.title = title  # type: ignore[assignment]
    if announce_channel_id is not _UNCHANGED:
        row.announce_channel_id = announce_channel_id  # type: ignore[assignment]
    await session.flush()
    return row


async def update_broadcast_status(
    session: AsyncSession, guild_id: int, palabra_broadcast_id: str, status: str | None
) -> Broadcast:
    return await update_broadcast(session, guild_id, palabra_broadcast_id, status=status)


async def delete_broadcast(session: AsyncSession, guild_id: int, palabra_broadcast_id: str) -> Broadcast:
    """Forget the guild's broadcast (returns what was deleted); NotFound if not this guild's."""
    row = await get_broadcast(session, guild_id, palabra_broadcast_id)
    await session.delete(row)
    await session.flush()
    return row
