"""The bot's own bookkeeping of Palabra sessions: each one it creates is recorded in the database before
the stream uses it, deleted when its interpretation session ends, and, after a crash, found again and
deleted by recovery (so the account never fills up with leaked sessions)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from bot.db import sessions as db_sessions
from bot.palabra.errors import NotFoundError, PalabraAPIError, PalabraError

if TYPE_CHECKING:
    from bot.db.engine import Database
    from bot.metrics import Metrics
    from bot.palabra.rest import PalabraRest, StreamingSessionInfo

log = logging.getLogger(__name__)


class RecordingRest:
    """The Palabra REST client as StreamingSession sees it: every session it creates is recorded in the
    database before the stream uses it (and deleted again if recording fails)."""

    def __init__(self, rest: PalabraRest, record: Callable[[str], Awaitable[None]]) -> None:
        self.rest, self.record = rest, record
        self.created: list[str] = []

    async def create_session(self, intent: str = "api") -> StreamingSessionInfo:
        info = await self.rest.create_session(intent)
        if info.id is None:  # nothing to record, so nothing recovery could delete: refuse it
            raise PalabraAPIError("Palabra created a streaming session but sent no id for it")
        try:
            await self.record(info.id)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.rest.delete_session(info.id)
            raise
        self.created.append(info.id)
        return info

    async def delete_session(self, session_id: str) -> None:
        await self.rest.delete_session(session_id)
        if session_id in self.created:  # the stream deleted it itself (a dropped or failed connection)
            self.created.remove(session_id)

    async def aclose(self) -> None:
        """The shared client belongs to the application."""


class PalabraSessions:
    """Creates recording clients for sessions and deletes what they leave behind."""

    def __init__(self, rest: PalabraRest | None, database: Database, metrics: Metrics) -> None:
        self.rest, self.database, self.metrics = rest, database, metrics

    def recording(self, session_id: int) -> RecordingRest:
        assert self.rest is not None, "the manager checks for Palabra before it starts a session"
        return RecordingRest(self.rest, lambda palabra_id: self._record(session_id, palabra_id))

    async def _record(self, session_id: int, palabra_id: str) -> None:
        async with self.database.session() as s:
            await db_sessions.add_palabra_session_id(s, session_id, palabra_id)

    async def delete_created(self, rest: RecordingRest) -> None:
        for palabra_id in rest.created:
            await self.delete(palabra_id)
        rest.created.clear()

    async def delete(self, palabra_id: str) -> None:
        """Delete one Palabra session; a failure is logged (it expires by itself), never raised."""
        if self.rest is None:
            return
        try:
            await self.rest.delete_session(palabra_id)
            log.info("Palabra session %s deleted", palabra_id)
        except NotFoundError:
            log.debug("Palabra session %s was already gone", palabra_id)
        except PalabraError as exc:
            log.warning("could not delete Palabra session %s (it expires by itself): %s", palabra_id, exc)
            self.metrics.errors.labels("palabra_delete").inc()

    async def delete_untracked(self, ours: set[str], tracked: Iterable[str]) -> None:
        """Of the sessions Palabra lists, delete those this bot created (`ours`) that nothing uses."""
        if self.rest is None:
            return
        in_use = set(tracked)
        try:
            listed = [summary.id async for summary in self.rest.list_sessions()]
        except PalabraError as exc:
            log.warning("could not list Palabra sessions to clean up: %s", exc)
            return
        for palabra_id in listed:
            if palabra_id in ours and palabra_id not in in_use:
                log.warning("Palabra session %s is ours but untracked; deleting it", palabra_id)
                await self.delete(palabra_id)


def palabra_problem(exc: BaseException) -> str | None:
    """What users may know about a failed Palabra start: each Palabra error's own `user_message` (credentials
    refused, out of balance, parallel-session limit, outage, rejected language…), never the details."""
    return exc.user_message if isinstance(exc, PalabraError) else None
