from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from sqlalchemy import text

from bot.db import Database, guilds
from bot.db.engine import create_engine
from bot.db.errors import DatabaseUnavailable
from tests.fakes import secrets


async def test_sqlite_has_foreign_keys_and_wal(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'new' / 'dir' / 'bot.db'}")
    try:
        async with db.engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (tmp_path / "new" / "dir" / "bot.db").is_file()
    finally:
        await db.close()


async def test_postgres_engine_pings_before_use():
    engine = create_engine("postgresql+asyncpg://u@127.0.0.1/d")
    try:
        assert engine.pool._pre_ping is True
    finally:
        await engine.dispose()


async def test_foreign_keys_are_enforced(db):
    from bot.db.models import GuildLanguage

    with pytest.raises(Exception, match=r"(?i)foreign key"):
        async with db.session() as s:
            s.add(GuildLanguage(guild_id=999, language="es", voice_channel_id=1))


async def test_session_rolls_back_on_error(db):
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            await guilds.update_guild_setting(s, 7, "source_language", "de")
            raise RuntimeError("abort the unit of work")
    async with db.session() as s:
        assert await guilds.get_guild_settings(s, 7) is None


async def test_concurrent_writers_queue_instead_of_failing(db):
    """Read-then-write units of work from many tasks at once (SQLite: no 'database is locked')."""

    async def bump(n: int) -> None:
        async with db.session() as s:
            settings = await guilds.get_or_create_guild_settings(s, 1)
            await asyncio.sleep(0)
            settings.auto_stop_empty_seconds = settings.auto_stop_empty_seconds + 1

    async with db.session() as s:
        start = (await guilds.get_or_create_guild_settings(s, 1)).auto_stop_empty_seconds
    await asyncio.gather(*(bump(n) for n in range(10)))
    async with db.session() as s:
        final = (await guilds.get_guild_settings(s, 1)).auto_stop_empty_seconds
    if db.backend == "sqlite":
        assert final == start + 10  # fully serialised
    else:
        assert start < final <= start + 10


async def test_connect_to_unreachable_server_is_a_clear_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+asyncpg://bot:{secrets.PALABRA_CLIENT_SECRET}@127.0.0.1:{port}/bot"
    with pytest.raises(DatabaseUnavailable) as caught:
        await Database.connect(url)
    message = str(caught.value)
    assert "DATABASE_URL" in message and f"127.0.0.1:{port}" in message
    assert secrets.PALABRA_CLIENT_SECRET not in message


async def test_repr_hides_the_password():
    db = Database(f"postgresql+asyncpg://bot:{secrets.PALABRA_CLIENT_SECRET}@127.0.0.1/bot")
    try:
        assert secrets.PALABRA_CLIENT_SECRET not in repr(db)
        assert db.backend == "postgresql"
    finally:
        await db.close()


async def test_a_sqlite_write_cut_short_by_a_cancellation_does_not_lock_out_the_next_write(tmp_path):
    """A cancelled task's transaction left its sqlite3 connection, write lock included, to the cyclic
    garbage collector: the next write (a shutdown's last one, say) waited out the 15 s busy timeout and
    failed. Cancelled at random moments of a busy writer, every next write goes through promptly."""
    import random

    rng = random.Random(11)
    loop = asyncio.get_running_loop()
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'cut.db'}") as db:
        async with db.session() as s:
            await s.execute(text("CREATE TABLE beat (id INTEGER PRIMARY KEY, n INTEGER)"))
            await s.execute(text("INSERT INTO beat VALUES (1, 0)"))

        async def writes_forever() -> None:
            while True:
                async with db.session() as s:
                    await s.execute(text("UPDATE beat SET n = n + 1"))
                    await s.execute(text("SELECT n FROM beat"))

        for attempt in range(30):
            writer = asyncio.create_task(writes_forever())
            await asyncio.sleep(rng.uniform(0.001, 0.02))
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            started = loop.time()
            async with db.session() as s:
                await s.execute(text("UPDATE beat SET n = 0"))
            assert loop.time() - started < 3.0, f"write {attempt} after a cut one waited on the lock"
