"""Playback into a voice channel: a never-ending, queue-backed `discord.AudioSource`.

`TranslationSource` is fed Palabra's 24 kHz mono PCM (any chunk sizes, from the event loop); it resamples
to 48 kHz stereo (bot.audio.resample) and hands discord.py's AudioPlayer thread one 20 ms frame per
`read()` — silence when the queue is empty, never b'' (which would end playback).

Optional floor audio: the original speakers (48 kHz stereo 20 ms frames) mixed under the translation
at `floor_base_volume`, ducked to `floor_ducked_volume` while translation plays, with per-sample gain
ramps (`attack_s` down, `release_s` back up after `hold_s` of no translation) so nothing clicks.

Sending: `play(vc, source)` attaches the source to the process-wide `PlaybackClock` instead of
discord.py's AudioPlayer (one thread per voice client, encoding silence 50 times a second). The clock's
few sender threads tick every attached speaker on one monotonic 20 ms schedule; a frame is Opus-encoded
(ctypes: the GIL is released, so the threads encode on both cores) only when there is something audible.
After speech the speaker sends five Opus silence frames and then nothing, as Discord clients do; the
next translated frame goes out on the next tick with the RTP clock advanced over the pause, so the first
syllable is neither delayed nor clipped.

Opus settings, chosen with `python -m bot bench --opus-sweep` (the README's Performance section has the
table): "audio" (CELT), 64 kb/s, in-band FEC at 10 % expected loss, complexity 1. Complexity 1 keeps the
waveform correlation of decoded speech within 0.0002 of complexity 10 (0.9994 vs 0.9996) for under half
the encode cost (~100 vs ~240 us per frame), and encoding is most of what a playing speaker costs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import discord
import numpy as np

from bot.audio import opus
from bot.audio.frames import FRAME_BYTES, FRAME_S, SILENT_FRAME, FrameAssembler, as_samples, saturate
from bot.audio.resample import palabra_to_discord
from bot.voice import adapter
from bot.voice.playback_clock import Outlet, PlaybackClock, shared_clock

log = logging.getLogger(__name__)

OPUS_SETTINGS: dict[str, Any] = {
    "application": "audio",
    "bitrate": 64,
    "fec": True,
    "expected_packet_loss": 0.10,
    "signal_type": "auto",
}
OPUS_COMPLEXITY = 1  # not a discord.py Encoder setting: our encoder (PlaybackClock) sets it
MAX_QUEUE_SECONDS = 60.0  # translation is never dropped below this; beyond it the oldest goes (counted)
FLOOR_QUEUE_FRAMES = 10  # 200 ms: floor audio is live; a backlog would only add delay
SPURT_START_FRAMES = 3  # a talk spurt starts with 60 ms queued, or after waiting 60 ms at most


def ensure_discord_opus() -> None:
    """discord.py encodes with its own libopus binding; point it at the same library we load."""
    if not discord.opus.is_loaded():
        discord.opus.load_opus(opus.library_path())


class GainRamp:
    """A gain that moves toward its target linearly in time, applied per sample (no zipper noise)."""

    def __init__(self, value: float, rate: int = 48_000) -> None:
        self.value = value
        self.rate = rate

    def apply(self, samples: np.ndarray, target: float, ramp_s: float) -> np.ndarray:
        """Scale interleaved stereo int16 `samples`, moving toward `target` at 1.0 per `ramp_s`."""
        stereo = samples.reshape(-1, 2).astype(np.float32)
        if self.value == target:  # the steady state: one scalar, no per-sample ramp to build
            return stereo * np.float32(target)
        step = 1.0 / max(1.0, ramp_s * self.rate)
        direction = 1.0 if target > self.value else -1.0
        gains = self.value + direction * step * np.arange(1, len(stereo) + 1, dtype=np.float32)
        gains = np.minimum(gains, target) if direction > 0 else np.maximum(gains, target)
        self.value = float(gains[-1])
        ramped: np.ndarray = stereo * gains[:, None]
        return ramped


class TranslationSource(discord.AudioSource):
    def __init__(
        self,
        *,
        floor_base_volume: float = 0.0,
        floor_ducked_volume: float = 0.0,
        attack_s: float = 0.08,
        release_s: float = 0.4,
        hold_s: float = 0.3,
        max_queue_s: float = MAX_QUEUE_SECONDS,
        resample_quality: str = "HQ",
    ) -> None:
        for name, value in (("floor_base_volume", floor_base_volume), ("floor_ducked_volume", floor_ducked_volume)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        self.floor_base_volume = floor_base_volume
        self.floor_ducked_volume = floor_ducked_volume
        self.attack_s, self.release_s, self.hold_frames = attack_s, release_s, max(0, round(hold_s / FRAME_S))
        self._resampler = palabra_to_discord(resample_quality)
        self._assembler = FrameAssembler(FRAME_BYTES)
        self._queue: deque[bytes] = deque()
        self._floor: deque[bytes] = deque(maxlen=FLOOR_QUEUE_FRAMES)
        self._max_frames = max(1, round(max_queue_s / FRAME_S))
        self._lock = threading.Lock()
        self._floor_gain = GainRamp(floor_base_volume)
        self._since_translation = self.hold_frames + 1
        self.frames_played = 0
        self.translation_frames = 0
        self.dropped_frames = 0
        self.closed = False
        self._utterance_complete = False  # end_utterance since the last feed: all of it is queued
        self.on_audio: Callable[[], None] | None = None  # called when audio is queued into an empty queue

    # ---- producers (event loop) --------------------------------------------------------------------
    def feed(self, pcm_24k_mono: bytes) -> None:
        """Queue translated speech (s16le, 24 kHz mono, any length)."""
        self._utterance_complete = False
        self._enqueue(self._assembler.feed(self._resampler.process(pcm_24k_mono)))

    def end_utterance(self) -> None:
        """The current utterance is complete: release the resampler's look-ahead and the partial frame."""
        tail = self._resampler.flush()
        frames = self._assembler.feed(tail)
        last = self._assembler.flush(pad=True)
        self._utterance_complete = True
        self._enqueue(frames + ([last] if last else []))
        self._resampler = palabra_to_discord(self._resampler.quality)

    def spurt_ready(self, waited_ticks: int) -> bool:
        """Whether a talk spurt may start now (the sender asks between spurts): SPURT_START_FRAMES queued,
        or the whole utterance, or it has waited that many ticks. A translation whose first chunk is tiny
        then does not start on 20 ms and stutter when the next chunk is a moment late."""
        with self._lock:
            queued = len(self._queue)
        return (
            queued == 0
            or queued >= SPURT_START_FRAMES
            or self._utterance_complete
            or waited_ticks >= SPURT_START_FRAMES
        )

    def feed_floor(self, frame_48k_stereo: bytes) -> None:
        """One 20 ms frame of the original speakers (already mixed), for the floor under the translation."""
        if len(frame_48k_stereo) != FRAME_BYTES:
            raise ValueError(
                f"floor frames are {FRAME_BYTES} bytes (20 ms of 48 kHz stereo), not {len(frame_48k_stereo)}"
            )
        with self._lock:
            self._floor.append(frame_48k_stereo)
        if self.on_audio is not None and self.floor_base_volume > 0 and frame_48k_stereo != SILENT_FRAME:
            self.on_audio()  # an idle sender starts sending the floor

    def clear(self) -> None:
        """Drop queued translation (e.g. the session stopped)."""
        with self._lock:
            self._queue.clear()

    def _enqueue(self, frames: list[bytes]) -> None:
        if not frames:
            return
        with self._lock:
            was_empty = not self._queue
            self._queue.extend(frames)
            while len(self._queue) > self._max_frames:
                self._queue.popleft()
                self.dropped_frames += 1
        if was_empty and self.on_audio is not None:
            self.on_audio()

    @property
    def queued_seconds(self) -> float:
        return len(self._queue) * FRAME_S

    # ---- the sender (PlaybackClock thread, or discord.py's AudioPlayer) -----------------------------
    def read(self) -> bytes:
        """discord.py's AudioSource API: always a frame (silence when there is nothing to play)."""
        return self.next_frame() or SILENT_FRAME

    def next_frame(self) -> bytes | None:
        """The next 20 ms frame to send, or None when it would be silence (nothing queued, no audible
        floor): the sender then encodes and sends nothing."""
        with self._lock:
            translation = self._queue.popleft() if self._queue else None
            floor = self._floor.popleft() if self._floor else None
        self.frames_played += 1
        if translation is not None:
            self.translation_frames += 1
            self._since_translation = 0
        else:
            self._since_translation += 1
        if floor is None or (self.floor_base_volume == 0.0 and self._floor_gain.value == 0.0):
            return translation
        if translation is None and floor == SILENT_FRAME:  # a memcmp: nobody is speaking on the floor
            return None
        return self._mix(translation, floor)

    def _mix(self, translation: bytes | None, floor: bytes) -> bytes:
        ducking = self._since_translation <= self.hold_frames
        target = self.floor_ducked_volume if ducking else self.floor_base_volume
        ramp = self.attack_s if target < self._floor_gain.value else self.release_s
        mixed = self._floor_gain.apply(as_samples(floor), target, ramp)
        if translation is not None:
            mixed += as_samples(translation, 2)
        return saturate(mixed).tobytes()

    def is_opus(self) -> bool:
        return False

    def cleanup(self) -> None:
        self.closed = True


