"""Low-latency integer-factor downsampling for the ingress path (48 kHz stereo -> 16 kHz mono).

soxr (bot.audio.resample) holds back ~21 ms on average at HQ (up to ~40 ms, in uneven bursts); Palabra's
input only needs an integer factor down from Discord's 48 kHz, which a short linear-phase FIR does with
a fixed delay of half its length: 54 input samples (1.1 ms) for 48 -> 16 kHz. Polyphase: only every
`factor`-th output is computed (one small matrix-vector product per frame, float32).

Nothing is held back: output sample j is the filter centred on input sample j x factor - `delay`, so
every input frame comes out whole at once, 1.1 ms later on the timeline (holding back instead would
make the last samples of a frame wait for the next frame, 20 ms later). Digital silence after silence
costs nothing: the output is a cached block of zeros.

Filter: Kaiser-windowed sinc, cutoff at 0.45 x the output rate (7.2 kHz for 16 kHz), 36 x factor + 1
taps, beta 6 (about 60 dB stop-band). Checked in tests/audio/test_decimate.py against an in-band tone,
an alias tone and a one-shot conversion.
"""

from __future__ import annotations

import numpy as np

from bot.audio.frames import DISCORD_RATE, FRAME_MS, PCM_DTYPE, SAMPLE_WIDTH, AudioFormat

TAPS_PER_FACTOR = 36
KAISER_BETA = 6.0
CUTOFF = 0.45  # of the output rate


def design(factor: int) -> np.ndarray:
    taps = TAPS_PER_FACTOR * factor + 1
    n = np.arange(taps) - (taps - 1) / 2
    cutoff = CUTOFF / factor  # cycles per input sample
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, KAISER_BETA)
    taps_out: np.ndarray = (h / h.sum()).astype(np.float32)
    return taps_out


class Decimator:
    """s16le at `in_rate` (mono or stereo) -> s16le mono at in_rate / factor, streaming."""

    def __init__(self, in_rate: int, in_channels: int, out_rate: int) -> None:
        if in_rate % out_rate:
            raise ValueError(f"{in_rate} Hz -> {out_rate} Hz is not an integer factor")
        self.input = AudioFormat(in_rate, in_channels)
        self.output = AudioFormat(out_rate, 1)
        self.factor = in_rate // out_rate
        self.quality = "fir"
        # Reversed (a dot product is then a convolution); stereo input is summed, so the taps also halve.
        self._taps = design(self.factor)[::-1] * np.float32(0.5 if in_channels == 2 else 1.0)
        self.delay = (len(self._taps) - 1) // 2
        # Input from absolute index `_start`; `delay` zeros go first (the signal is shifted by them).
        self._buffer = np.zeros(2 * self.delay, dtype=np.float32)
        self._start = -self.delay
        self._next = 0  # next output j; needs input up to j x factor + delay
        self._zeros = 0  # trailing zero samples in the buffer
        self._partial = b""
        self._flushed = False

    @property
    def pending_ms(self) -> float:
        """Output withheld: none (the filter's 1.1 ms is a delay on the timeline, see `delay_ms`)."""
        return 0.0

    @property
    def delay_ms(self) -> float:
        return 1000.0 * self.delay / self.input.rate

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        if self._flushed:
            raise RuntimeError("the resampler was flushed; create a new one for a new stream")
        data = self._partial + bytes(pcm) if self._partial else bytes(pcm)
        step = self.input.bytes_per_sample_frame
        cut = len(data) - len(data) % step
        self._partial = data[cut:]
        if not cut:
            return b""
        if self._zeros >= len(self._taps) + self.factor and data.count(0, 0, cut) == cut:
            return self._silence(cut // step)
        trailing = (cut - len(data[:cut].rstrip(b"\0"))) // step
        samples = np.frombuffer(data, dtype=PCM_DTYPE, count=cut // SAMPLE_WIDTH)
        if self.input.channels == 2:
            mono = np.add(samples[0::2], samples[1::2], dtype=np.float32)  # L + R: the taps halve it
        else:
            mono = samples.astype(np.float32)
        self._append(mono, trailing)
        return self._produce()

    def process_silence(self, frames: int) -> bytes:
        """`process` of `frames` 20 ms frames of digital silence, without building or scanning them."""
        size = self.input.bytes_for(frames * FRAME_MS)
        if self._partial or self._flushed or self._zeros < len(self._taps) + self.factor:
            return self.process(bytes(size))
        return self._silence(size // self.input.bytes_per_sample_frame)

    def flush(self) -> bytes:
        """End of stream. Every input sample already has its output, so the total length is the input's
        divided by the factor (as with `Resampler`); the filter's last 1.1 ms of ring-out is dropped."""
        self._flushed = True
        return b""

    def _append(self, mono: np.ndarray, trailing_zeros: int) -> None:
        self._buffer = np.concatenate((self._buffer, mono))
        self._zeros = self._zeros + len(mono) if trailing_zeros == len(mono) else trailing_zeros

    def _produce(self) -> bytes:
        taps, factor = len(self._taps), self.factor
        end = self._start + len(self._buffer)  # one past the last input sample held
        last = (end - 1 - self.delay) // factor  # the last output whose window is complete
        count = last - self._next + 1
        if count <= 0:
            return b""
        first = self._next * factor - self.delay - self._start  # buffer offset of the first window
        source = self._buffer[first:]
        item = source.itemsize
        windows = np.lib.stride_tricks.as_strided(source, (count, taps), (factor * item, item), writeable=False)
        out = np.dot(windows, self._taps)
        self._next += count
        keep_from = self._next * factor - self.delay - self._start
        self._buffer = self._buffer[keep_from:]
        self._start += keep_from
        np.rint(out, out=out)
        np.clip(out, -32768, 32767, out=out)
        return bytes(out.astype(PCM_DTYPE).tobytes())

    def _silence(self, frames: int) -> bytes:
        """Zeros in after zeros: the outputs that become complete are zeros too (no filtering)."""
        end = self._start + len(self._buffer) + frames
        last = (end - 1 - self.delay) // self.factor
        count = max(0, last - self._next + 1)
        self._next += count
        keep = len(self._taps) + self.factor
        self._start = end - keep
        if len(self._buffer) != keep or self._zeros < keep:  # else it already holds just `keep` zeros
            self._buffer = np.zeros(keep, dtype=np.float32)
        self._zeros += frames
        return bytes(count * SAMPLE_WIDTH)


def session_decimator(session_rate: int) -> Decimator | None:
    """The FIR path for Discord's 48 kHz stereo to `session_rate` mono, or None (not an integer factor)."""
    if session_rate <= 0 or DISCORD_RATE % session_rate or session_rate == DISCORD_RATE:
        return None
    return Decimator(DISCORD_RATE, 2, session_rate)
