"""Fakes of what a `LiveSession` talks to, in the shapes of bot.interpretation.ports: the listener's voice
connection (frames pushed in by the test), the Palabra stream (events pushed in, audio recorded), a
playback, a transcript store and a message sink that record what they were given."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace

from bot.interpretation.store import StoreEntry
from bot.palabra import protocol as p
from bot.voice.jitter import UserFrame

FRAME_BYTES = 3840  # 20 ms of 48 kHz stereo s16le


def member(user_id: int, *, bot: bool = False, name: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(id=user_id, bot=bot, display_name=name or f"Member {user_id}", voice=None)


class FakeGuild:
    def __init__(self, guild_id: int = 1, members: list[SimpleNamespace] = (), me_id: int = 999) -> None:
        self.id = guild_id
        self.members = {m.id: m for m in members}
        self.me = member(me_id, bot=True, name="listener")
        self.members[me_id] = self.me

    def get_member(self, user_id: int) -> SimpleNamespace | None:
        return self.members.get(user_id)


@dataclass
class FakeChannel:
    id: int
    guild: FakeGuild
    voice_states: dict[int, object] = field(default_factory=dict)


class FakeReceiver:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[UserFrame | None] = asyncio.Queue()
        self.counters: dict[str, object] = {"packets": 0, "transport_failures": 0, "dave_failures": 0}

    def push(self, user_id: int, pcm: bytes, tick: int = 0) -> None:
        self.queue.put_nowait(UserFrame(user_id, pcm, tick, tick * 960, tick, "audio"))

    async def frames(self) -> AsyncIterator[UserFrame]:
        while (frame := await self.queue.get()) is not None:
            yield frame

    def stats(self) -> dict[str, object]:
        return dict(self.counters)


class FakeListenerVoice:
    def __init__(self, guild: FakeGuild, channel: FakeChannel) -> None:
        self.guild, self.channel = guild, channel
        self.receiver = FakeReceiver()
        self.connected = True
        self.guild.me.voice = SimpleNamespace(channel=channel)

    def is_connected(self) -> bool:
        return self.connected

    def is_playing(self) -> bool:
        return False

    def stop(self) -> None:
        pass

    async def disconnect(self, *, force: bool = False) -> None:
        self.connected = False


class FakeStream:
    """Audio sent is kept in `sent`; events the test pushes come out of iteration; `fail(exc)` makes the
    iteration raise, `finish()` ends it."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self.ended = self.closed = False
        self._events: asyncio.Queue[p.Event | BaseException | None] = asyncio.Queue()

    def push(self, event: p.Event) -> None:
        self._events.put_nowait(event)

    def fail(self, error: BaseException) -> None:
        self._events.put_nowait(error)

    def finish(self) -> None:
        self._events.put_nowait(None)

    async def send_audio(self, pcm: bytes) -> None:
        self.sent.extend(pcm)

    idle_paused = False  # this fake never pauses

    def idle_paused_s(self) -> float:
        return 0.0

    async def end(self, timeout: float = 30.0) -> None:
        self.ended = True
        self.finish()

    async def close(self) -> None:
        self.closed = True
        self.finish()

    async def __aiter__(self) -> AsyncIterator[p.Event]:
        while (item := await self._events.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item


class FakePlayback:
    def __init__(self) -> None:
        self.fed = bytearray()
        self.floor = bytearray()
        self.utterances_ended = 0
        self.frames_played = 0

    def feed(self, pcm_24k_mono: bytes) -> None:
        self.fed.extend(pcm_24k_mono)

    def end_utterance(self) -> None:
        self.utterances_ended += 1

    def feed_floor(self, frame_48k_stereo: bytes) -> None:
        self.floor.extend(frame_48k_stereo)

    @property
    def queued_seconds(self) -> float:
        return 0.0


class RecordingStore:
    """A TranscriptStore stand-in keeping the entries it is given."""

    def __init__(self) -> None:
        self.entries: list[StoreEntry] = []
        self.started = self.closed = self.aborted = False

    def start(self) -> None:
        self.started = True

    def add(self, entry: StoreEntry) -> None:
        self.entries.append(entry)

    async def close(self, timeout: float) -> None:
        self.closed = True

    async def abort(self) -> None:
        self.aborted = True


class RecordingSink:
    """A transcript MessageSink keeping every send, edit and delete."""

    def __init__(self) -> None:
        self.messages: dict[int, str] = {}
        self.next_id = 100

    async def send(self, speaker: object, content: str) -> int:
        self.next_id += 1
        self.messages[self.next_id] = content
        return self.next_id

    async def edit(self, message_id: int, content: str) -> None:
        self.messages[message_id] = content

    async def delete(self, message_id: int) -> None:
        self.messages.pop(message_id, None)
