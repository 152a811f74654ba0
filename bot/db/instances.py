"""Instances: the bot processes sharing one database, the gateway shards each runs, their heartbeat.

A guild belongs to shard `(guild_id >> 22) % shard_count` (bot.shards); the process running that shard
owns the guild's sessions and speaker leases. On start a process registers its shards, and takes over
the live sessions of its shards' guilds that no live instance owns (their previous owner crashed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from bot.db.models import LIVE_STATUSES, Instance, InterpretationSession, SpeakerLease
from bot.db.rows import affected_rows, insert_ignoring_conflicts
from bot.db.sessions import END_CRASHED, end_sessions, heartbeat
from bot.db.types import utcnow
from bot.shards import SHARD_SHIFT


def shard_expression(guild_id: ColumnElement[int] | InstrumentedAttribute[int], shard_count: int) -> ColumnElement[int]:
    """`(guild_id >> 22) % shard_count` in SQL (both SQLite and PostgreSQL have >> and %).

    The numbers are written into the SQL: PostgreSQL has `bigint >> integer` but no `bigint >> bigint`,
    which a bound Python int would become.
    """
    shift: ColumnElement[int] = literal_column(str(int(SHARD_SHIFT)))
    count: ColumnElement[int] = literal_column(str(int(shard_count)))
    return guild_id.op(">>")(shift).op("%")(count)


@dataclass(frozen=True)
class ShardClaim:
    """What an instance says about itself: its id and the shards it runs out of `shard_count`."""

    instance_id: str
    shard_ids: tuple[int, ...]
    shard_count: int

    def overlaps(self, other: Instance) -> tuple[int, ...]:
        """The shards both run; every one of ours when the shard counts differ (guilds map differently)."""
        if other.shard_count != self.shard_count:
            return self.shard_ids
        return tuple(sorted(set(self.shard_ids) & set(other.shard_ids)))


async def register_instance(session: AsyncSession, claim: ShardClaim, *, now: datetime | None = None) -> Instance:
    """Record (or refresh, for a restart under the same id) the instance and its shards."""
    now = now or utcnow()
    values = {
        "id": claim.instance_id,
        "shard_ids": list(claim.shard_ids),
        "shard_count": claim.shard_count,
        "started_at": now,
        "heartbeat_at": now,
    }
    if await insert_ignoring_conflicts(session, Instance, values) is None:
        row = await session.get_one(Instance, claim.instance_id, with_for_update=True, populate_existing=True)
        row.shard_ids, row.shard_count = list(claim.shard_ids), claim.shard_count
        row.started_at = row.heartbeat_at = now
        await session.flush()
        return row
    return await session.get_one(Instance, claim.instance_id)


async def get_instance(session: AsyncSession, instance_id: str) -> Instance | None:
    return await session.get(Instance, instance_id, populate_existing=True)


async def list_instances(session: AsyncSession) -> list[Instance]:
    return list(await session.scalars(select(Instance).order_by(Instance.id)))


async def heartbeat_instance(session: AsyncSession, instance_id: str, *, now: datetime | None = None) -> bool:
    """The instance and its live sessions are alive now; False if its row is gone (re-register)."""
    now = now or utcnow()
    row = await session.get(Instance, instance_id, populate_existing=True)
    if row is None:
        return False
    row.heartbeat_at = now
    await heartbeat(session, instance_id, now=now)
    await session.flush()
    return True


async def remove_instance(session: AsyncSession, instance_id: str) -> bool:
    """A clean shutdown: the instance no longer runs any shard."""
    result = await session.execute(delete(Instance).where(Instance.id == instance_id))
    return affected_rows(result) > 0


async def rival_instances(session: AsyncSession, claim: ShardClaim) -> list[Instance]:
    """Other registered instances that claim one of our shards (or use another shard count)."""
    rows = await session.scalars(select(Instance).where(Instance.id != claim.instance_id).order_by(Instance.id))
    return [row for row in rows if claim.overlaps(row)]


async def take_over_sessions(
    session: AsyncSession, claim: ShardClaim, *, alive: Sequence[str] = (), now: datetime | None = None
) -> list[InterpretationSession]:
    """End, as crashed, the live sessions of our shards' guilds that no instance in `alive` owns, release
    the speaker leases there that no instance in `alive` holds, and drop the instance rows of dead
    owners whose shards are all ours. Returns the ended sessions (resume them; delete their Palabra
    sessions).

    Call before this process runs any session of its own: every live session of its shards then
    belongs to a dead process (a previous run under the same id included) or to an instance in
    `alive` (never touched).
    """
    ours = shard_expression(InterpretationSession.guild_id, claim.shard_count).in_(claim.shard_ids)
    query = select(InterpretationSession).where(InterpretationSession.status.in_(LIVE_STATUSES), ours)
    if alive:
        query = query.where(InterpretationSession.instance_id.not_in(list(alive)))
    orphans = list(await session.scalars(query.with_for_update().order_by(InterpretationSession.id)))
    await end_sessions(session, orphans, END_CRASHED, now or utcnow())
    orphan_leases = delete(SpeakerLease).where(
        shard_expression(SpeakerLease.guild_id, claim.shard_count).in_(claim.shard_ids)
    )
    if alive:
        orphan_leases = orphan_leases.where(SpeakerLease.instance_id.not_in(list(alive)))
    await session.execute(orphan_leases)
    await _drop_dead_instances(session, claim, alive)
    return orphans


async def _drop_dead_instances(session: AsyncSession, claim: ShardClaim, alive: Sequence[str]) -> None:
    for row in await session.scalars(select(Instance).where(Instance.id != claim.instance_id)):
        covered = row.shard_count != claim.shard_count or set(row.shard_ids) <= set(claim.shard_ids)
        if row.id not in alive and covered:
            await session.delete(row)
    await session.flush()
