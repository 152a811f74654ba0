"""A user's privacy choices (`/privacy`): stored, and applied at once to running sessions.

`guild_id` None means every server. Deleting a user's data keeps their opt-out: the row that records
the choice is what keeps their voice out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.db import privacy

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptInResult:
    changed: bool
    still_opted_out: bool  # another choice (everywhere, or this server) still applies


@dataclass(frozen=True)
class DeleteResult:
    transcript_lines: int
    kept_opt_outs: int


async def _tell_sessions(services: Services, guild_id: int | None, user_id: int, opted_out: bool) -> None:
    if services.interpretation is not None:
        await services.interpretation.set_user_opted_out(guild_id, user_id, opted_out)


async def opt_out(services: Services, user_id: int, guild_id: int | None) -> bool:
    """Leave the user's voice out from now on; False if that choice was already recorded."""
    async with services.database.session() as s:
        changed = await privacy.opt_out(s, user_id, guild_id)
    await _tell_sessions(services, guild_id, user_id, True)
    log.info("user %s opted out (%s)", user_id, "everywhere" if guild_id is None else f"guild {guild_id}")
    return changed


async def opt_in(services: Services, user_id: int, guild_id: int | None) -> OptInResult:
    async with services.database.session() as s:
        changed = await privacy.opt_in(s, user_id, guild_id)
        remaining = await privacy.opt_out_scopes(s, user_id)
    global_remains = None in remaining
    if guild_id is None:
        await _tell_sessions(services, None, user_id, False)
        for scope in remaining:  # per-server choices still apply there
            await _tell_sessions(services, scope, user_id, True)
        return OptInResult(changed, bool(remaining))
    if not global_remains:
        await _tell_sessions(services, guild_id, user_id, False)
    return OptInResult(changed, global_remains)


async def delete_data(services: Services, user_id: int, guild_id: int | None) -> DeleteResult:
    """Delete the user's transcript lines (in one server, or everywhere); their opt-outs stay."""
    async with services.database.session() as s:
        deleted = await privacy.delete_user_data(s, user_id, guild_id, keep_choices=True)
        scopes = await privacy.opt_out_scopes(s, user_id)
    kept = [scope for scope in scopes if guild_id is None or scope == guild_id]
    log.info("deleted %d transcript lines of user %s", deleted.transcript_lines, user_id)
    return DeleteResult(deleted.transcript_lines, len(kept))
