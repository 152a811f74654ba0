"""Opus settings against a speech-quality figure: `python -m bot bench --opus-sweep`.

For each (complexity, bitrate) the bundled speech sample (48 kHz stereo, 20 ms frames) is encoded with
the playback settings' application, FEC and loss figure, decoded again, aligned for the codec's delay and
compared with the original by waveform correlation; the encode cost is the best of a few runs per frame.
The playback settings (bot.voice.playback.OPUS_SETTINGS) were chosen from this table.
"""

from __future__ import annotations

import time

import numpy as np

from bot.audio import opus
from bot.audio.frames import FRAME_BYTES
from bot.voice.playback_clock import make_encoder

COMPLEXITIES = (0, 1, 2, 3, 5, 7, 10)
BITRATES = (32, 48, 64, 96)


def correlation(reference: np.ndarray, decoded: np.ndarray, max_lag: int = 960) -> tuple[float, int]:
    """Best normalised correlation of two mono float signals over lags 0..max_lag (decoded later)."""
    best, best_lag = -1.0, 0
    n = len(reference) - max_lag
    ref = reference[:n]
    ref_norm = float(np.linalg.norm(ref)) or 1.0
    for lag in range(0, max_lag + 1, 8):
        part = decoded[lag : lag + n]
        value = float(np.dot(ref, part)) / (ref_norm * (float(np.linalg.norm(part)) or 1.0))
        if value > best:
            best, best_lag = value, lag
    for lag in range(max(0, best_lag - 8), min(max_lag, best_lag + 8) + 1):
        part = decoded[lag : lag + n]
        value = float(np.dot(ref, part)) / (ref_norm * (float(np.linalg.norm(part)) or 1.0))
        if value > best:
            best, best_lag = value, lag
    return best, best_lag


def measure(frames: list[bytes], complexity: int, bitrate: int, repeat: int = 3) -> dict[str, float]:
    """The playback encoder (application, FEC, loss figure as played) at this complexity and bitrate."""
    best = float("inf")
    packets: list[bytes] = []
    for _ in range(repeat):
        encoder = make_encoder(bitrate_kbps=bitrate, complexity=complexity)
        start = time.perf_counter()
        packets = [encoder.encode(frame) for frame in frames]
        best = min(best, (time.perf_counter() - start) / len(frames))
    decoder = opus.Decoder()
    decoded = b"".join(decoder.decode(packet) for packet in packets)
    reference = np.frombuffer(b"".join(frames), dtype="<i2").reshape(-1, 2)[:, 0].astype(np.float64)
    output = np.frombuffer(decoded, dtype="<i2").reshape(-1, 2)[:, 0].astype(np.float64)
    corr, lag = correlation(reference, output)
    return {
        "complexity": complexity,
        "kbps": bitrate,
        "correlation": round(corr, 4),
        "encode_us": round(best * 1e6, 1),
        "bytes_per_packet": round(sum(map(len, packets)) / len(packets), 1),
        "delay_samples": lag,
    }


def sweep(frames: list[bytes]) -> list[dict[str, float]]:
    assert all(len(frame) == FRAME_BYTES for frame in frames)
    return [measure(frames, c, b) for c in COMPLEXITIES for b in BITRATES]
