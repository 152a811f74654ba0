"""Secrets the bot generates once and keeps (the overlay's signing key when OVERLAY_SECRET is unset)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import StoredSecret
from bot.db.rows import insert_ignoring_conflicts


async def get_or_create_secret(session: AsyncSession, name: str, generate: Callable[[], str]) -> str:
    """The stored value of `name`, generating and storing it first if there is none.

    Two processes starting together both insert; the conflict keeps the first, and both read it back.
    """
    await insert_ignoring_conflicts(session, StoredSecret, {"name": name, "value": generate()})
    value = await session.scalar(select(StoredSecret.value).where(StoredSecret.name == name))
    assert value is not None  # inserted above, or already there
    return value
