"""Suite-wide fixtures: the secret-in-logs guard and the database URLs (SQLite always, PostgreSQL
when reachable; REQUIRE_POSTGRES=1, as in CI, turns an unreachable server into a failure).

`realism_seed` runs a test under three seeds of the peers' realistic mode (the emulator's and the fake
Discord's `realism`). `database_url` picks the backend; `isolated_url` gives each test a database of its
own (on PostgreSQL a uniquely named one, dropped afterwards, so parallel runs never collide); `db` is a
migrated `Database`."""

from __future__ import annotations

import io
import logging
import os
import socket
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db import Database, upgrade_to_head
from bot.logs import install_redaction
from tests.fakes import secrets

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def no_secret_in_logs():
    """Every log line any test produces goes through the product's redaction; none may hold a secret."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    install_redaction(handler)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for noisy in ("websockets", "aiohttp.access", "asyncio", "hpack"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    output = stream.getvalue()
    leaked = [s[:6] + "…" for s in secrets.ALL if s in output]
    assert not leaked, f"secrets leaked into logs: {leaked}"


REALISM_SEEDS = (1, 2, 3)


@pytest.fixture(params=REALISM_SEEDS, ids=lambda seed: f"realism{seed}")
def realism_seed(request) -> int:
    """A seed for the adversarial peers: each test using it runs once per seed."""
    return request.param


def _postgres_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    if not _postgres_reachable():
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required (REQUIRE_POSTGRES=1) but 127.0.0.1:5432 is unreachable")
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    return POSTGRES_URL


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
