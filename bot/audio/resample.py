"""Streaming sample-rate and channel conversion on soxr.

A `Resampler` keeps the filter state across `process()` calls, so a signal cut into 20 ms frames
comes out the same as if it were converted in one go: no clicks at frame boundaries.

Channels: stereo input is downmixed before resampling and mono output is upmixed after, so the
filter always runs on one channel (half the work).

Latency: soxr withholds output until it has a block of later input to filter it with; the output
timeline stays aligned with the input (no phase shift, same total length after `flush()`), so this
hold-back (`pending_ms`) is the whole latency the conversion adds. Measured with 20 ms input frames in
steady state (`measure_latency_ms()`; checked in tests/audio by counting output samples):
    quality  48k stereo -> 16k mono        24k mono -> 48k stereo
    "HQ"     mean 21 ms (6-37 ms)          mean 21 ms (4-38 ms)      <- default
    "LQ"     mean 11 ms (2.5-20 ms)        mean 11 ms (1-20 ms)
    "VHQ"    mean 42 ms (9-76 ms)          mean 21 ms (6-37 ms)
Output arrives in uneven bursts (soxr's block size), so consumers re-frame it (FrameAssembler).
Against Palabra's 320 ms input chunks and ~1 s utterance latency, HQ's ~21 ms is a fair price.
"""

from __future__ import annotations

import numpy as np
import soxr

from bot.audio.decimate import Decimator, session_decimator
from bot.audio.frames import (
    DISCORD,
    FRAME_MS,
    PALABRA_OUTPUT,
    PCM_DTYPE,
    SAMPLE_WIDTH,
    AudioFormat,
    downmix,
    upmix,
)

QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


class Resampler:
    """s16le PCM at (in_rate, in_channels) -> s16le PCM at (out_rate, out_channels), streaming."""

    def __init__(self, in_rate: int, in_channels: int, out_rate: int, out_channels: int, quality: str = "HQ") -> None:
        if quality not in QUALITIES:
            raise ValueError(f"quality must be one of {', '.join(QUALITIES)}, not {quality!r}")
        self.input = AudioFormat(in_rate, in_channels)
        self.output = AudioFormat(out_rate, out_channels)
        self.quality = quality
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
        self._passthrough = in_rate == out_rate
        self._partial = b""  # an incomplete sample frame carried to the next call
        self._flushed = False

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """Convert the next piece of the stream; returns what is ready (may be a little less than
        the input's duration at first: soxr's look-ahead, returned later or by `flush()`)."""
        if self._flushed:
            raise RuntimeError("the resampler was flushed; create a new one for a new stream")
        samples = self._take_whole_frames(pcm)
        if samples.size == 0:
            return b""
        mono = downmix(samples.reshape(-1, 2)) if self.input.channels == 2 else samples
        converted = mono if self._passthrough else self._stream.resample_chunk(mono)
        return self._shape_output(converted)

    def process_silence(self, frames: int) -> bytes:
        """`process` of `frames` 20 ms frames of digital silence."""
        return self.process(bytes(self.input.bytes_for(frames * FRAME_MS)))

    def flush(self) -> bytes:
        """End of stream: everything still held back (the filter's tail). Call once."""
        if self._flushed:
            return b""
        self._flushed = True
        self._partial = b""
        if self._passthrough:
            return b""
        return self._shape_output(self._stream.resample_chunk(np.zeros(0, dtype=PCM_DTYPE), last=True))

    @property
    def pending_ms(self) -> float:
        """Output withheld right now, in milliseconds: the latency the conversion adds at this point."""
        if self._passthrough:
            return 0.0
        return 1000.0 * float(self._stream.delay()) / self.output.rate

    def _take_whole_frames(self, pcm: bytes | bytearray | memoryview) -> np.ndarray:
        data = bytes(pcm)
        if self._partial:
            data = self._partial + data
        step = self.input.bytes_per_sample_frame
        cut = len(data) - len(data) % step
        self._partial = data[cut:]
        return np.frombuffer(data, dtype=PCM_DTYPE, count=cut // SAMPLE_WIDTH)

    def _shape_output(self, mono: np.ndarray) -> bytes:
        if self.output.channels == 2:
            return np.ascontiguousarray(upmix(mono)).tobytes()
        return np.ascontiguousarray(mono, dtype=PCM_DTYPE).tobytes()


def discord_to_session(session_rate: int = 16000, quality: str = "fir") -> Resampler | Decimator:
    """48 kHz stereo (Discord's decoded voice) -> the Palabra session's mono input format.

    "fir" (the default): the low-latency decimator (bot.audio.decimate, ~1 ms hold-back instead of soxr's
    ~21 ms) when the rate divides 48 kHz; any soxr quality name, or another rate, uses soxr."""
    if quality == "fir":
        decimator = session_decimator(session_rate)
        if decimator is not None:
            return decimator
        quality = "HQ"
    return Resampler(DISCORD.rate, DISCORD.channels, session_rate, 1, quality)


def palabra_to_discord(quality: str = "HQ") -> Resampler:
    """24 kHz mono (Palabra's output audio) -> 48 kHz stereo for Discord playback."""
    return Resampler(PALABRA_OUTPUT.rate, PALABRA_OUTPUT.channels, DISCORD.rate, DISCORD.channels, quality)


def measure_latency_ms(
    in_rate: int, in_channels: int, out_rate: int, out_channels: int, quality: str = "HQ", frames: int = 200
) -> dict[str, float]:
    """Feed `frames` 20 ms frames of a tone and report the output held back after each one:
    {"mean": ms, "max": ms, "min": ms} in steady state (the first 10 frames are skipped)."""
    resampler = Resampler(in_rate, in_channels, out_rate, out_channels, quality)
    frame_samples = in_rate * FRAME_MS // 1000
    t = np.arange(frames * frame_samples) / in_rate
    tone = np.round(8000 * np.sin(2 * np.pi * 440 * t)).astype(PCM_DTYPE)
    if in_channels == 2:
        tone = upmix(tone)
    pcm = tone.tobytes()
    step = frame_samples * in_channels * SAMPLE_WIDTH
    held: list[float] = []
    for index in range(frames):
        resampler.process(pcm[index * step : (index + 1) * step])
        if index >= 10:
            held.append(resampler.pending_ms)
    return {"mean": float(np.mean(held)), "max": float(np.max(held)), "min": float(np.min(held))}
