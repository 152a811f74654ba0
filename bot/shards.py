"""Discord gateway shards: which guilds this process serves.

A guild's shard is `(guild_id >> 22) % SHARD_COUNT` for every bot application alike, so when the main
bot and every speaker bot run the same SHARD_IDS of the same SHARD_COUNT, one process holds, for each
of its guilds, the listener and every speaker connection that guild can use: no audio crosses
processes. The database tells the processes apart (bot.db.instances); nothing else is shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.db.urls import is_sqlite_url
from bot.errors import ConfigurationError

if TYPE_CHECKING:
    from bot.settings import Settings

# Discord's snowflake: the top 42 bits are the creation time, which spreads guilds over the shards.
SHARD_SHIFT = 22


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's formula for the shard that receives a guild's events."""
    return (guild_id >> SHARD_SHIFT) % shard_count


@dataclass(frozen=True)
class ShardPlan:
    """The shards this process runs, out of `count`."""

    ids: tuple[int, ...]
    count: int

    @classmethod
    def of(cls, settings: Settings) -> ShardPlan:
        return cls(tuple(settings.own_shard_ids), settings.shard_count)

    @property
    def is_everything(self) -> bool:
        return len(self.ids) == self.count

    def serves(self, guild_id: int) -> bool:
        return shard_of(guild_id, self.count) in self.ids

    def client_kwargs(self) -> dict[str, object]:
        """The keywords discord.py's AutoShardedClient/AutoShardedBot takes for exactly these shards."""
        return {"shard_ids": list(self.ids), "shard_count": self.count}

    def label(self) -> str:
        """`0,1/2`: for metrics, health and logs."""
        return f"{','.join(str(i) for i in self.ids)}/{self.count}"


def check_run_shards(settings: Settings) -> ShardPlan:
    """The plan `run` uses, or ConfigurationError for combinations that cannot work.

    SQLite is a file on one machine: several processes cannot share it safely, so with SQLite this one
    process must run every shard.
    """
    plan = ShardPlan.of(settings)
    if not plan.is_everything and is_sqlite_url(settings.database_url):
        missing = ",".join(str(i) for i in range(plan.count) if i not in plan.ids)
        raise ConfigurationError(
            f"SHARD_IDS={','.join(str(i) for i in plan.ids)} runs only part of SHARD_COUNT={plan.count} "
            f"(shards {missing} would need another process), but DATABASE_URL is SQLite, which one process "
            "uses alone: use PostgreSQL for several processes, or leave SHARD_IDS empty to run every shard here"
        )
    return plan
