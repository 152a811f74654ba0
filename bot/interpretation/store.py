"""Transcript lines to the database, from a task of their own, never lost to a database outage.

The live session hands over a `FinalLine` when Palabra validates a transcript and a `Translation` when
a translation arrives (in any order: the repository merges them). The writer keeps them in order and
retries an entry while the database is unreachable (with a capped backoff), so a database that comes
back writes every line; a slow commit never holds up the translated audio behind it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from bot.db import transcripts as db_transcripts
from bot.db.errors import DatabaseUnavailable
from bot.tasks import cancel_and_wait

if TYPE_CHECKING:
    from bot.db.engine import Database

log = logging.getLogger(__name__)

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 5.0


class EntryKind(enum.Enum):
    FINAL = "final"  # a validated transcript (with what is known of its speaker and times)
    TRANSLATION = "translation"  # one language's translation of a transcript


@dataclass(frozen=True)
class FinalLine:
    transcription_id: str
    text: str
    speaker_user_id: int | None = None
    language: str | None = None
    translations: Mapping[str, str] = field(default_factory=dict)
    start: float | None = None
    end: float | None = None
    kind: ClassVar[EntryKind] = EntryKind.FINAL


@dataclass(frozen=True)
class Translation:
    transcription_id: str
    language: str
    text: str
    kind: ClassVar[EntryKind] = EntryKind.TRANSLATION


StoreEntry = FinalLine | Translation


def is_transient(exc: BaseException) -> bool:
    """The database is unreachable or dropped the connection (worth retrying), as opposed to a
    statement it rejected (retrying would block every line behind it)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError, DatabaseUnavailable, OSError, TimeoutError))


class TranscriptStore:
    """One session's writer. `add` never blocks; `close` waits (bounded) until everything is written."""

    def __init__(
        self,
        database: Database,
        session_id: int,
        *,
        on_error: Callable[[], None] | None = None,
        first_retry_s: float = FIRST_RETRY_S,
        max_retry_s: float = MAX_RETRY_S,
    ) -> None:
        self.database, self.session_id = database, session_id
        self.on_error = on_error
        self.first_retry_s, self.max_retry_s = first_retry_s, max_retry_s
        self.written = 0
        self.retries = 0
        self._queue: asyncio.Queue[StoreEntry | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._pending = 0

    @property
    def pending(self) -> int:
        """Entries handed over and not yet written (or given up on)."""
        return self._pending

    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._run(), name=f"session-{self.session_id}-lines")

    def add(self, entry: StoreEntry) -> None:
        self._pending += 1
        self._queue.put_nowait(entry)

    async def close(self, timeout: float) -> None:
        """Write what is queued, waiting at most `timeout` s (a database still down then loses the rest,
        which is logged with the count)."""
        if self._writer is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), timeout=timeout)
        except (TimeoutError, asyncio.CancelledError):
            await cancel_and_wait(self._writer)
        if self._pending:
            log.error(
                "session %s: %d transcript entries could not be stored (the database stayed unreachable)",
                self.session_id,
                self._pending,
            )
            self._count_error()

    async def abort(self) -> None:
        await cancel_and_wait(self._writer)

    async def _run(self) -> None:
        while (entry := await self._queue.get()) is not None:
            await self._store_until_written(entry)
            self._pending -= 1

    async def _store_until_written(self, entry: StoreEntry) -> None:
        delay = self.first_retry_s
        while True:
            try:
                await self._write(entry)
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("session %s: storing transcript entry %s failed", self.session_id, entry)
                    self._count_error()
                    return
                if self.retries == 0 or delay == self.first_retry_s:
                    log.warning(
                        "session %s: the database is unreachable (%s); transcript lines wait for it",
                        self.session_id,
                        type(exc).__name__,
                    )
                self.retries += 1
                self._count_error()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_s)
                continue
            self.written += 1
            return

    async def _write(self, entry: StoreEntry) -> None:
        async with self.database.session() as s:
            if isinstance(entry, FinalLine):
                await db_transcripts.add_transcript_line(
                    s,
                    session_id=self.session_id,
                    transcription_id=entry.transcription_id,
                    source_text=entry.text,
                    speaker_user_id=entry.speaker_user_id,
                    source_language=entry.language,
                    translations=dict(entry.translations),
                    start_time=entry.start,
                    end_time=entry.end,
                )
            else:
                await db_transcripts.add_translation(
                    s,
                    session_id=self.session_id,
                    transcription_id=entry.transcription_id,
                    language=entry.language,
                    text=entry.text,
                )

    def _count_error(self) -> None:
        if self.on_error is not None:
            self.on_error()
