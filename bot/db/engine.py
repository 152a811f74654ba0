"""Engines and sessions for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from bot.db.errors import DatabaseUnavailable
from bot.db.urls import ensure_sqlite_directory, parse_database_url, redact_url

# How long a SQLite connection waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 15_000
LEAKED_CONNECTION_GC_DELAY_S = 0.25
POSTGRES_CONNECT_TIMEOUT_S = 10


def create_engine(url: str | URL, **engine_options: Any) -> AsyncEngine:
    """An async engine for DATABASE_URL.

    SQLite: the file's directory is created; foreign keys and WAL are on; every transaction starts
    with BEGIN IMMEDIATE, so concurrent writers queue on the busy timeout instead of failing with
    "database is locked" when a read turns into a write. PostgreSQL: pooled connections are
    pre-pinged so a restarted server does not surface as an error on the next query.
    """
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        ensure_sqlite_directory(parsed)
        engine = _create_async_engine(parsed, **engine_options)
        _configure_sqlite(engine)
        return engine
    engine_options.setdefault("pool_pre_ping", True)
    # Fail in seconds, not asyncpg's default minute, when the server is unreachable.
    engine_options.setdefault("connect_args", {}).setdefault("timeout", POSTGRES_CONNECT_TIMEOUT_S)
    return _create_async_engine(parsed, **engine_options)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN (the driver's implicit BEGIN breaks SAVEPOINT).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            _use_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine.sync_engine.pool, "invalidate")
    def _on_invalidate(_dbapi_connection: Any, _record: Any, _exception: BaseException | None) -> None:
        # A transaction cut short by a cancellation (SQLAlchemy 2.1 + aiosqlite 0.22) leaves its sqlite3
        # connection, still holding the file's write lock, in a reference cycle: every other write would
        # wait out the busy timeout and fail until the cyclic collector happens to run. Run it once the
        # invalidation's own clean-up is done (at once is too early: measured).
        with contextlib.suppress(RuntimeError):  # no running loop: a synchronous disposal
            asyncio.get_running_loop().call_later(LEAKED_CONNECTION_GC_DELAY_S, gc.collect)


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL (it stays so). Switching takes an exclusive lock and SQLite does not wait
    on the busy timeout for it, so connections opening a new file at once retry within that timeout."""
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.fetchall()
            return
        except Exception as exc:  # the driver's OperationalError, whichever adapter wraps it
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (no lazy reload in async code)."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def check_connection(engine: AsyncEngine) -> None:
    """Connect once; an unreachable server, wrong credentials or a missing database become a
    `DatabaseUnavailable` naming DATABASE_URL (password redacted)."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (OperationalError, DBAPIError, OSError) as exc:
        raise unavailable(engine.url, exc) from None


def unavailable(url: URL, exc: BaseException) -> DatabaseUnavailable:
    """A clear, password-free error for a database we cannot use."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    detail = lines[0] if lines else type(original).__name__
    if url.password:
        # Drivers do not echo passwords, but the message must not depend on that.
        detail = detail.replace(str(url.password), "***")
    return DatabaseUnavailable(f"cannot use the database at DATABASE_URL={redact_url(url)}: {detail}")


class Database:
    """The engine and session factory of one database; what the rest of the bot holds on to.

    Use `async with db.session() as s:` for one unit of work: it commits when the block ends and
    rolls back on error. Keep units short (no network calls inside): on SQLite every unit holds the
    write lock while it runs.
    """

    def __init__(self, url: str | URL, **engine_options: Any) -> None:
        self.engine = create_engine(url, **engine_options)
        self.sessions = session_factory(self.engine)

    @property
    def url(self) -> URL:
        return self.engine.url

    @property
    def backend(self) -> str:
        return self.engine.url.get_backend_name()

    @classmethod
    async def connect(cls, url: str | URL, **engine_options: Any) -> Database:
        """A Database whose connection was checked (raises `DatabaseUnavailable` if not usable)."""
        database = cls(url, **engine_options)
        try:
            await check_connection(database.engine)
        except BaseException:
            await database.close()
            raise
        return database

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions.begin() as session:
            yield session

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Database({redact_url(self.url)!r})"
