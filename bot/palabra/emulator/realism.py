"""Seeded realism: how a real Palabra pipeline times and shapes its output, decided per utterance.

The deterministic emulator sends an utterance's results in one fixed order the moment trailing
silence confirms it. Real Palabra runs separate pipeline stages (recognition, translation per
target, speech synthesis) with their own timing, so a client must cope with every order the
protocol allows. `Realism` draws, from a seed, one `UtterancePlan` per utterance:

- a pipeline delay (by default 0-7 s, the Broadcaster docs' "3-7 s" widened to zero);
- the translation text before, in the same burst as, or after the validated transcript;
- the translation in parts (`translation_part_id` 0, 1, ...), each with its own audio and `last_chunk`;
- synthesized audio in bursts faster than real time, in odd chunk sizes (whole samples);
- duplicated transcript messages, unknown message types, frames without `message_type`, and
  spurious `AUDIO_STREAM_STALLED` warnings.

What it never does, because the protocol does not allow it: a partial after its final, audio of a
language before that language's translation text, audio out of order within a language, anything
after the end message. Decisions depend only on (seed, connection id, utterance index), never on
timing, so the same seed and input give the same plans. `UtterancePlan.deterministic` is today's
behaviour expressed as a plan, so both modes share one scheduling path.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Literal

from bot.palabra import encoding
from bot.palabra import protocol as p

Order = Literal["before", "same", "after"]
ORDERS: tuple[Order, ...] = ("before", "same", "after")
STALLED = "AUDIO_STREAM_STALLED"
STALLED_MESSAGE = "Input audio stream stalled; audio is not arriving in real time"
UNKNOWN_TYPES = ("translation_queue_status", "session_heartbeat", "speaker_change")


@dataclass(frozen=True)
class UtterancePlan:
    delay_s: float = 0.0  # from confirmation to the first result (the pipeline is serial)
    order: Order = "same"  # translation text relative to the validated transcript
    text_gaps_s: tuple[float, ...] = (0.0,)  # per target (cycled): how far translation and validated sit apart
    parts: int = 1  # translation_part_id 0 .. parts-1
    part_gap_s: float = 0.0
    tts_lead_s: float = 0.0  # from a part's text to its first audio
    chunk_samples: tuple[int, ...] = (4800,)  # output chunk sizes at 24 kHz (cycled)
    burst_chunks: tuple[int, ...] = (0,)  # chunks per burst (cycled); 0 = all in one burst
    speed: float = math.inf  # audio generated this many times faster than real time
    duplicates: frozenset[str] = frozenset()  # message types sent twice
    duplicate_gap_s: float = 0.0
    extras: tuple[tuple[float, dict[str, Any]], ...] = ()  # (offset from the first result, frame)

    @classmethod
    def deterministic(cls, delay_s: float, chunk_s: float) -> UtterancePlan:
        return cls(delay_s=delay_s, chunk_samples=(max(1, int(p.OutputAudio.SAMPLE_RATE * chunk_s)),))

    def text_gap(self, target_index: int) -> float:
        return self.text_gaps_s[target_index % len(self.text_gaps_s)]


@dataclass(frozen=True)
class RealismProfile:
    """Ranges and probabilities the plans are drawn from (seconds are real time)."""

    delay_s: tuple[float, float] = (0.0, 7.0)
    text_gap_s: tuple[float, float] = (0.05, 1.5)
    parts_probability: float = 0.35
    max_parts: int = 3
    part_gap_s: tuple[float, float] = (0.1, 0.8)
    tts_lead_s: tuple[float, float] = (0.0, 0.6)
    chunk_s: tuple[float, float] = (0.01, 0.45)
    burst_chunks: tuple[int, int] = (1, 6)
    speed: tuple[float, float] = (1.5, 4.0)
    duplicate_probability: float = 0.25
    extra_probability: float = 0.4
    stall_probability: float = 0.2
    partial_lag_s: tuple[float, float] = (0.0, 0.4)
    partial_skip_probability: float = 0.25
    late_window_s: tuple[float, float] = (0.3, 1.5)


class Realism:
    def __init__(
        self, seed: int, *, stream_id: int, profile: RealismProfile | None = None, time_scale: float = 1.0
    ) -> None:
        self.seed, self.stream_id = seed, stream_id
        self.profile = profile or RealismProfile()
        self.time_scale = time_scale  # >1: the client streams faster than real time, so time shrinks

    def _rng(self, *key: object) -> random.Random:
        return random.Random(":".join(map(str, (self.seed, self.stream_id, *key))))

    def _seconds(self, rng: random.Random, bounds: tuple[float, float]) -> float:
        return rng.uniform(*bounds) / self.time_scale

    def plan(self, index: int, *, targets: int, words: int, languages: tuple[str, ...] = ()) -> UtterancePlan:
        """The plan of utterance `index` (or tts_task n, with a distinct index) of this connection."""
        rng, pr = self._rng("utterance", index), self.profile
        # Draws do not depend on the arguments, so a plan asked for a partial has the same duplicates.
        split, parts = rng.random() < pr.parts_probability, rng.randint(2, pr.max_parts)
        duplicates = {
            kind
            for kind in ("validated_transcription", "translated_transcription", "partial_transcription")
            if rng.random() < pr.duplicate_probability
        }
        return UtterancePlan(
            delay_s=self._seconds(rng, pr.delay_s),
            order=rng.choice(ORDERS),
            text_gaps_s=tuple(self._seconds(rng, pr.text_gap_s) for _ in range(max(1, targets))),
            parts=min(parts, words) if split else 1,
            part_gap_s=self._seconds(rng, pr.part_gap_s),
            tts_lead_s=self._seconds(rng, pr.tts_lead_s),
            chunk_samples=tuple(_odd_chunk(rng, pr.chunk_s) for _ in range(7)),
            burst_chunks=tuple(rng.randint(*pr.burst_chunks) for _ in range(5)),
            speed=rng.uniform(*pr.speed),
            duplicates=frozenset(duplicates),
            duplicate_gap_s=self._seconds(rng, (0.0, 0.5)),
            extras=self._extras(rng, languages),
        )

    def _extras(self, rng: random.Random, languages: tuple[str, ...]) -> tuple[tuple[float, dict[str, Any]], ...]:
        pr = self.profile
        extras: list[tuple[float, dict[str, Any]]] = []
        if rng.random() < pr.extra_probability:
            kind = rng.choice(UNKNOWN_TYPES)
            extras.append((self._seconds(rng, (0.0, 2.0)), {"message_type": kind, "data": {"seq": rng.randint(0, 99)}}))
        if rng.random() < pr.extra_probability:
            extras.append((self._seconds(rng, (0.0, 2.0)), {}))  # the "{}" frames seen on the data channel
        if languages and rng.random() < pr.extra_probability:
            level = {
                lang: {"current_queue_level_ms": rng.randint(0, 8000), "max_queue_level_ms": 24000}
                for lang in languages
            }
            extras.append((self._seconds(rng, (0.0, 2.0)), level))  # a queue-status frame, no message_type
        if rng.random() < pr.stall_probability:
            warning = encoding.encode_event(p.WarningMessage(STALLED, STALLED_MESSAGE))
            extras.append((self._seconds(rng, (0.0, 2.0)), warning))
        return tuple(extras)

    def partial_lag(self, index: int, partial: int) -> float | None:
        """Delay of one partial translation, or None when the pipeline skips (coalesces) it."""
        rng = self._rng("partial", index, partial)
        if rng.random() < self.profile.partial_skip_probability:
            return None
        return self._seconds(rng, self.profile.partial_lag_s)

    def late_window(self, interrupt: int) -> float:
        """After the n-th interrupt_task, results due within this many seconds still go out."""
        return self._seconds(self._rng("interrupt", interrupt), self.profile.late_window_s)


def _odd_chunk(rng: random.Random, bounds: tuple[float, float]) -> int:
    """A chunk size in whole samples that is rarely a round number of milliseconds."""
    samples = int(rng.uniform(*bounds) * p.OutputAudio.SAMPLE_RATE)
    return max(1, samples | 1)  # odd sample counts: never a multiple of the 200 ms the probe saw
