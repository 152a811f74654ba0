"""Speaker bots: extra `discord.AutoShardedClient`s (SPEAKER_TOKENS) in the main client's event loop, leased per
guild + language to play one translated stream into one voice channel.

One account can sit in one voice channel per guild, so a speaker serves at most one language per guild
(but may serve several guilds at once). A speaker is only ever sent into a channel of a guild it is a
member of: `Lease.play` checks the channel against the speaker's own cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.tasks import cancel_and_wait
from bot.voice import adapter, playback
from bot.voice.errors import VoiceError
from bot.voice.playback import OPUS_SETTINGS, TranslationSource, ensure_discord_opus

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0
CONNECT_TIMEOUT = 30.0
LEAVE_TIMEOUT = 2.0
DEAD_LEAVE_TIMEOUT = 0.3
SETTLE_TIMEOUT = 2.0  # a voice connection in the middle of a reconnect
LEFT_CONFIRM_TIMEOUT = 1.0  # after a bounded leave, how long a join waits for Discord to say we are out


class SpeakerVoiceClient(discord.VoiceClient):
    """A speaker's voice connection with the listener's connection repairs (bot.voice.adapter): a voice
    resume that stalls becomes a fresh connection within `resume_grace_s`, instead of the speaker being
    silent for discord.py's whole connect timeout; reconnects do not stall in IP discovery."""

    resume_grace_s: float = adapter.RESUME_GRACE_S

    def create_connection_state(self) -> adapter.ConnectionState:
        return adapter.connection_state_with_hook(self, _ignore_voice_message, resume_grace_s=self.resume_grace_s)


async def _ignore_voice_message(_ws: object, _message: dict[str, Any]) -> None:
    """A speaker only sends: the voice-gateway messages it receives need nothing from us."""


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
    channel_id: int | None = None  # where it plays (set by `play`)
    _pool: SpeakerPool | None = field(default=None, repr=False)

    @property
    def speaker_id(self) -> int | None:
        return self.speaker.user.id if self.speaker.user else None

    def where(self) -> int | None:
        """The voice channel the speaker is in now by its own gateway cache (None: in none, or its voice
        connection is down); a kick or a moderator's move shows here."""
        return self.placed_in() if self.connected else None

    def placed_in(self) -> int | None:
        """The voice channel Discord has the speaker in (its voice state), connected or not: still the
        leased channel while discord.py resumes or reconnects a dropped voice connection."""
        guild = self.speaker.get_guild(self.guild_id)
        me = guild.me if guild is not None else None
        state = me.voice if me is not None else None
        return state.channel.id if state is not None and state.channel is not None else None

    @property
    def connected(self) -> bool:
        guild = self.speaker.get_guild(self.guild_id)
        vc = guild.voice_client if guild is not None else None
        return isinstance(vc, discord.VoiceClient) and vc.is_connected()

    @property
    def healthy(self) -> bool:
        return self.channel_id is not None and self.where() == self.channel_id

    async def play(
        self, channel_id: int, source: discord.AudioSource, *, settle_s: float = SETTLE_TIMEOUT
    ) -> discord.VoiceClient:
        """Join `channel_id` (a voice channel of the leased guild) and play `source` there; a current
        connection in the middle of a reconnect is given `settle_s` to finish it."""
        channel = self.speaker.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        if channel is None or guild is None or guild.id != self.guild_id:
            raise SpeakerError(
                f"speaker {self.speaker_id} cannot see channel {channel_id} in guild {self.guild_id}; "
                "it only joins voice channels of guilds it is a member of"
            )
        if not isinstance(channel, (discord.VoiceChannel, discord.StageChannel)):
            raise SpeakerError(f"channel {channel_id} is not a voice channel")
        ensure_discord_opus()
        try:
            vc = await self._connection_in(channel, settle_s)
            if vc.is_playing():
                vc.stop()
            if isinstance(source, TranslationSource):
                await playback.play(vc, source)  # the shared 20 ms clock: nothing encoded or sent for silence
            else:
                vc.play(source, **OPUS_SETTINGS)
        except BaseException:
            # Cut short (a timeout, a stop cancelling the move, an error after the connect): a connection
            # made here is not the lease's yet, so nothing else would ever take the bot out of the channel.
            stray = channel.guild.voice_client
            if stray is not None and stray is not self.voice_client:
                await asyncio.shield(leave(stray))
            raise
        self.voice_client, self.source, self.channel_id = vc, source, channel_id
        return vc

    async def _connection_in(
        self, channel: discord.VoiceChannel | discord.StageChannel, settle_s: float
    ) -> discord.VoiceClient:
        """A connected voice client in `channel`: the current one if it is there, else a new one."""
        current = channel.guild.voice_client
        if isinstance(current, discord.VoiceClient):
            await _until(current.is_connected, settle_s)
            if current.is_connected() and current.channel.id == channel.id:
                return current
        if channel.guild.voice_client is not None:
            # Dead (kicked, dropped) or elsewhere (moved): leave and join afresh. discord.py's move_to
            # waits for a handshake it never drives when the move follows a moderator's move.
            await leave(channel.guild.voice_client)
            # The leave is bounded and discord.py's disconnect may still send its op 4 (no channel) after
            # that: joining first would let that late op 4 take the bot out again mid-handshake.
            await _until(lambda: _out_of_voice(channel.guild), LEFT_CONFIRM_TIMEOUT)
        return await channel.connect(cls=SpeakerVoiceClient, timeout=CONNECT_TIMEOUT, reconnect=True, self_deaf=True)

    async def rejoin(self) -> discord.VoiceClient:
        """Back into its channel with the same source (after a kick, a dropped connection or a move), at
        once: the caller has already given a reconnect its time."""
        if self.channel_id is None or self.source is None:
            raise SpeakerError(f"speaker {self.speaker_id} was never playing, so it cannot rejoin")
        return await self.play(self.channel_id, self.source, settle_s=0.0)

    async def release(self) -> None:
        if self._pool is not None:
            await self._pool.release(self)


