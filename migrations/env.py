"""Alembic environment (async). `upgrade_to_head` hands over its own connection; the developer CLI
(`alembic revision --autogenerate`) connects to the `sqlalchemy.url` option, or else DATABASE_URL."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from bot.db.engine import create_engine
from bot.db.models import Base
from bot.db.types import UTCDateTime
from bot.db.urls import parse_database_url

config = context.config
target_metadata = Base.metadata

if config.config_file_name and "connection" not in config.attributes:
    # The developer CLI: use alembic.ini's logging. The bot configures its own logging.
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return str(url)
    from bot.settings import load_settings

    return load_settings().database_url


def render_item(kind: str, item: object, _autogen_context: object) -> str | bool:
    """New revisions spell out plain SQLAlchemy types, never the project's own type classes."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure(**options: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_item=render_item,
        # SQLite cannot ALTER most things; batch mode rebuilds tables there and is a no-op elsewhere.
        render_as_batch=True,
        compare_type=True,
        **options,
    )


def run_offline() -> None:
    configure(url=parse_database_url(database_url()), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_engine(database_url(), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_on)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_offline()
elif (shared := config.attributes.get("connection")) is not None:
    # Called from bot.db.migrate with a connection it already opened (inside a running event loop).
    run_on(shared)
else:
    asyncio.run(run_online())
