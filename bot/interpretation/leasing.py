"""Speaker leases: the one answer to "is this speaker bot busy?".

A `SpeakerSlot` is a speaker bot playing one language of one session: its slot in this process's
`SpeakerPool` and its row in the database's lease table (which keeps processes sharing a database
apart), taken and given back together by `SpeakerLeases`. Nothing else leases or releases speakers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from bot.db import leases as db_leases

if TYPE_CHECKING:
    from bot.db.engine import Database
    from bot.voice.speakers import Lease, SpeakerPool

log = logging.getLogger(__name__)


@dataclass(eq=False)
class SpeakerSlot:
    lease: Lease
    row_id: int
    session_id: int
    language: str
    channel_id: int

    @property
    def speaker_id(self) -> int | None:
        return self.lease.speaker_id


class SpeakerLeases:
    def __init__(self, pool: SpeakerPool, database: Database, instance_id: str) -> None:
        self.pool, self.database, self.instance_id = pool, database, instance_id
        self._slots: dict[int, SpeakerSlot] = {}  # id(pool lease) -> its slot

    @property
    def speakers(self) -> list[discord.Client]:
        return self.pool.speakers

    def slots(self, session_id: int | None = None) -> list[SpeakerSlot]:
        return [slot for slot in self._slots.values() if session_id is None or slot.session_id == session_id]

    def busy(self, lease: Lease) -> bool:
        return id(lease) in self._slots

    async def acquire(
        self,
        *,
        guild_id: int,
        channel_id: int,
        language: str,
        session_id: int,
        source: discord.AudioSource,
    ) -> SpeakerSlot | str:
        """A speaker bot playing `source` into `channel_id`, or why there is none."""
        if not self.pool.speakers:
            return "no speaker bot is configured (SPEAKER_TOKENS)"
        lease = await self.pool.lease(guild_id, language)
        if lease is None and self.pool.connecting:
            return "the speaker bots are still connecting (it moves to its channel when one is ready)"
        if lease is None or self.busy(lease):
            return "every speaker bot is busy in this server"
        assert lease.speaker_id is not None, "the pool only leases speakers that are logged in"
        try:
            async with self.database.session() as s:
                row = await db_leases.acquire_speaker(
                    s,
                    candidates=[lease.speaker_id],
                    guild_id=guild_id,
                    channel_id=channel_id,
                    language=language,
                    instance_id=self.instance_id,
                    session_id=session_id,
                )
                row_id = row.id if row is not None else None
        except BaseException:  # a failed or cancelled write: the speaker must not stay leased in this process
            await asyncio.shield(lease.release())
            raise
        if row_id is None:
            await lease.release()
            return "its speaker bot or channel is in use by another session"
        slot = SpeakerSlot(lease, row_id, session_id, language, channel_id)
        self._slots[id(lease)] = slot
        try:
            await lease.play(channel_id, source)
        except Exception as exc:  # SpeakerError, discord errors, timeouts: the language falls back
            log.warning("speaker for %s could not join channel %s: %s", language, channel_id, exc)
            await self.release(slot)
            return f"the speaker bot could not join <#{channel_id}>"
        return slot

    async def release(self, slot: SpeakerSlot) -> None:
        """Leave the channel and free the speaker, here and in the database; failures are logged."""
        if self._slots.get(id(slot.lease)) is not slot:
            return
        del self._slots[id(slot.lease)]
        try:
            await slot.lease.release()
        except Exception:
            log.exception("releasing speaker %s failed", slot.speaker_id)
        try:
            async with self.database.session() as s:
                await db_leases.release_lease(s, slot.row_id)
        except Exception:  # ending the session releases its rows again
            log.exception("releasing the lease row of speaker %s failed", slot.speaker_id)

    async def release_session(self, session_id: int) -> None:
        for slot in self.slots(session_id):
            await self.release(slot)
