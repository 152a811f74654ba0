"""Interpretation sessions: start, stop, list, and crash recovery."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.errors import NotFound, SessionAlreadyActive
from bot.db.leases import release_session_leases
from bot.db.models import (
    LIVE_STATUSES,
    SESSION_ACTIVE,
    SESSION_ENDED,
    SESSION_STOPPING,
    InterpretationSession,
)
from bot.db.rows import affected_rows
from bot.db.types import utcnow

# end_reason values the bot writes; free text is accepted too.
END_STOPPED = "stopped"
END_CRASHED = "crashed"


def default_instance_id() -> str:
    """This process's owner id: host name, process id and a per-run token.

    The token keeps two runs apart even when host name and pid repeat (a container's pid is always 1):
    a new run never mistakes a live predecessor, say a partitioned pod still running, for itself.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def start_session(
    session: AsyncSession,
    *,
    guild_id: int,
    source_channel_id: int,
    source_language: str,
    target_languages: Iterable[str],
    instance_id: str,
    text_channel_id: int | None = None,
    started_by_user_id: int | None = None,
    continues: Iterable[int] = (),
) -> InterpretationSession:
    """Record a new active session; raises SessionAlreadyActive if the channel already has a live one.

    The check is the database's unique index, so two concurrent starts cannot both succeed. On
    PostgreSQL a failed start leaves the transaction unusable: start in a unit of work of its own.
    """
    row = InterpretationSession(
        guild_id=guild_id,
        source_channel_id=source_channel_id,
        text_channel_id=text_channel_id,
        source_language=source_language,
        target_languages=list(target_languages),
        status=SESSION_ACTIVE,
        instance_id=instance_id,
        started_by_user_id=started_by_user_id,
        continues_session_ids=list(continues),
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise SessionAlreadyActive(source_channel_id) from None
    return row


async def get_session(session: AsyncSession, session_id: int) -> InterpretationSession | None:
    return await session.get(InterpretationSession, session_id)


async def live_session_in_channel(session: AsyncSession, source_channel_id: int) -> InterpretationSession | None:
    """The active or stopping session of a source voice channel, if any."""
    return await session.scalar(
        select(InterpretationSession).where(
            InterpretationSession.source_channel_id == source_channel_id,
            InterpretationSession.status.in_(LIVE_STATUSES),
        )
    )


async def list_active_sessions(
    session: AsyncSession, *, guild_id: int | None = None, instance_id: str | None = None
) -> list[InterpretationSession]:
    """Live (active or stopping) sessions, optionally of one guild and/or one owning instance."""
    query = select(InterpretationSession).where(InterpretationSession.status.in_(LIVE_STATUSES))
    if guild_id is not None:
        query = query.where(InterpretationSession.guild_id == guild_id)
    if instance_id is not None:
        query = query.where(InterpretationSession.instance_id == instance_id)
    return list(await session.scalars(query.order_by(InterpretationSession.id)))


async def _live(session: AsyncSession, session_id: int) -> InterpretationSession:
    row = await session.get(InterpretationSession, session_id, with_for_update=True)
    if row is None:
        raise NotFound(f"interpretation session {session_id} does not exist")
    return row


async def mark_stopping(session: AsyncSession, session_id: int) -> InterpretationSession:
    """Active -> stopping (the bot is tearing the session down); an ended session stays ended."""
    row = await _live(session, session_id)
    if row.status == SESSION_ACTIVE:
        row.status = SESSION_STOPPING
        await session.flush()
    return row


async def stop_session(
    session: AsyncSession, session_id: int, *, reason: str = END_STOPPED, ended_at: datetime | None = None
) -> InterpretationSession:
    """End a session and release its speaker leases. Idempotent: ending an ended session changes nothing."""
    row = await _live(session, session_id)
    if row.status != SESSION_ENDED:
        await end_sessions(session, [row], reason, ended_at or utcnow())
    return row


async def add_palabra_session_id(session: AsyncSession, session_id: int, palabra_session_id: str) -> None:
    """Remember a Palabra session this session created, so crash recovery can delete it."""
    row = await _live(session, session_id)
    if palabra_session_id not in row.palabra_session_ids:
        row.palabra_session_ids = [*row.palabra_session_ids, palabra_session_id]
        await session.flush()


async def palabra_session_ids_since(session: AsyncSession, since: datetime, *, ended_only: bool = False) -> set[str]:
    """Every Palabra session id recorded by sessions started since `since` (what this bot created
    recently), or only by those that have ended (`ended_only`: what nobody may still be using, even in
    another process; crash recovery deletes those Palabra still lists)."""
    query = select(InterpretationSession.palabra_session_ids).where(InterpretationSession.started_at >= since)
    if ended_only:
        query = query.where(InterpretationSession.status == SESSION_ENDED)
    rows = await session.scalars(query)
    return {palabra_id for ids in rows for palabra_id in (ids or [])}


async def heartbeat(session: AsyncSession, instance_id: str, *, now: datetime | None = None) -> int:
    """Mark the instance's live sessions as still owned; returns how many were touched."""
    result = await session.execute(
        update(InterpretationSession)
        .where(InterpretationSession.instance_id == instance_id, InterpretationSession.status.in_(LIVE_STATUSES))
        .values(heartbeat_at=now or utcnow())
    )
    return affected_rows(result)


async def mark_crashed_sessions(
    session: AsyncSession,
    *,
    instance_id: str | None = None,
    except_instance_id: str | None = None,
    heartbeat_before: datetime | None = None,
    now: datetime | None = None,
) -> list[InterpretationSession]:
    """End live sessions whose owner is gone, release their leases, and return them (with the
    Palabra session ids to delete).

    Pick the sessions with any combination of: `instance_id` (owned by that instance),
    `except_instance_id` (owned by anyone else — a single-instance bot on start), `heartbeat_before`
    (owner silent since then). With no filter at all every live session is closed.
    """
    query = select(InterpretationSession).where(InterpretationSession.status.in_(LIVE_STATUSES))
    if instance_id is not None:
        query = query.where(InterpretationSession.instance_id == instance_id)
    if except_instance_id is not None:
        query = query.where(InterpretationSession.instance_id != except_instance_id)
    if heartbeat_before is not None:
        query = query.where(InterpretationSession.heartbeat_at < heartbeat_before)
    crashed = list(await session.scalars(query.with_for_update().order_by(InterpretationSession.id)))
    await end_sessions(session, crashed, END_CRASHED, now or utcnow())
    return crashed


async def end_sessions(
    session: AsyncSession, rows: list[InterpretationSession], reason: str, ended_at: datetime
) -> None:
    """Mark the sessions ended and release their speaker leases."""
    for row in rows:
        row.status, row.ended_at, row.end_reason = SESSION_ENDED, ended_at, reason
    await release_session_leases(session, [row.id for row in rows])
    await session.flush()
