"""PCM formats, numpy conversions and fixed-size framing.

All PCM in the bot is interleaved signed 16-bit little-endian ("s16le"). Discord carries 48 kHz
stereo in 20 ms frames; Palabra takes the session's declared format (e.g. 16 kHz mono) in 320 ms
chunks and returns 24 kHz mono.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_WIDTH = 2  # bytes per sample (s16le)
PCM_DTYPE = np.dtype("<i2")

FRAME_MS = 20
FRAME_S = FRAME_MS / 1000
DISCORD_RATE = 48000
DISCORD_CHANNELS = 2
FRAME_SAMPLES = DISCORD_RATE * FRAME_MS // 1000  # 960 samples per channel
FRAME_BYTES = FRAME_SAMPLES * DISCORD_CHANNELS * SAMPLE_WIDTH  # 3840

PALABRA_OUTPUT_RATE = 24000  # output_audio_data is fixed at 24 kHz mono
CHUNK_MS = 320  # Palabra's recommended input chunk


@dataclass(frozen=True)
class AudioFormat:
    rate: int
    channels: int

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"sample rate must be positive, not {self.rate}")
        if self.channels not in (1, 2):
            raise ValueError(f"only mono or stereo is supported, not {self.channels} channels")

    @property
    def bytes_per_sample_frame(self) -> int:
        """Bytes of one sample on every channel."""
        return SAMPLE_WIDTH * self.channels

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.bytes_per_sample_frame

    def bytes_for(self, milliseconds: float) -> int:
        """Bytes in `milliseconds` of audio, rounded down to whole sample frames."""
        return int(self.rate * milliseconds / 1000) * self.bytes_per_sample_frame

    def seconds(self, byte_count: int) -> float:
        return byte_count / self.bytes_per_second

    def silence(self, milliseconds: float) -> bytes:
        return bytes(self.bytes_for(milliseconds))


DISCORD = AudioFormat(DISCORD_RATE, DISCORD_CHANNELS)
PALABRA_OUTPUT = AudioFormat(PALABRA_OUTPUT_RATE, 1)
SILENT_FRAME = bytes(FRAME_BYTES)


# --- numpy conversions ----------------------------------------------------------------------------


def as_samples(pcm: bytes | bytearray | memoryview, channels: int = 1) -> np.ndarray:
    """A read-only int16 view of PCM bytes (no copy), shaped (samples, channels) for stereo."""
    data = np.frombuffer(pcm, dtype=PCM_DTYPE)
    return data.reshape(-1, channels) if channels > 1 else data


def to_pcm(samples: np.ndarray) -> bytes:
    """int16 samples (any shape, interleaved by row) -> s16le bytes."""
    return np.ascontiguousarray(samples, dtype=PCM_DTYPE).tobytes()


def saturate(values: np.ndarray) -> np.ndarray:
    """Wider integers -> int16, clipping instead of wrapping around."""
    clipped: np.ndarray = np.clip(values, -32768, 32767).astype(PCM_DTYPE)
    return clipped


def downmix(samples: np.ndarray) -> np.ndarray:
    """(samples, 2) int16 -> mono int16, the average of both channels (cannot clip)."""
    mono: np.ndarray = ((samples[:, 0].astype(np.int32) + samples[:, 1]) >> 1).astype(PCM_DTYPE)
    return mono


def upmix(samples: np.ndarray) -> np.ndarray:
    """mono int16 -> (samples, 2) int16 with both channels equal."""
    return np.repeat(samples.reshape(-1, 1), 2, axis=1)


def rms_dbfs(pcm: bytes | bytearray | memoryview) -> float:
    """Level of s16le PCM in dBFS (a full-scale sine is about -3 dBFS); -inf for silence."""
    data = np.frombuffer(pcm, dtype=PCM_DTYPE)
    if data.size == 0:
        return float("-inf")
    mean_square = float(np.mean(np.square(data, dtype=np.float64)))
    return 10 * np.log10(mean_square / 32768.0**2) if mean_square > 0 else float("-inf")


# --- framing --------------------------------------------------------------------------------------


class FrameAssembler:
    """Bytes in (any sizes), fixed-size frames out.

    Input that arrives frame-aligned is cut straight from the caller's buffer; only a trailing
    partial frame is kept, and only the bytes needed to complete it are copied.
    """

    def __init__(self, frame_bytes: int = FRAME_BYTES) -> None:
        if frame_bytes <= 0:
            raise ValueError(f"frame size must be positive, not {frame_bytes}")
        self.frame_bytes = frame_bytes
        self._pending = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._pending)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        view = memoryview(data).cast("B")
        frames: list[bytes] = []
        if self._pending:
            needed = self.frame_bytes - len(self._pending)
            self._pending += view[:needed]
            view = view[needed:]
            if len(self._pending) < self.frame_bytes:
                return frames
            frames.append(bytes(self._pending))
            self._pending.clear()
        whole = len(view) - len(view) % self.frame_bytes
        frames.extend(bytes(view[i : i + self.frame_bytes]) for i in range(0, whole, self.frame_bytes))
        self._pending += view[whole:]
        return frames

    def flush(self, pad: bool = True) -> bytes | None:
        """The held-back partial frame (zero-padded to a full frame when `pad`), or None."""
        if not self._pending:
            return None
        tail = bytes(self._pending)
        self._pending.clear()
        return tail + bytes(self.frame_bytes - len(tail)) if pad else tail


class Chunker(FrameAssembler):
    """Fixed-duration chunks at a given format, e.g. 320 ms of 16 kHz mono = 10240 bytes."""

    def __init__(self, fmt: AudioFormat, chunk_ms: float = CHUNK_MS) -> None:
        size = fmt.bytes_for(chunk_ms)
        if size <= 0:
            raise ValueError(f"a {chunk_ms} ms chunk at {fmt.rate} Hz holds no samples")
        super().__init__(size)
        self.format = fmt
        self.chunk_ms = chunk_ms
