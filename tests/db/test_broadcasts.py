from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from bot.db import broadcasts
from bot.db.errors import NotFound

GUILD = 5_100_000_000_000_000_001
OTHER_GUILD = 5_100_000_000_000_000_002
CREATOR = 5_200_000_000_000_000_001
ANNOUNCE = 5_300_000_000_000_000_001


async def add(db, pid: str, guild: int = GUILD, title: str = "Town hall"):
    async with db.session() as s:
        return await broadcasts.add_broadcast(
            s,
            guild_id=guild,
            palabra_broadcast_id=pid,
            creator_user_id=CREATOR,
            title=title,
            announce_channel_id=ANNOUNCE,
            status="created",
        )


async def test_add_and_get(db):
    await add(db, "b-1")
    async with db.session() as s:
        row = await broadcasts.get_broadcast(s, GUILD, "b-1")
    assert (row.guild_id, row.creator_user_id, row.title, row.announce_channel_id, row.status) == (
        GUILD,
        CREATOR,
        "Town hall",
        ANNOUNCE,
        "created",
    )
    assert row.created_at.tzinfo is not None


async def test_list_is_per_guild_newest_first(db):
    await add(db, "b-1")
    await add(db, "b-2")
    await add(db, "b-3", guild=OTHER_GUILD)
    async with db.session() as s:
        assert [b.palabra_broadcast_id for b in await broadcasts.list_broadcasts(s, GUILD)] == ["b-2", "b-1"]
        assert [b.palabra_broadcast_id for b in await broadcasts.list_broadcasts(s, OTHER_GUILD)] == ["b-3"]


async def test_another_guilds_broadcast_is_not_found(db):
    await add(db, "b-1")
    async with db.session() as s:
        assert await broadcasts.find_broadcast(s, OTHER_GUILD, "b-1") is None
        with pytest.raises(NotFound, match="b-1"):
            await broadcasts.get_broadcast(s, OTHER_GUILD, "b-1")
        with pytest.raises(NotFound):
            await broadcasts.update_broadcast_status(s, OTHER_GUILD, "b-1", "live")
        with pytest.raises(NotFound):
            await broadcasts.delete_broadcast(s, OTHER_GUILD, "b-1")
    async with db.session() as s:
        assert (await broadcasts.get_broadcast(s, GUILD, "b-1")).status == "created"


async def test_update_only_what_is_given(db):
    await add(db, "b-1")
    async with db.session() as s:
        await broadcasts.update_broadcast_status(s, GUILD, "b-1", "live")
        await broadcasts.update_broadcast(s, GUILD, "b-1", title="Renamed", announce_channel_id=None)
    async with db.session() as s:
        row = await broadcasts.get_broadcast(s, GUILD, "b-1")
    assert (row.status, row.title, row.announce_channel_id) == ("live", "Renamed", None)
    assert row.updated_at >= row.created_at


async def test_delete(db):
    await add(db, "b-1")
    await add(db, "b-2")
    async with db.session() as s:
        deleted = await broadcasts.delete_broadcast(s, GUILD, "b-1")
    assert deleted.palabra_broadcast_id == "b-1"
    async with db.session() as s:
        assert [b.palabra_broadcast_id for b in await broadcasts.list_broadcasts(s, GUILD)] == ["b-2"]


async def test_a_palabra_broadcast_belongs_to_one_guild(db):
    await add(db, "b-1")
    with pytest.raises(IntegrityError):
        await add(db, "b-1", guild=OTHER_GUILD)
