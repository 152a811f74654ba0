"""Test signals made in-process: tone or noise bursts separated by silence, and signal comparison."""

from __future__ import annotations

import numpy as np


def bursts(sample_rate: int, pattern: list[tuple[str, float]], *, amplitude: float = 0.3, seed: int = 7) -> bytes:
    """pcm_s16le mono from a pattern such as [("silence", 0.5), ("tone", 1.0), ("noise", 0.8)]."""
    rng = np.random.default_rng(seed)
    parts, freq = [], 330.0
    for kind, seconds in pattern:
        n = int(round(seconds * sample_rate))
        if kind == "silence":
            parts.append(np.zeros(n))
        elif kind == "tone":
            t = np.arange(n) / sample_rate
            # a chirp, so that cross-correlation has one clear peak
            parts.append(amplitude * np.sin(2 * np.pi * (freq * t + 60 * t * t)))
            freq *= 1.25
        elif kind == "noise":
            parts.append(amplitude * rng.uniform(-1, 1, n))
        else:
            raise ValueError(kind)
    signal = np.concatenate(parts) if parts else np.zeros(0)
    return (signal * 32767).astype("<i2").tobytes()


def to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0


def max_normalised_xcorr(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Peak of the normalised cross-correlation of `b` slid along `a` (len(b) <= len(a)), and its lag."""
    if len(b) > len(a):
        a, b = b, a
    n = len(a) + len(b)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)[: len(a) - len(b) + 1]
    window = np.convolve(a * a, np.ones(len(b)), mode="valid")
    denom = np.sqrt(window * np.sum(b * b)) + 1e-12
    scores = corr / denom
    lag = int(np.argmax(scores))
    return float(scores[lag]), lag


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
