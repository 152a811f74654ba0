"""This process's instance in the shared database: which shards it runs, proof that it is alive, and the
take-over of sessions a dead process left on those shards.

Start-up (`claim`), before the Discord clients connect, so no session of this process exists yet:
1. register the instance (id, SHARD_IDS, SHARD_COUNT, heartbeat);
2. look for rivals: other instances on one of our shards, or with another SHARD_COUNT. A rival whose
   heartbeat is older than STALE_HEARTBEATS intervals is dead. Otherwise we watch it: if its heartbeat
   moves it is alive and we refuse to start (two processes on one shard would both answer its
   commands); if it stays still for STALE_HEARTBEATS intervals it is dead (a SIGKILLed process);
3. take over: every live session of our shards' guilds is ended as crashed and returned, for the
   caller to delete its Palabra sessions and resume it where people remain.

Then `start_heartbeat()` beats every HEARTBEAT_SECONDS (the instance and its sessions); `close()`
stops it and deletes the instance row (a clean stop leaves nothing to take over). If a beat finds the
row gone, another process has taken the shards over (this one was cut off from the database for too
long): `lost` is set and the process must stop serving, not register again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.db import instances as db_instances
from bot.db.engine import Database
from bot.db.instances import ShardClaim
from bot.db.models import Instance
from bot.db.types import utcnow
from bot.errors import BotError, ConfigurationError
from bot.interpretation.recovery import CrashedSession
from bot.shards import ShardPlan
from bot.tasks import Steps

log = logging.getLogger(__name__)

# A process silent for this many heartbeat intervals is dead (room for a slow database or a busy loop).
STALE_HEARTBEATS = 3


class ShardConflict(ConfigurationError):
    """Another live process runs one of our shards, or uses another SHARD_COUNT."""


class OwnershipLost(BotError):
    """Our instance row was removed while we ran: another process owns our shards now."""


class Ownership:
    def __init__(
        self,
        database: Database,
        plan: ShardPlan,
        instance_id: str,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database, self.plan, self.instance_id = database, plan, instance_id
        self.interval_s = interval_s
        self.shard_claim = ShardClaim(instance_id, plan.ids, plan.count)
        self._clock, self._sleep, self._now = clock, sleep, now
        self._heartbeat: asyncio.Task[None] | None = None
        self._beats = Steps()  # close() lets a heartbeat write under way finish
        self.registered = False
        self.lost = asyncio.Event()

    @property
    def stale_after(self) -> timedelta:
        return timedelta(seconds=STALE_HEARTBEATS * self.interval_s)

    def describe(self) -> str:
        return f"instance {self.instance_id} (shards {self.plan.label()})"

    async def claim(self) -> list[CrashedSession]:
        """Register, wait until no live rival runs our shards (or refuse), take over what dead ones left."""
        await self._register()
        await self._wait_for_rivals()
        async with self.database.session() as s:
            taken = [CrashedSession.of(row) for row in await db_instances.take_over_sessions(s, self.shard_claim)]
        for row in taken:
            log.warning(
                "taking over session %s (guild %s, channel %s) from %s, which stopped without ending it",
                row.id,
                row.guild_id,
                row.source_channel_id,
                row.previous_instance_id,
            )
        return taken

    async def _register(self) -> None:
        async with self.database.session() as s:
            await db_instances.register_instance(s, self.shard_claim, now=self._now())
        self.registered = True
        log.info("registered as %s", self.describe())

    async def _wait_for_rivals(self) -> None:
        first_seen: dict[str, datetime] = {}
        deadline = self._clock() + STALE_HEARTBEATS * self.interval_s
        while True:
            async with self.database.session() as s:
                await db_instances.heartbeat_instance(s, self.instance_id, now=self._now())
                rivals = await db_instances.rival_instances(s, self.shard_claim)
            silent = self._silent_rivals(rivals, first_seen)
            if not silent:
                return
            if self._clock() >= deadline:
                log.warning("%s stayed silent: treating it as dead", _names(silent))
                return
            log.info(
                "%s last beat %s; waiting to see whether it is alive before taking its shards over",
                _names(silent),
                ", ".join(f"{self._age_s(r):.0f} s ago" for r in silent),
            )
            await self._sleep(self.interval_s / 2)

    def _silent_rivals(self, rivals: list[Instance], first_seen: dict[str, datetime]) -> list[Instance]:
        """Rivals not yet known dead; raises ShardConflict for one that is demonstrably alive."""
        undecided = []
        for rival in rivals:
            if self._now() - rival.heartbeat_at > self.stale_after:
                continue  # dead long enough by the clock
            seen = first_seen.setdefault(rival.id, rival.heartbeat_at)
            if rival.heartbeat_at > seen:
                raise ShardConflict(self._conflict_message(rival))
            undecided.append(rival)
        return undecided

    def _conflict_message(self, rival: Instance) -> str:
        age = f"heartbeat {self._age_s(rival):.0f} s ago"
        if rival.shard_count != self.plan.count:
            return (
                f"cannot start: instance {rival.id} is running with SHARD_COUNT={rival.shard_count} ({age}), "
                f"this process has SHARD_COUNT={self.plan.count}; every process of a deployment, and every "
                "bot account, must use the same SHARD_COUNT (stop the others first to change it)"
            )
        shared = ",".join(str(i) for i in self.shard_claim.overlaps(rival))
        return (
            f"cannot start: shard {shared} of {self.plan.count} is already run by the live instance {rival.id} "
            f"({age}); two processes on one shard would both answer its commands: give each process its own "
            "SHARD_IDS"
        )

    def _age_s(self, rival: Instance) -> float:
        return (self._now() - rival.heartbeat_at).total_seconds()

    # --- while running --------------------------------------------------------------------------------

    def start_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat_forever(), name="instance-heartbeat")

    async def beat(self) -> bool:
        """One heartbeat (instance and sessions); False, with `lost` set, if our row is gone."""
        async with self.database.session() as s:
            alive = await db_instances.heartbeat_instance(s, self.instance_id, now=self._now())
        if not alive:
            self.registered = False
            log.error(
                "%s is no longer registered: another process took its shards over while this one could not "
                "reach the database; stopping so that the shards are not served twice",
                self.describe(),
            )
            self.lost.set()
        return alive

    def lost_error(self) -> OwnershipLost:
        return OwnershipLost(
            f"{self.describe()} stopped: another process took over its shards (its heartbeat had not reached "
            "the database for too long); start it again to rejoin"
        )

    async def _beat_forever(self) -> None:
        while True:
            await self._sleep(self.interval_s)
            with self._beats.step():
                try:
                    if not await self.beat():
                        return
                except Exception:
                    log.exception("instance heartbeat failed")

    async def close(self) -> None:
        task, self._heartbeat = self._heartbeat, None
        await self._beats.stop(task)
        if self.registered:
            try:
                async with self.database.session() as s:
                    await db_instances.remove_instance(s, self.instance_id)
            except Exception:
                log.exception("could not remove %s from the database", self.describe())
            self.registered = False


def _names(rivals: list[Instance]) -> str:
    return ", ".join(f"instance {r.id} (shards {','.join(map(str, r.shard_ids))}/{r.shard_count})" for r in rivals)
