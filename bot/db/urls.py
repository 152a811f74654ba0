"""DATABASE_URL parsing: map plain driver names to the async drivers we ship, and redact passwords."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bot.db.errors import DatabaseUnavailable
from bot.logs import register_secret

# Backends the project supports, keyed by the URL's backend name, with the async driver each needs.
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
ACCEPTED = "sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user:password@host:port/dbname"


def redact_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ***, safe for logs and error messages."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        return "<unparseable URL>"
    return parsed.render_as_string(hide_password=True)


def parse_database_url(url: str | URL) -> URL:
    """Validate DATABASE_URL and return it with the async driver the backend needs.

    `postgres://`, `postgresql://` and `sqlite:///` are accepted and mapped to asyncpg / aiosqlite.
    """
    try:
        parsed = url if isinstance(url, URL) else make_url(url.strip())
    except ArgumentError:
        raise DatabaseUnavailable(f"DATABASE_URL is not a valid database URL; expected {ACCEPTED}") from None
    if parsed.password:
        # Every URL the bot connects with passes here: driver and migration errors that quote the
        # password are redacted wherever they end up.
        register_secret(str(parsed.password))
    backend = "postgresql" if parsed.get_backend_name() == "postgres" else parsed.get_backend_name()
    driver = ASYNC_DRIVERS.get(backend)
    if driver is None:
        raise DatabaseUnavailable(
            f"DATABASE_URL {redact_url(parsed)}: unsupported database {backend!r}; expected {ACCEPTED}"
        )
    if "+" in parsed.drivername and parsed.get_driver_name() != driver:
        raise DatabaseUnavailable(
            f"DATABASE_URL {redact_url(parsed)}: driver {parsed.get_driver_name()!r} is not supported; "
            f"use {backend}+{driver}"
        )
    parsed = parsed.set(drivername=f"{backend}+{driver}")
    if backend == "postgresql" and not parsed.database:
        raise DatabaseUnavailable(f"DATABASE_URL {redact_url(parsed)}: no database name; expected {ACCEPTED}")
    return parsed


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL points at, or None for in-memory databases and other backends."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or (database.startswith("file:") and "mode=memory" in database):
        return None
    return Path(database.removeprefix("file:").split("?", 1)[0])


def ensure_sqlite_directory(url: URL) -> None:
    """Create the parent directory of a SQLite file (the default `data/bot.db` lives in `data/`)."""
    path = sqlite_file(url)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnavailable(
            f"DATABASE_URL {redact_url(url)}: cannot create directory {path.parent}: {exc.strerror}"
        ) from None


def is_sqlite_url(url: str | URL) -> bool:
    """Whether DATABASE_URL names SQLite (a database one process uses alone); unparseable URLs are not."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url.strip())
    except ArgumentError:
        return False
    return parsed.get_backend_name() == "sqlite"
