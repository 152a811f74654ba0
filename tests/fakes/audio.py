"""Signal helpers shared by the audio tests: generators, conversions, RMS, normalised
cross-correlation with lag, an energy-based speech detector, and the committed speech fixtures.

Everything here is independent of the code under test (fixtures are decoded with PyAV directly),
so a test can compare what the product produced against a reference computed another way.

Conventions: a "signal" is a float64 numpy array in [-1, 1]; mono signals are 1-D, multichannel
signals are shaped (samples, channels). PCM is interleaved signed 16-bit little-endian.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
SAMPLE_EN = REPO / "bot" / "assets" / "sample-en.ogg"
SPEECH_A = FIXTURES / "speech-a.ogg"
SPEECH_B = FIXTURES / "speech-b.ogg"

FULL_SCALE = 32768.0


# --- generators -----------------------------------------------------------------------------------


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t + phase)


def noise(seconds: float, rate: int, amplitude: float = 0.3, seed: int = 0) -> np.ndarray:
    """White noise (uniform in +-amplitude), reproducible by seed."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-amplitude, amplitude, round(seconds * rate))


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(round(seconds * rate))


def bursts(sample_rate: int, pattern: list[tuple[str, float]], *, amplitude: float = 0.3, seed: int = 7) -> bytes:
    """pcm_s16le mono from a pattern such as [("silence", 0.5), ("tone", 1.0), ("noise", 0.8)]."""
    rng = np.random.default_rng(seed)
    parts, freq = [], 330.0
    for kind, seconds in pattern:
        n = round(seconds * sample_rate)
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


# --- conversions ----------------------------------------------------------------------------------


def to_pcm(signal: np.ndarray, channels: int = 1) -> bytes:
    """Float signal -> s16le bytes. A mono signal is duplicated to `channels`."""
    data = np.asarray(signal, dtype=np.float64)
    if data.ndim == 1 and channels > 1:
        data = np.repeat(data[:, None], channels, axis=1)
    return np.clip(np.round(data * FULL_SCALE), -32768, 32767).astype("<i2").tobytes()


def from_pcm(pcm: bytes, channels: int = 1) -> np.ndarray:
    """s16le bytes -> float signal, shaped (samples, channels) when channels > 1."""
    data = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / FULL_SCALE
    return data.reshape(-1, channels) if channels > 1 else data


def mono(pcm: bytes, channels: int = 1) -> np.ndarray:
    """s16le bytes -> mono float signal (channels averaged)."""
    data = from_pcm(pcm, channels)
    return data.mean(axis=1) if data.ndim == 2 else data


# --- measurements ---------------------------------------------------------------------------------


def rms(signal: np.ndarray) -> float:
    data = np.asarray(signal, dtype=np.float64)
    return float(np.sqrt(np.mean(data**2))) if data.size else 0.0


def dbfs(value: float) -> float:
    return 20 * np.log10(max(value, 1e-12))


