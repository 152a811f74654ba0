"""A small energy voice-activity detector for the emulator's deterministic "translation".

Pure: feed mono int16 samples in any slicing, get back finished utterances (start/end in seconds
of the audio timeline). An utterance ends once `confirm_silence_s` of silence follows it, as
Palabra confirms a sentence only after trailing silence; `flush()` ends one in progress.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_S = 0.02


@dataclass(frozen=True)
class Utterance:
    start: float  # seconds since the first sample fed
    end: float


class EnergyVad:
    def __init__(
        self,
        sample_rate: int,
        *,
        threshold_dbfs: float = -45.0,
        confirm_silence_s: float = 0.7,
        min_speech_s: float = 0.06,
    ) -> None:
        self.sample_rate = sample_rate
        self.frame_len = max(1, int(sample_rate * FRAME_S))
        self.threshold_rms = 32768.0 * 10 ** (threshold_dbfs / 20)
        self.confirm_silence_s = confirm_silence_s
        self.min_speech_s = min_speech_s
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames_done = 0
        self._speech_start: float | None = None
        self._last_voiced_end = 0.0

    @property
    def now(self) -> float:
        """Seconds of audio analysed so far."""
        return self._frames_done * self.frame_len / self.sample_rate

    @property
    def speech_start(self) -> float | None:
        """Start of the utterance in progress, or None during silence."""
        return self._speech_start

    @property
    def last_voiced_end(self) -> float:
        return self._last_voiced_end

    def feed(self, samples: np.ndarray) -> list[Utterance]:
        """Analyse more audio; returns the utterances confirmed by it, in order."""
        data = np.concatenate([self._pending, samples.astype(np.int16, copy=False)])
        whole = len(data) // self.frame_len * self.frame_len
        self._pending = data[whole:]
        frames = data[:whole].reshape(-1, self.frame_len).astype(np.float64)
        done: list[Utterance] = []
        for rms in np.sqrt(np.mean(frames * frames, axis=1)) if len(frames) else ():
            start = self.now
            self._frames_done += 1
            if rms >= self.threshold_rms:
                if self._speech_start is None:
                    self._speech_start = start
                self._last_voiced_end = self.now
            elif self._speech_start is not None and self.now - self._last_voiced_end >= self.confirm_silence_s:
                utterance = self._finish()
                if utterance:
                    done.append(utterance)
        return done

    def flush(self) -> Utterance | None:
        """End the utterance in progress (end of stream)."""
        return self._finish() if self._speech_start is not None else None

    def reset(self) -> None:
        """Forget the utterance in progress (interrupt)."""
        self._speech_start = None

    def _finish(self) -> Utterance | None:
        start, self._speech_start = self._speech_start, None
        if start is None or self._last_voiced_end - start < self.min_speech_s:
            return None
        return Utterance(start, self._last_voiced_end)