def _out_of_voice(guild: discord.Guild) -> bool:
    me = guild.me
    return me is None or me.voice is None or me.voice.channel is None


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll (discord.py exposes its voice connection's state, not an event for it) until true or timed out."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def leave(vc: discord.VoiceClient | discord.VoiceProtocol, timeout: float = LEAVE_TIMEOUT) -> None:
    """Stop playing and leave, bounded: discord.py waits up to 30 s for Discord to confirm a leave, and
    Discord sends nothing when the connection was already dropped (a kick, a dead voice server)."""
    if isinstance(vc, discord.VoiceClient) and not vc.is_connected():
        timeout = min(timeout, DEAD_LEAVE_TIMEOUT)  # nothing to confirm: just let discord.py clean up
    playback.stop(vc)  # whatever the shared playback clock was sending into it
    try:
        if isinstance(vc, discord.VoiceClient) and vc.is_playing():
            vc.stop()
        await asyncio.wait_for(vc.disconnect(force=True), timeout)
    except TimeoutError:
        log.info("leaving the voice channel was not confirmed within %.1f s; dropped it anyway", timeout)
    except Exception:
        log.exception("leaving the voice channel failed")
    finally:
        guild = getattr(vc.channel, "guild", None)
        if guild is not None and guild.voice_client is vc:
            vc.cleanup()  # cut short mid-disconnect: still in the client's cache, which blocks a new connect


class SpeakerPool:
    """The speaker bots, ready or still logging in; `lease()` picks one that is in the guild and not busy
    there. Subscribers (`on_available`) hear when a speaker becomes ready or is freed."""

    def __init__(self, speakers: Sequence[discord.Client] = ()) -> None:
        self.speakers: list[discord.Client] = list(speakers)
        self._starting: set[discord.Client] = set()
        self.failed_speakers: list[discord.Client] = []  # never became ready (still closed at the end)
        self._settled = asyncio.Event()
        self._settled.set()
        self._leases: dict[tuple[int, int], Lease] = {}  # (speaker user id, guild id) -> lease
        self._lock = asyncio.Lock()
        self._subscribers: list[Callable[[], None]] = []
        # For `/setup check`: tokens still logging in, and those that never did.
        self.logging_in = 0
        self.failed_logins = 0

    def add(self, speaker: discord.Client) -> None:
        """A speaker that is ready (or will be: see `starting`)."""
        if speaker not in self.speakers:
            self.speakers.append(speaker)
        self._notify()

    def starting(self, speaker: discord.Client) -> None:
        """A speaker whose login is under way: `lease` waits for it in `wait_settled`."""
        if speaker not in self.speakers:
            self.speakers.append(speaker)
        self._starting.add(speaker)
        self.logging_in = len(self._starting)
        self._settled.clear()

    def ready(self, speaker: discord.Client) -> None:
        self._starting.discard(speaker)
        self.logging_in = len(self._starting)
        self._update_settled()
        self._notify()

    def failed(self, speaker: discord.Client) -> None:
        self._starting.discard(speaker)
        self.logging_in = len(self._starting)
        self.failed_logins += 1
        if speaker in self.speakers:
            self.speakers.remove(speaker)
            self.failed_speakers.append(speaker)
        self._update_settled()

    @property
    def connecting(self) -> int:
        """How many speakers are still logging in."""
        return len(self._starting)

    async def wait_settled(self, timeout: float) -> bool:
        """Until no speaker is still logging in (bounded); True if none is."""
        if not self._starting:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout)
        return not self._starting

    def on_available(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` whenever a speaker becomes ready or a lease ends; returns the unsubscriber."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _update_settled(self) -> None:
        if not self._starting:
            self._settled.set()

    def _notify(self) -> None:
        for callback in list(self._subscribers):
            try:
                callback()
            except Exception:
                log.exception("a speaker-availability subscriber failed")

    def leases(self, guild_id: int | None = None) -> list[Lease]:
        return [lease for lease in self._leases.values() if guild_id is None or lease.guild_id == guild_id]

    def ready_speakers(self) -> list[discord.Client]:
        return [s for s in self.speakers if s.is_ready() and s not in self._starting]

    def available(self, guild_id: int) -> list[discord.Client]:
        """Ready speakers that are members of the guild and hold no lease there."""
        return [
            s
            for s in self.ready_speakers()
            if s.user is not None and s.get_guild(guild_id) is not None and (s.user.id, guild_id) not in self._leases
        ]

    async def lease(self, guild_id: int, language: str) -> Lease | None:
        """A speaker for this guild + language (the same one if already leased), or None if none is free."""
        async with self._lock:
            for lease in self.leases(guild_id):
                if lease.language == language:
                    return lease
            free = self.available(guild_id)
            if not free or free[0].user is None:
                return None
            speaker, speaker_id = free[0], free[0].user.id
            lease = Lease(speaker, guild_id, language, _pool=self)
            self._leases[(speaker_id, guild_id)] = lease
            log.info("speaker %s leased for guild %s language %s", speaker_id, guild_id, language)
            return lease

    async def release(self, lease: Lease) -> None:
        """Stop playing, leave the channel (bounded), and make the speaker free for this guild again."""
        vc, lease.voice_client = lease.voice_client, None
        if vc is not None:
            await leave(vc)
        async with self._lock:
            speaker_id = lease.speaker_id
            if speaker_id is not None and self._leases.get((speaker_id, lease.guild_id)) is lease:
                del self._leases[(speaker_id, lease.guild_id)]
        self._notify()


async def start_speakers(
    tokens: Sequence[str],
    pool: SpeakerPool,
    *,
    ready_timeout: float = READY_TIMEOUT,
    client_kwargs: dict[str, Any] | None = None,
) -> list[asyncio.Task[None]]:
    """Log each speaker token in (in this event loop, with discord.py already pointed at its Discord),
    all at once and without waiting: each is in `pool` as starting until it is ready (then available)
    or fails (then reported and left out; the others still serve).

    Returns the clients' tasks (give them to `stop_speakers`).
    """
    # Sharded like the listener (the caller passes shard_ids and shard_count): a guild's speakers
    # then live in the process that holds its listener.
    clients = [discord.AutoShardedClient(intents=speaker_intents(), **(client_kwargs or {})) for _ in tokens]
    tasks: list[asyncio.Task[None]] = []
    for index, (client, token) in enumerate(zip(clients, tokens, strict=False)):
        pool.starting(client)
        task = asyncio.create_task(client.start(token), name=f"speaker-{index}")
        tasks += [task, asyncio.create_task(_await_ready(pool, client, task, index, ready_timeout))]
    return tasks


async def _await_ready(
    pool: SpeakerPool, client: discord.Client, task: asyncio.Task[None], index: int, timeout: float
) -> None:
    ready = asyncio.create_task(client.wait_until_ready())
    done, _ = await asyncio.wait({ready, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if ready in done:
        log.info("speaker bot #%d is ready", index + 1)
        pool.ready(client)
        return
    ready.cancel()
    reason = _failure_reason(task) if task in done else "timed out"
    log.error("speaker bot #%d did not become ready (%s); continuing without it", index + 1, reason)
    pool.failed(client)


def _failure_reason(task: asyncio.Task[None]) -> str:
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    # The exception's class only: discord.py's login errors never carry the token, but be sure.
    return type(error).__name__ if error else "stopped"


async def stop_speakers(pool: SpeakerPool, tasks: Sequence[asyncio.Task[None]]) -> None:
    for lease in pool.leases():
        await pool.release(lease)
    for client in [*pool.speakers, *pool.failed_speakers]:
        await client.close()
    await cancel_and_wait(*tasks, log_errors=False)  # a failed login was reported when it failed