def peak_frequency(signal: np.ndarray, rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin of a mono signal (Hann window)."""
    data = np.asarray(signal, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
    return float(np.fft.rfftfreq(len(data), 1 / rate)[int(np.argmax(spectrum))])


def max_jump(signal: np.ndarray) -> float:
    """Largest sample-to-sample difference: a click shows up as a jump far above the signal's slope."""
    data = np.asarray(signal, dtype=np.float64)
    return float(np.max(np.abs(np.diff(data, axis=0)))) if len(data) > 1 else 0.0


@dataclass(frozen=True)
class Correlation:
    peak: float  # normalised cross-correlation at the best lag, in [-1, 1]
    lag: int  # samples by which `b` is delayed relative to `a` (negative: b is early)

    def lag_seconds(self, rate: int) -> float:
        return self.lag / rate


def xcorr(a: np.ndarray, b: np.ndarray, max_lag: int | None = None) -> Correlation:
    """Normalised cross-correlation of two mono signals, searched over lags in [-max_lag, max_lag].

    Normalised by the energies of the whole signals, so 1.0 means `b` is `a` shifted (and scaled),
    and a signal correlated with something unrelated stays near 0.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    energy = np.sqrt(np.sum(x**2) * np.sum(y**2))
    if energy == 0:
        return Correlation(0.0, 0)
    size = 1 << int(np.ceil(np.log2(len(x) + len(y))))
    full = np.fft.irfft(np.conj(np.fft.rfft(x, size)) * np.fft.rfft(y, size), size)
    # full[k] = sum_n x[n] * y[n + k]; negative k wraps to the end.
    lags = np.concatenate([np.arange(0, len(y)), np.arange(-(len(x) - 1), 0)])
    values = np.concatenate([full[: len(y)], full[size - (len(x) - 1) :]]) if len(x) > 1 else full[: len(y)]
    if max_lag is not None:
        keep = np.abs(lags) <= max_lag
        lags, values = lags[keep], values[keep]
    best = int(np.argmax(values))
    return Correlation(float(values[best] / energy), int(lags[best]))


def _sliding_energy(a: np.ndarray, size: int) -> np.ndarray:
    """Energy of every `size`-long stretch of `a`, in O(len(a)) (a direct convolution of long signals
    took tens of seconds, on the event loop of the test that called it)."""
    total = np.concatenate(([0.0], np.cumsum(np.asarray(a, dtype=np.float64) ** 2)))
    return np.maximum(total[size:] - total[:-size], 0.0)


def windowed_xcorr(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Peak of the cross-correlation of `b` slid along `a` (len(b) <= len(a)), normalised by the energy of
    the stretch of `a` under `b` (so 1.0 means `b` appears somewhere in a longer `a`), and its offset."""
    return _best_match(a, b) if len(b) <= len(a) else _best_match(b, a)


def pieces_heard(sent: np.ndarray, heard: np.ndarray, rate: int, piece_s: float = 0.2) -> float:
    """Share of `sent`'s audible pieces (`piece_s` long) found in `heard`, in order, with a normalised
    correlation of 0.8 or more. Unlike one `xcorr` over the whole signal, a real-time path that inserts a
    20 ms gap (an adaptive jitter hold) or drops a frame costs only the pieces it touches, not the
    alignment of everything after it; speech that did not get through still scores near 0."""
    size = int(piece_s * rate)
    found = total = position = 0
    for piece in _audible_pieces(sent, size):
        total += 1
        rest = heard[position:]
        if len(rest) < size:
            continue
        score, offset = _best_match(rest, piece)
        if score >= 0.8:
            found += 1
            position += offset + size // 2  # the next piece is heard after this one
    return found / total if total else 0.0


def _audible_pieces(signal: np.ndarray, size: int) -> list[np.ndarray]:
    """`signal` cut into `size`-long pieces, pauses (under -40 dBFS RMS) left out."""
    pieces = (signal[start : start + size] for start in range(0, len(signal) - size + 1, size))
    return [piece for piece in pieces if dbfs(rms(piece)) >= -40.0]


def _best_match(a: np.ndarray, piece: np.ndarray) -> tuple[float, int]:
    """Where `piece` best matches a stretch of the longer `a`: normalised correlation and offset. A
    stretch of `a` far quieter than `piece` scores 0 (digital silence would otherwise divide FFT rounding
    noise by almost nothing)."""
    n = len(a) + len(piece)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(piece, size)), size)[: len(a) - len(piece) + 1]
    energy = float(np.sum(piece * piece))
    window = _sliding_energy(a, len(piece))
    scores = np.where(window > energy * 1e-4, corr / np.sqrt(np.maximum(window, 1e-30) * energy), 0.0)
    best = int(np.argmax(scores))
    return float(scores[best]), best


def found_in(sent: np.ndarray, heard: np.ndarray, rate: int, piece_s: float = 0.25) -> float:
    """How well `heard` is a (delayed) copy of some of `sent`: the median, over `heard`'s audible
    pieces, of each piece's best normalised correlation anywhere in `sent`. A real-time path's jitter
    holds and lost frames move or spoil a few pieces, not the median; audio that is not `sent`'s scores
    near 0 (and 0.0 when nothing audible was heard)."""
    size = int(piece_s * rate)
    pieces = _audible_pieces(heard, size) if len(sent) >= size else []
    scores = [_best_match(sent, piece)[0] for piece in pieces]
    return float(np.median(scores)) if scores else 0.0


