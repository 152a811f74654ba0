"""A real database whose connection can be cut: `FlakyDatabase` wraps a migrated `Database` and, while
it is down (or for chosen units of work), fails `session()` the way an unreachable server does
(SQLAlchemy's OperationalError around a refused connection). Everything else is the real database.
`active_session_rows(url)` reads the sessions a bot process left active, from outside the process;
`start_row(s, ...)` records a session as a start does, for tests that need one to exist."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import sessions as db_sessions
from bot.db.engine import Database
from bot.db.models import InterpretationSession


class FlakyDatabase(Database):
    def __init__(self, real: Database) -> None:  # shares the real engine; closing it closes the real one
        self.engine, self.sessions = real.engine, real.sessions
        self.down = False
        self.failing_units: set[int] = set()  # 1-based numbers of units of work to fail
        self.units = 0
        self.refused = 0

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        self.units += 1
        if self.down or self.units in self.failing_units:
            self.refused += 1
            raise OperationalError("connect", {}, ConnectionRefusedError(111, "Connection refused"))
        async with super().session() as session:
            yield session


async def active_session_rows(url: str) -> list[InterpretationSession]:
    database = Database(url)
    try:
        async with database.session() as s:
            return list(await db_sessions.list_active_sessions(s))
    finally:
        await database.close()


async def start_row(
    s: AsyncSession,
    *,
    guild: int,
    channel: int,
    instance: str = "host:1",
    targets: Iterable[str] = ("es",),
    text_channel_id: int | None = None,
    started_by_user_id: int | None = None,
) -> InterpretationSession:
    """A session row as a start records it, English to `targets`."""
    return await db_sessions.start_session(
        s,
        guild_id=guild,
        source_channel_id=channel,
        source_language="en",
        target_languages=list(targets),
        instance_id=instance,
        text_channel_id=text_channel_id,
        started_by_user_id=started_by_user_id,
    )
