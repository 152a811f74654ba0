"""Polls broadcast statuses and announces changes in each broadcast's chosen channel.

One account-wide `GET /broadcasts` per round, whatever the number of broadcasts, every `interval_s`
(30 s by default) with ±`jitter` so several bot instances do not poll in lockstep. A round that fails
(Palabra unreachable, database hiccup) is logged and the next round tries again; an announcement that
fails does not stop the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from bot.broadcasts.service import BroadcastService, StatusChange
from bot.errors import BotError
from bot.tasks import Steps

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 30.0
DEFAULT_JITTER = 0.2  # fraction of the interval

Announce = Callable[[int, str], Awaitable[None]]  # (channel id, text)


def announcement(change: StatusChange) -> str:
    return f"📡 Broadcast **{change.title}** (`{change.broadcast_id[:8]}`): {change.text}"


class BroadcastPoller:
    def __init__(
        self,
        service: BroadcastService,
        announce: Announce,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        jitter: float = DEFAULT_JITTER,
    ) -> None:
        if interval_s <= 0 or not 0 <= jitter < 1:
            raise ValueError("interval_s must be positive and jitter in [0, 1)")
        self.service = service
        self.announce = announce
        self.interval_s = interval_s
        self.jitter = jitter
        self.rounds = 0  # completed rounds
        self.failed_rounds = 0
        self._task: asyncio.Task[None] | None = None
        self._rounds = Steps()  # stop() lets a round under way (its database writes) finish

    async def poll_once(self) -> list[StatusChange]:
        """One round: detect changes, save them, announce those with a channel."""
        changes = await self.service.poll_statuses()
        self.rounds += 1
        for change in changes:
            log.info("broadcast %s of guild %s: %s -> %s", change.broadcast_id, change.guild_id, change.old, change.new)
            if change.announce_channel_id is None:
                continue
            try:
                await self.announce(change.announce_channel_id, announcement(change))
            except Exception:
                log.exception(
                    "could not announce broadcast %s in channel %s", change.broadcast_id, change.announce_channel_id
                )
        return changes

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="broadcast status poller")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await self._rounds.stop(task)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def next_delay(self) -> float:
        return self.interval_s * random.uniform(1 - self.jitter, 1 + self.jitter)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.next_delay())
            with self._rounds.step():
                try:
                    await self.poll_once()
                except BotError as exc:
                    self.failed_rounds += 1
                    log.warning("broadcast status round failed: %s", exc)
                except Exception:
                    self.failed_rounds += 1
                    log.exception("broadcast status round failed")
