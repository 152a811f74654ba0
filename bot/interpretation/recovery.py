"""Crash recovery at start-up: close what a crashed process left on this process's shards.

Sessions of this process's shards' guilds that a dead process left live are ended (their speaker leases
released): bot.ownership takes them over before the Discord clients connect and hands them in, or, for a
manager used on its own, `close_crashed` takes over every one this process is not running. Sessions of
other shards are never touched: their process may be alive. Their Palabra sessions are deleted, and so is
every other Palabra session this bot created recently whose session has ended. What remains to do,
resuming where people are still listening, is the manager's (it is an ordinary start).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.db import instances as db_instances
from bot.db import sessions as db_sessions
from bot.db.instances import ShardClaim
from bot.db.types import utcnow

if TYPE_CHECKING:
    from bot.db.engine import Database
    from bot.db.models import InterpretationSession
    from bot.interpretation.palabra_sessions import PalabraSessions
    from bot.shards import ShardPlan

log = logging.getLogger(__name__)

UNTRACKED_LOOKBACK = timedelta(days=2)  # Palabra sessions expire long before this
MAX_LINEAGE = 20  # sessions a resumed one remembers continuing (links older than that many restarts die)


@dataclass(frozen=True)
class CrashedSession:
    """A crashed session's fields, read inside its unit of work."""

    id: int
    source_channel_id: int
    source_language: str
    target_languages: tuple[str, ...]
    started_by_user_id: int | None
    palabra_session_ids: tuple[str, ...]
    guild_id: int = 0
    previous_instance_id: str = ""
    continues: tuple[int, ...] = ()  # the sessions this one itself continued

    @property
    def lineage(self) -> tuple[int, ...]:
        """What a session resuming this one continues: this one, then what it continued (bounded)."""
        return (self.id, *self.continues)[:MAX_LINEAGE]

    @classmethod
    def of(cls, row: InterpretationSession) -> CrashedSession:
        return cls(
            row.id,
            row.source_channel_id,
            row.source_language,
            tuple(row.target_languages or ()),
            row.started_by_user_id,
            tuple(row.palabra_session_ids or ()),
            row.guild_id,
            row.instance_id,
            tuple(row.continues_session_ids or ()),
        )


class Recovery:
    def __init__(
        self,
        database: Database,
        palabra: PalabraSessions,
        instance_id: str,
        shards: ShardPlan,
        *,
        lists_sessions: bool,
    ) -> None:
        """`lists_sessions`: the credentials have a session storage to list (API-key streams do not)."""
        self.database, self.palabra, self.instance_id = database, palabra, instance_id
        self.claim = ShardClaim(instance_id, shards.ids, shards.count)
        self.lists_sessions = lists_sessions

    async def close_crashed(self, taken: Sequence[CrashedSession] | None = None) -> list[CrashedSession]:
        """Delete the Palabra sessions of the sessions dead processes left on our shards.

        `taken`: what bot.ownership already took over at start-up. None takes over here every live
        session of our shards that this process (its instance id) does not run.
        """
        if taken is None:
            async with self.database.session() as s:
                rows = await db_instances.take_over_sessions(s, self.claim, alive=[self.instance_id])
                taken = [CrashedSession.of(row) for row in rows]
        for row in taken:
            log.warning(
                "session %s (channel %s) was left live by %s, which stopped without ending it; closing it",
                row.id,
                row.source_channel_id,
                row.previous_instance_id or "a crashed process",
            )
            for palabra_id in row.palabra_session_ids:
                await self.palabra.delete(palabra_id)
        return list(taken)

    async def delete_untracked(self, tracked: Iterable[str]) -> None:
        """Palabra sessions this bot created (their ids are in the database) whose session has ended.

        Live sessions' Palabra sessions are in use, by this process or by another on other shards.
        """
        if not self.lists_sessions:
            return
        async with self.database.session() as s:
            ours = await db_sessions.palabra_session_ids_since(s, utcnow() - UNTRACKED_LOOKBACK, ended_only=True)
        await self.palabra.delete_untracked(ours, tracked)
