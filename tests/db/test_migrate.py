from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from bot.db import Database, upgrade_to_head
from bot.db.errors import DatabaseError, DatabaseUnavailable
from bot.db.migrate import alembic_config, current_revision, head_revision, migrations_directory
from bot.db.models import Base
from tests.fakes import secrets

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "guild_settings",
    "guild_languages",
    "interpretation_sessions",
    "speaker_leases",
    "transcript_lines",
    "privacy_optouts",
    "broadcasts",
    "instances",
    "stored_secrets",
}


def run_migrate(url: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if url is not None:
        env["DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "bot", "migrate"],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_upgrade_creates_every_table_and_is_idempotent(isolated_url):
    head = head_revision()
    assert head is not None
    first = await upgrade_to_head(isolated_url)
    assert (first.before, first.after, first.head, first.changed) == (None, head, head, True)
    second = await upgrade_to_head(isolated_url)
    assert (second.before, second.after, second.changed) == (head, head, False)
    assert "up to date" in second.describe()
    assert await current_revision(isolated_url) == head
    async with Database(isolated_url) as db, db.engine.connect() as connection:
        tables = set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    assert TABLES | {"alembic_version"} == tables


async def test_concurrent_upgrades_migrate_once(isolated_url):
    results = await asyncio.gather(*(upgrade_to_head(isolated_url) for _ in range(3)))
    assert sorted(result.changed for result in results) == [False, False, True]
    assert {result.after for result in results} == {head_revision()}


async def test_concurrent_first_migrations_of_fresh_sqlite_files_never_hit_a_lock(tmp_path):
    # A new file is switched to WAL by whichever connection comes first, which takes an exclusive lock
    # SQLite does not wait for; repeated on fresh files so that losing that race shows on almost every run.
    for attempt in range(30):
        url = f"sqlite+aiosqlite:///{tmp_path / f'fresh-{attempt}.db'}"
        results = await asyncio.gather(*(upgrade_to_head(url) for _ in range(3)))
        assert sorted(result.changed for result in results) == [False, False, True]


async def test_migrated_schema_matches_the_models(isolated_url):
    await upgrade_to_head(isolated_url)

    def differences(sync_connection):
        context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with Database(isolated_url) as db, db.engine.connect() as connection:
        diff = await connection.run_sync(differences)
    assert diff == []


async def test_downgrade_to_base_then_upgrade_again(isolated_url):
    await upgrade_to_head(isolated_url)
    async with Database(isolated_url) as db:
        async with db.engine.begin() as connection:

            def downgrade(sync_connection):
                config = alembic_config()
                config.attributes["connection"] = sync_connection
                command.downgrade(config, "base")

            await connection.run_sync(downgrade)
        async with db.engine.connect() as connection:
            tables = set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    assert tables & TABLES == set()
    assert (await upgrade_to_head(isolated_url)).before is None


def test_migrations_are_found_next_to_the_source():
    assert migrations_directory() == REPO_ROOT / "migrations"


@pytest.mark.parametrize("where", ["repo root", "elsewhere"])
def test_cli_migrate_twice(isolated_url, tmp_path, where):
    cwd = REPO_ROOT if where == "repo root" else tmp_path
    head = head_revision()
    first = run_migrate(isolated_url, cwd)
    assert first.returncode == 0, first.stderr
    assert f"at empty, head is {head}" in first.stdout
    assert f"empty -> {head}" in first.stdout
    second = run_migrate(isolated_url, cwd)
    assert second.returncode == 0, second.stderr
    assert f"up to date (revision {head})" in second.stdout


def test_cli_default_database_is_created_under_data(tmp_path):
    result = run_migrate(None, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "bot.db").is_file()
    assert "sqlite+aiosqlite:///data/bot.db" in result.stdout


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_cli_unreachable_database_names_the_setting_without_the_password(tmp_path):
    password = secrets.PALABRA_CLIENT_SECRET
    url = f"postgresql+asyncpg://bot:{password}@127.0.0.1:{_closed_port()}/bot"
    result = run_migrate(url, tmp_path)
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr and "127.0.0.1" in result.stderr
    assert password not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [("mysql://user@localhost/db", "unsupported database"), ("not a url", "not a valid database URL")],
)
def test_cli_bad_url(tmp_path, url, message):
    result = run_migrate(url, tmp_path)
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr and message in result.stderr


async def test_missing_postgres_database_is_a_clear_error(database_url):
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL only: SQLite creates missing files")
    missing = url.set(database="no_such_database_h6", password=secrets.PALABRA_CLIENT_SECRET)
    with pytest.raises(DatabaseUnavailable) as caught:
        await upgrade_to_head(missing.render_as_string(hide_password=False))
    message = str(caught.value)
    assert "DATABASE_URL" in message and "no_such_database_h6" in message
    assert secrets.PALABRA_CLIENT_SECRET not in message and "***" in message


async def test_database_from_a_newer_version_is_refused(isolated_url):
    await upgrade_to_head(isolated_url)
    async with Database(isolated_url) as db, db.session() as s:
        await s.execute(text("UPDATE alembic_version SET version_num = 'future'"))
    with pytest.raises(DatabaseError, match="newer version"):
        await upgrade_to_head(isolated_url)


def test_installed_package_uses_the_migrations_in_the_working_directory(tmp_path, monkeypatch):
    """As in the container image: the package lives in site-packages, the scripts in the working directory."""
    import bot.db.migrate as migrate_module

    site_packages = tmp_path / "venv" / "lib" / "site-packages"
    monkeypatch.setattr(migrate_module, "__file__", str(site_packages / "bot" / "db" / "migrate.py"))
    app = tmp_path / "app"
    (app / "migrations").mkdir(parents=True)
    (app / "migrations" / "env.py").write_text("")
    monkeypatch.chdir(app)
    assert migrations_directory() == app / "migrations"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatabaseError, match="migration scripts were not found"):
        migrations_directory()


