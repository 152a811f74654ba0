"""Speaker bots: extra `discord.AutoShardedClient`s (SPEAKER_TOKENS) in the main client's event loop, leased per
guild + language to play one translated stream into one voice channel.

One account can sit in one voice channel per guild, so a speaker serves at most one language per guild
(but may serve several guilds at once). A speaker is only ever sent into a channel of a guild it is a
member of: `Lease.play` checks the channel against the speaker's own cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import discord

from bot.voice import playback
from bot.voice.errors import VoiceError
from bot.voice.playback import OPUS_SETTINGS, TranslationSource, ensure_discord_opus

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0
CONNECT_TIMEOUT = 30.0


class SpeakerError(VoiceError):
    """A speaker cannot do what was asked; the message says why (never contains a token)."""


def speaker_intents() -> discord.Intents:
    """Guilds (to know where it may go) and voice states (discord.py's voice connect needs them)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.voice_states = True
    return intents


@dataclass(eq=False)
class Lease:
    speaker: discord.Client
    guild_id: int
    language: str
    voice_client: discord.VoiceClient | None = None
    source: discord.AudioSource | None = None
    _pool: SpeakerPool | None = field(default=None, repr=False)

    @property
    def speaker_id(self) -> int | None:
        return self.speaker.user.id if self.speaker.user else None

    async def play(self, channel_id: int, source: discord.AudioSource) -> discord.VoiceClient:
        """Join `channel_id` (a voice channel of the leased guild) and play `source` there."""
        channel = self.speaker.get_channel(channel_id)
        if channel is None or getattr(channel, "guild", None) is None or channel.guild.id != self.guild_id:
            raise SpeakerError(
                f"speaker {self.speaker_id} cannot see channel {channel_id} in guild {self.guild_id}; "
                "it only joins voice channels of guilds it is a member of"
            )
        if not isinstance(channel, (discord.VoiceChannel, discord.StageChannel)):
            raise SpeakerError(f"channel {channel_id} is not a voice channel")
        ensure_discord_opus()
        current = channel.guild.voice_client
        if isinstance(current, discord.VoiceClient) and current.is_connected():
            if current.channel.id != channel_id:
                await current.move_to(channel)
            vc = current
        else:
            vc = await channel.connect(timeout=CONNECT_TIMEOUT, reconnect=True, self_deaf=True)
        if vc.is_playing():
            vc.stop()
        if isinstance(source, TranslationSource):
            await playback.play(vc, source)  # the shared 20 ms clock: nothing encoded or sent for silence
        else:
            vc.play(source, **OPUS_SETTINGS)
        self.voice_client, self.source = vc, source
        return vc

    async def release(self) -> None:
        if self._pool is not None:
            await self._pool.release(self)


class SpeakerPool:
    """Free speakers per guild; `lease()` picks one that is in the guild and not busy there."""

    def __init__(self, speakers: Sequence[discord.Client] = ()) -> None:
        self.speakers: list[discord.Client] = list(speakers)
        self._leases: dict[tuple[int, int], Lease] = {}  # (speaker user id, guild id) -> lease
        self._lock = asyncio.Lock()
        # Set by start_speakers, for `/setup check`: tokens still logging in, and those that never did.
        self.logging_in = 0
        self.failed_logins = 0

    def add(self, speaker: discord.Client) -> None:
        self.speakers.append(speaker)

    def leases(self, guild_id: int | None = None) -> list[Lease]:
        return [lease for lease in self._leases.values() if guild_id is None or lease.guild_id == guild_id]

    def available(self, guild_id: int) -> list[discord.Client]:
        """Ready speakers that are members of the guild and hold no lease there."""
        return [
            s
            for s in self.speakers
            if s.is_ready()
            and s.user is not None
            and s.get_guild(guild_id) is not None
            and (s.user.id, guild_id) not in self._leases
        ]

    async def lease(self, guild_id: int, language: str) -> Lease | None:
        """A speaker for this guild + language (the same one if already leased), or None if none is free."""
        async with self._lock:
            for lease in self.leases(guild_id):
                if lease.language == language:
                    return lease
            free = self.available(guild_id)
            if not free:
                return None
            speaker = free[0]
            lease = Lease(speaker, guild_id, language, _pool=self)
            self._leases[(speaker.user.id, guild_id)] = lease  # type: ignore[union-attr]
            log.info("speaker %s leased for guild %s language %s", speaker.user.id, guild_id, language)  # type: ignore[union-attr]
            return lease

    async def release(self, lease: Lease) -> None:
        """Stop playing, leave the channel, and make the speaker free for this guild again."""
        async with self._lock:
            key = (lease.speaker_id, lease.guild_id)
            if self._leases.get(key) is lease:  # type: ignore[arg-type]
                del self._leases[key]  # type: ignore[arg-type]
        vc, lease.voice_client = lease.voice_client, None
        if vc is not None:
            try:
                playback.stop(vc)
                if vc.is_playing():
                    vc.stop()
                await vc.disconnect(force=True)
            except Exception:
                log.exception("speaker %s: leaving the voice channel failed", lease.speaker_id)


async def start_speakers(
    tokens: Sequence[str],
    pool: SpeakerPool,
    *,
    ready_timeout: float = READY_TIMEOUT,
    client_kwargs: dict | None = None,
) -> list[asyncio.Task[None]]:
    """Log each speaker token in (in this event loop, with discord.py already pointed at its Discord) and
    add those that become ready to `pool`.

    Returns the clients' `start()` tasks (cancel/close them on shutdown). A speaker that fails to log
    in is reported and left out; the others still serve.
    """
    # Sharded like the listener (the caller passes shard_ids and shard_count): a guild's speakers
    # then live in the process that holds its listener.
    clients = [discord.AutoShardedClient(intents=speaker_intents(), **(client_kwargs or {})) for _ in tokens]
    pool.logging_in += len(clients)
    tasks = [
        asyncio.create_task(client.start(token), name=f"speaker-{index}")
        for index, (client, token) in enumerate(zip(clients, tokens, strict=False))
    ]
    for index, (client, task) in enumerate(zip(clients, tasks, strict=False)):
        ready = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait({ready, task}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED)
        pool.logging_in -= 1
        if ready in done:
            pool.add(client)
            continue
        ready.cancel()
        pool.failed_logins += 1
        reason = _failure_reason(task) if task in done else "timed out"
        log.error("speaker bot #%d did not become ready (%s); continuing without it", index + 1, reason)
    return tasks


def _failure_reason(task: asyncio.Task[None]) -> str:
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    # The exception's class only: discord.py's login errors never carry the token, but be sure.
    return type(error).__name__ if error else "stopped"


async def stop_speakers(pool: SpeakerPool, tasks: Sequence[asyncio.Task[None]]) -> None:
    for lease in pool.leases():
        await pool.release(lease)
    for client in pool.speakers:
        await client.close()
    for task in tasks:
        if not task.done():
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
