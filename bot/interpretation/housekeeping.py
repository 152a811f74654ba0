"""Background upkeep while the bot runs: the sessions' heartbeat (so another instance can tell this one
is alive) and the transcript retention purge (the consent notice's promise)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from bot.db import sessions as db_sessions
from bot.db import transcripts as db_transcripts
from bot.tasks import Steps

if TYPE_CHECKING:
    from bot.db.engine import Database

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 30.0
PURGE_INTERVAL_S = 3600.0  # transcript retention is in days: hourly is prompt enough


class Housekeeping:
    def __init__(
        self,
        database: Database,
        instance_id: str,
        *,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
        purge_interval_s: float = PURGE_INTERVAL_S,
    ) -> None:
        self.database, self.instance_id = database, instance_id
        self.heartbeat_interval_s, self.purge_interval_s = heartbeat_interval_s, purge_interval_s
        self._task: asyncio.Task[None] | None = None
        self._steps = Steps()  # close() lets a heartbeat or purge under way finish

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="session-heartbeat")

    async def close(self) -> None:
        task, self._task = self._task, None
        await self._steps.stop(task)

    async def purge_expired_transcripts(self) -> int:
        """Lines older than their guild's retention are deleted; a failure is logged, not raised."""
        try:
            async with self.database.session() as s:
                deleted = await db_transcripts.purge_expired_transcripts(s)
        except Exception:
            log.exception("purging expired transcript lines failed")
            return 0
        if deleted:
            log.info("deleted %d transcript lines past their retention", deleted)
        return deleted

    async def heartbeat(self) -> None:
        try:
            async with self.database.session() as s:
                await db_sessions.heartbeat(s, self.instance_id)
        except Exception:
            log.exception("session heartbeat failed")

    async def _run(self) -> None:
        last_purge = time.monotonic()
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            with self._steps.step():
                await self.heartbeat()
                if time.monotonic() - last_purge >= self.purge_interval_s:
                    last_purge = time.monotonic()
                    await self.purge_expired_transcripts()