def speech_regions(
    signal: np.ndarray,
    rate: int,
    frame_ms: float = 20.0,
    threshold_db: float = -40.0,
    min_silence_s: float = 0.5,
    min_speech_s: float = 0.2,
) -> list[tuple[float, float]]:
    """(start, end) seconds of speech found by frame energy: frames louder than `threshold_db`
    (dBFS RMS) are speech; gaps shorter than `min_silence_s` are bridged (pauses between words);
    regions shorter than `min_speech_s` are dropped (clicks)."""
    data = np.asarray(signal, dtype=np.float64)
    frame = max(1, round(rate * frame_ms / 1000))
    count = len(data) // frame
    if count == 0:
        return []
    energies = np.sqrt(np.mean(data[: count * frame].reshape(count, frame) ** 2, axis=1))
    loud = 20 * np.log10(np.maximum(energies, 1e-12)) > threshold_db
    regions: list[list[int]] = []
    for index in np.flatnonzero(loud):
        if regions and (index - regions[-1][1]) * frame / rate < min_silence_s:
            regions[-1][1] = index + 1
        else:
            regions.append([index, index + 1])
    seconds = frame / rate
    return [(float(s * seconds), float(e * seconds)) for s, e in regions if (e - s) * seconds >= min_speech_s]


# --- fixtures -------------------------------------------------------------------------------------


def decode(path: Path, rate: int = 48000, channels: int = 2) -> bytes:
    """Decode an audio file to s16le PCM at `rate` with PyAV (a reference decoder, independent of
    bot.audio.files). The file is mixed down to mono; channels=2 duplicates it at full level (as the
    bot does with mono sources), so a fixture decodes to the same level either way."""
    import av

    chunks: list[bytes] = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        for frame in container.decode(audio=0):
            chunks.extend(bytes(out.planes[0])[: out.samples * 2] for out in resampler.resample(frame))
        chunks.extend(bytes(out.planes[0])[: out.samples * 2] for out in resampler.resample(None))
    pcm = b"".join(chunks)
    return to_pcm(from_pcm(pcm), channels) if channels > 1 else pcm


def fixture_signal(path: Path, rate: int = 48000) -> np.ndarray:
    """A fixture as a mono float signal at `rate`."""
    return from_pcm(decode(path, rate=rate, channels=1))


def utterance_correlations(
    sent: bytes, heard: bytes, spoken_at: float, heard_origin: float
) -> list[tuple[float, float]]:
    """Per spoken utterance (the translation is played per utterance, so gaps between them differ):
    (how well the listener heard it, lag in seconds from speaking to hearing), both clocks being the
    event loop's. "How well" is `found_in` over the stretch where it was heard (a jitter hold inside
    an utterance does not spoil it), and 0.0 when that stretch holds less than 80 % of its speech."""
    rate = 48000
    a, b = mono(sent, 2), mono(heard, 2)
    found = []
    for start, end in speech_regions(a, rate):
        piece = a[int(start * rate) : int(end * rate)]
        lag = xcorr(piece, b).lag  # where it was heard; then compare against just that stretch
        window = b[max(0, lag) : max(0, lag) + len(piece) + rate // 5]
        whole = speech_seconds(window, rate) >= 0.8 * speech_seconds(piece, rate)
        score = found_in(piece, window, rate) if whole else 0.0
        found.append((score, heard_origin + lag / rate - (spoken_at + start)))
    return found


def speech_seconds(signal: np.ndarray, rate: int) -> float:
    """How much speech a signal holds (pauses of 0.1 s and more not counted)."""
    return sum(end - start for start, end in speech_regions(signal, rate, min_silence_s=0.1, min_speech_s=0.05))


def openings_heard_in_order(sent: np.ndarray, heard: np.ndarray, rate: int, opening_s: float = 0.4) -> list[float]:
    """For each utterance of `sent`, in order: how well its first `opening_s` was heard (the normalised
    correlation with the best-matching stretch of `heard` after the previous utterance's)."""
    found, position, size = [], 0, int(opening_s * rate)
    for start, _end in speech_regions(sent, rate):
        piece = sent[int(start * rate) : int(start * rate) + size]
        lag = xcorr(piece, heard[position:]).lag if position < len(heard) else 0
        where = position + max(0, lag)
        found.append(xcorr(piece, heard[where : where + len(piece)], max_lag=rate // 100).peak)
        position = where + len(piece)
    return found