INSTANCES_REVISION = "shard_instances_c11"


def _alembic(sync_connection, action: str, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = sync_connection
    getattr(command, action)(config, revision)


async def _in_use_before(url: str, revision: str) -> str:
    """The database as the revision before `revision` left it, with a session left live by a bot of that
    version; returns that previous revision."""
    from alembic.script import ScriptDirectory

    before = ScriptDirectory.from_config(alembic_config()).get_revision(revision).down_revision
    assert isinstance(before, str)
    async with Database(url) as db:
        async with db.engine.begin() as connection:
            await connection.run_sync(_alembic, "upgrade", before)
        async with db.session() as s:
            await s.execute(
                text(
                    "INSERT INTO interpretation_sessions (guild_id, source_channel_id, source_language, "
                    "target_languages, status, started_at, palabra_session_ids, instance_id, heartbeat_at) "
                    "VALUES (1, 2, 'en', '[]', 'active', CURRENT_TIMESTAMP, '[]', 'old:1', CURRENT_TIMESTAMP)"
                )
            )
    return before


async def test_the_instances_revision_upgrades_a_database_in_use_and_downgrades_alone(isolated_url):

    before = await _in_use_before(isolated_url, INSTANCES_REVISION)
    result = await upgrade_to_head(isolated_url)
    assert result.before == before and result.after == head_revision()
    async with Database(isolated_url) as db:
        async with db.session() as s:
            assert (await s.execute(text("SELECT instance_id FROM interpretation_sessions"))).scalar_one() == "old:1"
            assert (await s.execute(text("SELECT count(*) FROM instances"))).scalar_one() == 0
        async with db.engine.begin() as connection:
            await connection.run_sync(_alembic, "downgrade", before)
        async with db.engine.connect() as connection:
            tables = set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    assert TABLES - tables == {"instances"}  # only its own table goes


CONTINUES_REVISION = "session_continues_d4"


async def test_the_continues_revision_gives_sessions_of_the_previous_version_an_empty_lineage(isolated_url):

    from bot.db.models import InterpretationSession
    from bot.interpretation.recovery import CrashedSession

    before = await _in_use_before(isolated_url, CONTINUES_REVISION)
    assert (await upgrade_to_head(isolated_url)).before == before
    async with Database(isolated_url) as db, db.session() as s:
        [row] = (await s.scalars(select(InterpretationSession))).all()
        crashed = CrashedSession.of(row)
    assert row.continues_session_ids == [] and crashed.lineage == (row.id,)
