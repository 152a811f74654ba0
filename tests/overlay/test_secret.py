"""The signing key: OVERLAY_SECRET when set; else generated once, kept in the database, and never logged."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.db.models import StoredSecret
from bot.errors import ConfigurationError
from bot.overlay.secret import overlay_secret
from bot.settings import load_settings


async def test_a_generated_key_is_stored_once_and_the_same_for_every_process(db, no_secret_in_logs):
    settings = load_settings(_env_file=None)
    keys = await asyncio.gather(*(overlay_secret(settings, db) for _ in range(3)))  # processes starting together
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    async with db.session() as s:
        rows = (await s.execute(StoredSecret.__table__.select())).all()
    assert len(rows) == 1
    assert await overlay_secret(settings, db) == keys[0]  # a restart signs alike: links keep working
    logging.getLogger("test").warning("the key is %s", keys[0].decode())
    assert keys[0].decode() not in no_secret_in_logs.getvalue()  # registered with the redactor


async def test_a_configured_key_wins_and_is_not_stored(db):
    settings = load_settings(_env_file=None, overlay_secret="a configured key of 32 characters")
    assert await overlay_secret(settings, db) == b"a configured key of 32 characters"
    async with db.session() as s:
        assert (await s.execute(StoredSecret.__table__.select())).all() == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"overlay_secret": "short"}, "OVERLAY_SECRET: must be at least 16 characters"),
        ({"public_url": "captions.example.org"}, "PUBLIC_URL: must start with http:// or https://"),
        ({"public_url": "https://example.org/?a=1"}, "PUBLIC_URL: must be a base URL"),
    ],
)
def test_bad_overlay_settings_are_named(overrides, message):
    with pytest.raises(ConfigurationError) as raised:
        load_settings(_env_file=None, **overrides)
    assert message in str(raised.value)
    assert "short" not in str(raised.value)  # the secret's value is not echoed


def test_public_url_loses_its_trailing_slash_and_blank_means_unset():
    assert load_settings(_env_file=None, public_url="https://captions.example.org/").public_url == (
        "https://captions.example.org"
    )
    assert load_settings(_env_file=None, public_url="", overlay_secret="").public_url is None
