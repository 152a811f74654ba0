"""Database fixtures: every test gets a database of its own.

SQLite: a file in the test's tmp directory. PostgreSQL: the shared `test` database is only used to
CREATE a uniquely named database (dropped afterwards), so parallel runs never see each other's rows.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db import Database, upgrade_to_head


async def _admin(sql: str, server_url: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture
async def isolated_url(database_url):
    """An empty database of this test's own, on the backend `database_url` selects."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        yield database_url
        return
    name = f"test_{uuid.uuid4().hex[:16]}"
    await _admin(f'CREATE DATABASE "{name}"', database_url)
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', database_url)


@pytest.fixture
async def db(isolated_url):
    """A migrated database."""
    await upgrade_to_head(isolated_url)
    database = Database(isolated_url)
    try:
        yield database
    finally:
        await database.close()
