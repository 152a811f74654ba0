"""Where the live session meets the layers around it, as `typing.Protocol`s: the listener's voice
connection (bot.voice.receiver.ListeningVoiceClient), the Palabra stream
(bot.palabra.streaming.StreamingSession) and a language's playback (bot.voice.playback.TranslationSource).
The session depends on these shapes only; tests drive it with fakes of the same shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import discord
from discord.channel import VocalGuildChannel

from bot.palabra import protocol as p
from bot.voice.jitter import UserFrame


class FrameSource(Protocol):
    def frames(self) -> AsyncIterator[UserFrame]: ...

    def stats(self) -> Mapping[str, object]: ...


class ListenerVoice(Protocol):
    @property
    def receiver(self) -> FrameSource: ...

    @property
    def guild(self) -> discord.Guild: ...

    @property
    def channel(self) -> VocalGuildChannel: ...

    def is_connected(self) -> bool: ...

    def is_playing(self) -> bool: ...

    def stop(self) -> None: ...

    async def disconnect(self, *, force: bool = False) -> None: ...


class TranslationStream(Protocol):
    async def send_audio(self, pcm: bytes) -> None: ...

    @property
    def idle_paused(self) -> bool: ...

    def idle_paused_s(self) -> float: ...

    async def end(self, timeout: float = 30.0) -> None: ...

    async def close(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[p.Event]: ...


class Playback(Protocol):
    def feed(self, pcm_24k_mono: bytes) -> None: ...

    def end_utterance(self) -> None: ...

    def feed_floor(self, frame_48k_stereo: bytes) -> None: ...

    @property
    def queued_seconds(self) -> float: ...

    @property
    def frames_played(self) -> int: ...
