"""Helpers for tests of the product's receiver against the fake Discord: a listener connected with
`ListeningVoiceClient` (or a subclass), a collector that timestamps what it hears, and the measure
the fault table reports: how long the listener heard nothing of a continuous speaker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bot.voice import adapter
from bot.voice.jitter import SpeakingChanged, UserFrame
from bot.voice.receiver import ListeningVoiceClient, ReceiverEvent, VoiceReceiver
from tests.fakes import secrets
from tests.fakes.audio import found_in, mono
from tests.fakes.discord.clients import running_clients
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.discord.users import FakeUser
from tests.fakes.waiting import wait_until

wait_for = wait_until  # the name the voice tests import

HEARD = ("audio", "fec")  # frames made from received packets (not concealment or filled silence)


class Collector:
    """Gathers a receiver's frames per user with the loop time each was delivered, and its events."""

    def __init__(self, receiver: VoiceReceiver) -> None:
        self.frames: dict[int, list[UserFrame]] = defaultdict(list)
        self.arrivals: dict[int, list[float]] = defaultdict(list)
        self.events: list[ReceiverEvent] = []
        self._tasks = [asyncio.create_task(self._frames(receiver)), asyncio.create_task(self._events(receiver))]

    async def _frames(self, receiver: VoiceReceiver) -> None:
        loop = asyncio.get_running_loop()
        async for frame in receiver.frames():
            self.frames[frame.user_id].append(frame)
            self.arrivals[frame.user_id].append(loop.time())

    async def _events(self, receiver: VoiceReceiver) -> None:
        async for event in receiver.events():
            self.events.append(event)

    def heard_times(self, user_id: int) -> list[tuple[float, UserFrame]]:
        return [(t, f) for t, f in zip(self.arrivals[user_id], self.frames[user_id], strict=True) if f.kind in HEARD]

    def heard_since(self, user_id: int, since: float) -> bytes:
        return b"".join(f.pcm for t, f in self.heard_times(user_id) if t >= since)

    def by_sequence(self, user_id: int) -> bytes:
        """Each frame decoded from a packet, placed at that packet's index in what the sender sent (its
        RTP sequence number), zeros where nothing was received: what she said, where she said it. The
        jitter buffer's slots may not line up with that under load (silence filled on the wall clock
        while packets were delayed, the delayed packets played after it), which says nothing about
        whether the right audio was received and decoded."""
        frames = [f for f in self.frames[user_id] if f.kind == "audio" and f.sequence is not None]
        if not frames:
            return b""
        first = min(f.sequence for f in frames)
        timeline = bytearray((max(f.sequence for f in frames) - first + 1) * len(frames[0].pcm))
        for frame in frames:
            at = (frame.sequence - first) * len(frame.pcm)
            timeline[at : at + len(frame.pcm)] = frame.pcm
        return bytes(timeline)

    def audio(self, user_id: int, start: int = 0) -> bytes:
        """The decoded (and FEC/PLC-recovered) frames from frame `start` on, without silence filled in on
        the wall clock: a scheduling hiccup of the shared test loop inserts such silence, which says
        nothing about whether the packets were received and decoded right."""
        frames = self.frames[user_id][start:]
        fills = sum(f.kind == "silence" for f in frames)
        assert fills <= 40, f"{fills} silence frames filled in {len(frames)}"
        return b"".join(f.pcm for f in frames if f.kind != "silence")

    def spurts_ended(self, user_id: int) -> int:
        """Talk spurts of this user the receiver has closed: every frame of one is out before it ends."""
        return self.events.count(SpeakingChanged(user_id, False))

    async def wait_heard(self, *users: FakeUser, ended_before: int = 0) -> None:
        """Until each user's current talk spurt has ended at the receiver (no sleep guessing how long)."""
        for user in users:
            await wait_until(lambda u=user: self.spurts_ended(u.id) > ended_before, what=f"{user.name}'s talk to end")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def appears_in(sent_pcm: bytes, heard_pcm: bytes, seconds: float = 2.0) -> float:
    """How well the first `seconds` of `heard_pcm` (48 kHz stereo) match stretches of `sent_pcm`: the
    median of its pieces' normalised correlations (`found_in`), 1.0 = an exact (delayed) copy, even
    with a jitter hold in it; 0.0 if less was heard."""
    heard = mono(heard_pcm, 2)[: int(seconds * 48000)]
    if len(heard) < int(seconds * 48000):
        return 0.0
    return found_in(mono(sent_pcm, 2), heard, 48000)


@dataclass(frozen=True)
class Outage:
    """The longest stretch without a heard frame around a fault, and where hearing resumed."""

    seconds: float
    resumed_at: float | None  # loop time of the first heard frame after the gap (None: never again)


def outage_after(collector: Collector, user_id: int, fault_at: float, until: float) -> Outage:
    """Longest gap between heard frames of `user_id` that ends after `fault_at` (a speaker who talks
    without pause is heard every 20 ms, so this is the time the fault took away)."""
    times = [t for t, _ in collector.heard_times(user_id) if t >= fault_at - 1.0]
    before = [t for t in times if t <= fault_at]
    after = [t for t in times if t > fault_at]
    if not after:
        return Outage(until - fault_at, None)
    previous = before[-1] if before else fault_at
    longest, resumed = after[0] - previous, after[0]
    for a, b in itertools.pairwise(after):
        if b - a > longest:
            longest, resumed = b - a, b
    return Outage(longest, resumed)


def dave_ready(vc: ListeningVoiceClient, members: int) -> bool:
    session, version = adapter.dave_state(vc)
    return version > 0 and session is not None and session.ready and len(session.get_user_ids()) == members


@contextlib.asynccontextmanager
async def listener_in(
    fake: FakeDiscord, channel_name: str, cls: type[ListeningVoiceClient] = ListeningVoiceClient
) -> AsyncIterator[tuple[ListeningVoiceClient, Collector]]:
    """The product's listener (first bot token) connected to `channel_name`, with a Collector."""
    async with running_clients(fake, [secrets.DISCORD_TOKEN]) as [client]:
        channel = client.get_channel(fake.channel(channel_name).id)
        vc = await channel.connect(cls=cls, timeout=20, reconnect=True)
        collector = Collector(vc.receiver)
        try:
            yield vc, collector
        finally:
            await collector.close()
