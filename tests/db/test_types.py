from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import StatementError

from bot.db import sessions


async def _start(db, started_at):
    async with db.session() as s:
        row = await sessions.start_session(
            s, guild_id=1, source_channel_id=2, source_language="en", target_languages=[], instance_id="h:1"
        )
        row.started_at = started_at
        return row.id


async def test_aware_datetimes_come_back_in_utc(db):
    tokyo = timezone(timedelta(hours=9))
    local = datetime(2026, 3, 1, 18, 30, 15, 123456, tzinfo=tokyo)
    session_id = await _start(db, local)
    async with db.session() as s:
        stored = await sessions.get_session(s, session_id)
        await s.refresh(stored)
    assert stored.started_at == local
    assert stored.started_at.utcoffset() == timedelta(0)
    assert stored.started_at.hour == 9


async def test_naive_datetimes_are_refused(db):
    with pytest.raises(StatementError, match="naive datetime"):
        await _start(db, datetime(2026, 3, 1, 18, 30))


def test_the_db_package_exports_exactly_its_lazy_names():
    import bot.db as package

    assert sorted(package.__all__) == sorted([*package._EXPORTS, *package._MODULES])
    for name in package.__all__:
        assert getattr(package, name) is not None
