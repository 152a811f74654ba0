from __future__ import annotations

import re

import pytest

from bot.db.errors import DatabaseUnavailable
from bot.db.urls import ensure_sqlite_directory, parse_database_url, redact_url, sqlite_file
from bot.errors import ConfigurationError
from tests.fakes import secrets

PASSWORD = secrets.PALABRA_CLIENT_SECRET


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite+aiosqlite:///data/bot.db", "sqlite+aiosqlite:///data/bot.db"),
        ("sqlite:///data/bot.db", "sqlite+aiosqlite:///data/bot.db"),
        ("postgresql://u@db:5432/bot", "postgresql+asyncpg://u@db:5432/bot"),
        ("postgres://u@db/bot", "postgresql+asyncpg://u@db/bot"),
        ("postgresql+asyncpg://u@db/bot", "postgresql+asyncpg://u@db/bot"),
    ],
)
def test_plain_urls_get_the_async_driver(given, expected):
    assert parse_database_url(given).render_as_string() == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql://u@db/bot", "unsupported database 'mysql'"),
        ("postgresql+psycopg2://u@db/bot", "use postgresql+asyncpg"),
        ("sqlite+pysqlite:///x.db", "use sqlite+aiosqlite"),
        ("postgresql+asyncpg://u@db", "no database name"),
        ("::nonsense::", "not a valid database URL"),
    ],
)
def test_bad_urls_name_the_setting_and_what_is_accepted(given, message):
    with pytest.raises(DatabaseUnavailable, match=re.escape(message)) as caught:
        parse_database_url(given)
    assert "DATABASE_URL" in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)


def test_errors_and_redaction_never_show_the_password():
    url = f"mysql://bot:{PASSWORD}@db/bot"
    with pytest.raises(DatabaseUnavailable) as caught:
        parse_database_url(url)
    assert PASSWORD not in str(caught.value)
    assert redact_url(f"postgresql+asyncpg://bot:{PASSWORD}@db/bot") == "postgresql+asyncpg://bot:***@db/bot"


def test_sqlite_file_and_directory(tmp_path):
    assert sqlite_file(parse_database_url("sqlite+aiosqlite://")) is None
    assert sqlite_file(parse_database_url("sqlite+aiosqlite:///:memory:")) is None
    assert sqlite_file(parse_database_url("postgresql://u@h/d")) is None
    nested = tmp_path / "a" / "b" / "bot.db"
    url = parse_database_url(f"sqlite+aiosqlite:///{nested}")
    assert sqlite_file(url) == nested
    ensure_sqlite_directory(url)
    assert nested.parent.is_dir()
