"""Crash recovery at start-up: close what a crashed process left behind.

Sessions another process left live are ended (their speaker leases released) through the session
repository; their Palabra sessions are deleted, and so is every other Palabra session this bot created
recently that no live session uses. What remains to do, resuming where people are still listening, is
the manager's (it is an ordinary start).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.db import sessions as db_sessions
from bot.db.types import utcnow

if TYPE_CHECKING:
    from bot.db.engine import Database
    from bot.db.models import InterpretationSession
    from bot.interpretation.palabra_sessions import PalabraSessions

log = logging.getLogger(__name__)

UNTRACKED_LOOKBACK = timedelta(days=2)  # Palabra sessions expire long before this


@dataclass(frozen=True)
class CrashedSession:
    """A crashed session's fields, read inside its unit of work."""

    id: int
    source_channel_id: int
    source_language: str
    target_languages: tuple[str, ...]
    started_by_user_id: int | None
    palabra_session_ids: tuple[str, ...]

    @classmethod
    def of(cls, row: InterpretationSession) -> CrashedSession:
        return cls(
            row.id,
            row.source_channel_id,
            row.source_language,
            tuple(row.target_languages or ()),
            row.started_by_user_id,
            tuple(row.palabra_session_ids or ()),
        )


class Recovery:
    def __init__(self, database: Database, palabra: PalabraSessions, instance_id: str, *, lists_sessions: bool) -> None:
        """`lists_sessions`: the credentials have a session storage to list (API-key streams do not)."""
        self.database, self.palabra, self.instance_id = database, palabra, instance_id
        self.lists_sessions = lists_sessions

    async def close_crashed(self) -> list[CrashedSession]:
        """End every live session owned by another process and delete its Palabra sessions."""
        async with self.database.session() as s:
            rows = await db_sessions.mark_crashed_sessions(s, except_instance_id=self.instance_id)
            crashed = [CrashedSession.of(row) for row in rows]
        for row in crashed:
            log.warning(
                "session %s (channel %s) was left active by a crashed process; closing it",
                row.id,
                row.source_channel_id,
            )
            for palabra_id in row.palabra_session_ids:
                await self.palabra.delete(palabra_id)
        return crashed

    async def delete_untracked(self, tracked: Iterable[str]) -> None:
        """Palabra sessions this bot created (their ids are in the database) that no live session uses."""
        if not self.lists_sessions:
            return
        async with self.database.session() as s:
            ours = await db_sessions.palabra_session_ids_since(s, utcnow() - UNTRACKED_LOOKBACK)
        await self.palabra.delete_untracked(ours, tracked)
