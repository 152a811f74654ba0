"""The overlay's signing key: OVERLAY_SECRET if set, else one generated once and kept in the database
(so links survive a restart and every process of a deployment signs alike)."""

from __future__ import annotations

import secrets

from bot.db.engine import Database
from bot.db.stored_secrets import get_or_create_secret
from bot.logs import register_secret
from bot.settings import Settings

STORED_NAME = "overlay_signing_key"


async def overlay_secret(settings: Settings, database: Database) -> bytes:
    if settings.overlay_secret is not None:
        return settings.overlay_secret.get_secret_value().encode()
    candidate = secrets.token_hex(32)
    register_secret(candidate)  # before the insert: a database driver's debug log shows its parameters
    async with database.session() as s:
        value = await get_or_create_secret(s, STORED_NAME, lambda: candidate)
    register_secret(value)  # another process's key, when it stored one first
    return value.encode()