# ---- sending ------------------------------------------------------------------------------------------
_outlets: dict[int, Outlet] = {}  # id(voice client) -> its outlet (one source per connection)


async def play(vc: discord.VoiceClient, source: TranslationSource, clock: PlaybackClock | None = None) -> Outlet:
    """Play `source` into `vc` on the shared playback clock (replacing what played there before)."""
    stop(vc)
    loop = vc.loop

    def speak_again() -> None:  # from a sender thread, after a voice reconnect
        asyncio.run_coroutine_threadsafe(vc.ws.speak(discord.SpeakingState.voice), loop)

    # Discord forwards a client's audio (and maps its SSRC for the others) after op 5 SPEAKING.
    await vc.ws.speak(discord.SpeakingState.voice)
    outlet = Outlet(vc, source, on_reconnected=speak_again, media_ready=lambda: adapter.media_ready(vc))
    outlet = (clock or shared_clock()).attach(outlet)
    _outlets[id(vc)] = outlet
    return outlet


def stop(vc: object) -> None:
    """Stop whatever `play` started on `vc` (no-op if nothing). The source stays usable: a lease that
    rejoins after a kick plays the same source into its new connection."""
    outlet = _outlets.pop(id(vc), None)
    if outlet is not None:
        outlet.detached = True


def is_playing(vc: object) -> bool:
    outlet = _outlets.get(id(vc))
    return outlet is not None and not outlet.detached
