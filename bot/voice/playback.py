"""Playback into a voice channel: a never-ending, queue-backed `discord.AudioSource`.

`TranslationSource` is fed Palabra's 24 kHz mono PCM (any chunk sizes, from the event loop); it resamples
to 48 kHz stereo (bot.audio.resample) and hands discord.py's AudioPlayer thread one 20 ms frame per
`read()` — silence when the queue is empty, never b'' (which would end playback).

Optional floor audio: the original speakers (48 kHz stereo 20 ms frames) mixed under the translation
at `floor_base_volume`, ducked to `floor_ducked_volume` while translation plays, with per-sample gain
ramps (`attack_s` down, `release_s` back up after `hold_s` of no translation) so nothing clicks.

Opus settings (`OPUS_SETTINGS`, passed to `VoiceClient.play`): measured on speech (48 kHz stereo,
libopus 1.6, 20 ms frames; waveform correlation of decoded vs original, encode cost per frame):

    application  kb/s   corr     encode        application  kb/s   corr     encode
    voip          32    0.969    ~410 us       audio         32    0.990    ~700 us
    voip          64    0.973    ~400 us       audio         64    0.995    ~350 us
    voip         128    0.974    ~550 us       audio        128    0.996    ~350 us

"audio" (CELT) keeps the waveform far better than "voip" (SILK/hybrid) at no extra CPU; above 64 kb/s
nothing is gained for speech that Palabra synthesises at 24 kHz. So: "audio", 64 kb/s (half of
discord.py's default 128), in-band FEC on with 10 % expected loss.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

import discord
import numpy as np

from bot.audio import opus
from bot.audio.frames import FRAME_BYTES, FRAME_S, SILENT_FRAME, FrameAssembler, as_samples, saturate
from bot.audio.resample import palabra_to_discord

log = logging.getLogger(__name__)

OPUS_SETTINGS: dict[str, Any] = {
    "application": "audio",
    "bitrate": 64,
    "fec": True,
    "expected_packet_loss": 0.10,
    "signal_type": "auto",
}
MAX_QUEUE_SECONDS = 60.0  # translation is never dropped below this; beyond it the oldest goes (counted)
FLOOR_QUEUE_FRAMES = 10  # 200 ms: floor audio is live; a backlog would only add delay


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
        return stereo * gains[:, None]


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

    # ---- producers (event loop) --------------------------------------------------------------------
    def feed(self, pcm_24k_mono: bytes) -> None:
        """Queue translated speech (s16le, 24 kHz mono, any length)."""
        self._enqueue(self._assembler.feed(self._resampler.process(pcm_24k_mono)))

    def end_utterance(self) -> None:
        """The current utterance is complete: release the resampler's look-ahead and the partial frame."""
        tail = self._resampler.flush()
        frames = self._assembler.feed(tail)
        last = self._assembler.flush(pad=True)
        self._enqueue(frames + ([last] if last else []))
        self._resampler = palabra_to_discord(self._resampler.quality)

    def feed_floor(self, frame_48k_stereo: bytes) -> None:
        """One 20 ms frame of the original speakers (already mixed), for the floor under the translation."""
        if len(frame_48k_stereo) != FRAME_BYTES:
            raise ValueError(
                f"floor frames are {FRAME_BYTES} bytes (20 ms of 48 kHz stereo), not {len(frame_48k_stereo)}"
            )
        with self._lock:
            self._floor.append(frame_48k_stereo)

    def clear(self) -> None:
        """Drop queued translation (e.g. the session stopped)."""
        with self._lock:
            self._queue.clear()

    def _enqueue(self, frames: list[bytes]) -> None:
        if not frames:
            return
        with self._lock:
            self._queue.extend(frames)
            while len(self._queue) > self._max_frames:
                self._queue.popleft()
                self.dropped_frames += 1

    @property
    def queued_seconds(self) -> float:
        return len(self._queue) * FRAME_S

    # ---- discord.py AudioPlayer thread -------------------------------------------------------------
    def read(self) -> bytes:
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
            return translation or SILENT_FRAME
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
