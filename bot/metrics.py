"""Prometheus metrics of the bot, in a registry of its own (served by bot.http on HTTP_PORT)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

LATENCY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0)


def shard_latency_s(shard: Any) -> float | None:
    """A discord.py ShardInfo's gateway latency, None before its first heartbeat (nan or inf there)."""
    latency = getattr(shard, "latency", None)
    return latency if isinstance(latency, float) and math.isfinite(latency) else None


class Metrics:
    """Per process. `interpreter_instance_info` names the instance and its shards (join on it in queries
    across processes); the per-shard gauges carry a `shard` label."""

    def __init__(self, *, instance_id: str = "", shard_ids: Sequence[int] = (0,), shard_count: int = 1) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.instance = Info("interpreter_instance", "This process: its instance id and gateway shards", registry=r)
        self.instance.info(
            {
                "instance_id": instance_id,
                "shard_ids": ",".join(str(i) for i in shard_ids),
                "shard_count": str(shard_count),
            }
        )
        self.shard_ids = tuple(shard_ids)
        self.listener: Any = None  # set once the listener exists: the shard gauges are read from it
        self.shard_guilds = Gauge(
            "interpreter_shard_guilds", "Guilds on each shard of this process", ["shard"], registry=r
        )
        self.shard_latency = Gauge(
            "interpreter_shard_latency_seconds", "Gateway heartbeat latency of each shard", ["shard"], registry=r
        )
        self.shard_ready = Gauge("interpreter_shard_ready", "1 while a shard is connected", ["shard"], registry=r)
        self.sessions = Gauge("interpreter_sessions_active", "Live interpretation sessions", registry=r)
        self.sessions_paused = Gauge(
            "interpreter_sessions_palabra_paused",
            "Sessions whose Palabra task is paused because nobody speaks (not billed)",
            registry=r,
        )
        self.sessions_started = Counter("interpreter_sessions_started", "Interpretation sessions started", registry=r)
        self.sessions_stopped = Counter(
            "interpreter_sessions_stopped", "Interpretation sessions stopped, by reason", ["reason"], registry=r
        )
        self.speakers = Gauge("interpreter_speakers", "Speaker bots ready in this process", registry=r)
        self.speakers_leased = Gauge("interpreter_speakers_leased", "Speaker bots playing a language", registry=r)
        self.packets = Counter("interpreter_voice_packets", "Voice UDP packets received", registry=r)
        self.decrypt_failures = Counter(
            "interpreter_decrypt_failures", "Voice packets that failed to decrypt", ["stage"], registry=r
        )
        self.latency = Histogram(
            "interpreter_palabra_latency_seconds",
            "Utterance end (on the audio timeline) to its first translated audio chunk, wall clock",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("interpreter_errors", "Errors by kind", ["kind"], registry=r)
        self.transcript_messages = Counter("interpreter_transcript_messages", "Transcript messages posted", registry=r)

    def observe_shards(self, bot: Any) -> None:
        """Refresh the per-shard gauges from the listener (a discord.py AutoShardedClient)."""
        if bot is None:
            return
        for shard_id in self.shard_ids:
            shard = bot.get_shard(shard_id)
            label = str(shard_id)
            self.shard_ready.labels(label).set(1 if shard is not None and not shard.is_closed() else 0)
            latency = shard_latency_s(shard)
            if latency is not None:
                self.shard_latency.labels(label).set(latency)
            self.shard_guilds.labels(label).set(sum(1 for g in bot.guilds if g.shard_id == shard_id))

    def render(self) -> bytes:
        self.observe_shards(self.listener)
        return generate_latest(self.registry)
