"""`python -m bot migrate`: bring the database schema up to date (Alembic upgrade to head).

Alembic is configured in code, so no alembic.ini is needed and the command works from any directory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.db.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

MIGRATIONS_DIRECTORY_NAME = "migrations"
# Any constant shared by every process of the bot; it names the PostgreSQL advisory lock.
MIGRATION_LOCK_KEY = 0x50414C4142  # "PALAB"


@dataclass(frozen=True)
class MigrationResult:
    url: str  # redacted
    before: str | None  # None: the database had no schema yet
    after: str | None
    head: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def describe(self) -> str:
        before = self.before or "empty"
        if not self.changed:
            return f"database {self._where()} is up to date (revision {self.after})"
        return f"database {self._where()} migrated: {before} -> {self.after}"

    def _where(self) -> str:
        """The URL, and for a SQLite file given relative to the working directory, the file it is."""
        from sqlalchemy.engine import make_url

        from bot.db.urls import sqlite_file

        path = sqlite_file(make_url(self.url))
        return f"{self.url} (the file {path.resolve()})" if path is not None and not path.is_absolute() else self.url


def migrations_directory() -> Path:
    """The Alembic scripts: next to the source tree (a checkout or editable install), else in the
    working directory (the container image copies them to /app/migrations)."""
    candidates = [
        Path(__file__).resolve().parents[2] / MIGRATIONS_DIRECTORY_NAME,
        Path.cwd() / MIGRATIONS_DIRECTORY_NAME,
    ]
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    tried = ", ".join(str(path) for path in candidates)
    raise DatabaseError(f"the migration scripts were not found (looked in {tried})")


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    # ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("script_location", str(migrations_directory()).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(url: str) -> str | None:
    """The database's revision, or None when it has no schema yet."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.pool import NullPool

    from bot.db.engine import create_engine, unavailable

    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    except (OperationalError, DBAPIError, OSError) as exc:
        raise unavailable(engine.url, exc) from None
    finally:
        await engine.dispose()


async def upgrade_to_head(url: str) -> MigrationResult:
    """Upgrade the database at `url` to the newest revision. Idempotent; safe to call on every start.

    Raises DatabaseUnavailable (a ConfigurationError naming DATABASE_URL, password redacted) when the
    database cannot be reached, DatabaseError when the migration itself fails.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.pool import NullPool

    from bot.db.engine import check_connection, create_engine, unavailable
    from bot.db.urls import redact_url

    config = alembic_config()
    engine = create_engine(url, poolclass=NullPool)
    redacted = redact_url(engine.url)
    revisions: dict[str, str | None] = {}

    def upgrade(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            # Two processes starting at once migrate one after the other (SQLite: BEGIN IMMEDIATE does it).
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        revisions["before"] = MigrationContext.configure(connection).get_current_revision()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        revisions["after"] = MigrationContext.configure(connection).get_current_revision()

    try:
        await check_connection(engine)  # unreachable / no such database: DatabaseUnavailable
        async with engine.begin() as connection:
            await connection.run_sync(upgrade)
    except CommandError as exc:
        raise DatabaseError(
            f"cannot migrate the database at DATABASE_URL={redacted}: {exc} "
            "(was it created by a newer version of the bot?)"
        ) from None
    except (OperationalError, OSError) as exc:
        raise unavailable(engine.url, exc) from None
    except DBAPIError as exc:
        raise DatabaseError(f"migrating the database at DATABASE_URL={redacted} failed: {exc.orig}") from None
    finally:
        await engine.dispose()
    result = MigrationResult(redacted, revisions.get("before"), revisions.get("after"), head_revision())
    log.info("%s", result.describe())
    return result


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="database to migrate (default: DATABASE_URL, or sqlite+aiosqlite:///data/bot.db)",
    )


def main(args: argparse.Namespace) -> int:
    from bot.db.urls import redact_url
    from bot.settings import load_settings

    url = args.database_url or load_settings().database_url
    before = asyncio.run(current_revision(url))
    print(f"database {redact_url(url)}: at {before or 'empty'}, head is {head_revision()}", flush=True)
    result = asyncio.run(upgrade_to_head(url))
    print(result.describe(), flush=True)
    return 0
