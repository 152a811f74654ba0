"""The emulator's fake translator, without I/O: input audio and times in, timed wire frames out.

An energy VAD finds utterances in the received audio; partials grow while one is spoken; once
trailing silence confirms it (or `end` flushes it) the utterance's results are scheduled: the
validated text, one translation per target and, as translated speech, the utterance's own input
audio resampled to 24 kHz (so tests can correlate signals). When and in what shape they go out is
an `UtterancePlan` (realism.py): today's fixed order by default, seeded variety with `Realism`.

The caller feeds `feed(pcm, now)`, `interrupt(now)`, `speak(...)`, `end(now)`, and sends whatever
`pop_due(now)` returns, waking again at `next_deadline()`. Frames are built with the client's own
types (`encoding.encode_event`), so both sides of the wire share one definition.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr

from bot.palabra import encoding
from bot.palabra import protocol as p
from bot.palabra.emulator.realism import Realism, UtterancePlan
from bot.palabra.emulator.vad import EnergyVad, Utterance
from bot.palabra.task import DEFAULT_MESSAGE_TYPES, SILENCE_THRESHOLD_S, source_format, target_languages

OUTPUT_RATE = p.OutputAudio.SAMPLE_RATE
WORD_S = 0.3  # one placeholder word per this much speech
Frame = dict[str, Any]


@dataclass(frozen=True)
class TranslatorSettings:
    vad_threshold_dbfs: float = -45.0
    partial_interval_s: float = 0.25
    output_chunk_s: float = 0.2
    processing_delay_s: float = 0.0  # the deterministic plan's pipeline delay


@dataclass(order=True, frozen=True)
class Outgoing:
    due: float
    seq: int
    frame: Frame = field(compare=False)
    transcription_id: str | None = field(default=None, compare=False)


@dataclass
class _Timeline:
    """Mono samples analysed but not yet needed for output; `start` is the sample index of [0]."""

    samples: bytearray = field(default_factory=bytearray)
    start: int = 0

    def take(self, first: int, last: int) -> np.ndarray:
        """Samples [first, last) of the stream; everything before `last` is forgotten."""
        lo, hi = max(0, first - self.start), max(0, last - self.start)
        speech = np.frombuffer(bytes(self.samples[2 * lo : 2 * hi]), dtype="<i2")
        self.forget_before(last)
        return speech

    def forget_before(self, sample: int) -> None:
        drop = min(max(0, sample - self.start), len(self.samples) // 2)
        del self.samples[: 2 * drop]
        self.start += drop


class FakeTranslator:
    def __init__(
        self,
        task: dict[str, Any],
        *,
        stream_id: int,
        settings: TranslatorSettings | None = None,
        realism: Realism | None = None,
        wall_offset: float = 0.0,
    ) -> None:
        self.task, self.stream_id = task, stream_id
        self.settings = settings or TranslatorSettings()
        self.realism = realism
        self.wall_offset = wall_offset  # Unix time minus the clock given as `now` (segment timestamps)
        _, self.rate, self.channels = source_format(task)
        threshold = task["pipeline"]["transcription"].get("segment_confirmation_silence_threshold", SILENCE_THRESHOLD_S)
        self.vad = EnergyVad(self.rate, threshold_dbfs=self.settings.vad_threshold_dbfs, confirm_silence_s=threshold)
        self.timeline = _Timeline()
        self.first_audio_epoch: float | None = None
        self.confirmed = 0  # utterances confirmed (or interrupted) so far: the next one's index
        self.partials_sent = 0
        self.next_partial_at = 0.0
        self.interrupts = 0
        self.tts_count = 0
        self.pipeline_free_at = 0.0  # the pipeline is serial: results of the next utterance not before
        self.audio_free_at: dict[str, float] = {}  # per language: synthesized audio stays in order
        self.partial_due: dict[str, float] = {}  # per transcription id: the last partial's due time
        self.ended = False
        self.finished = False  # the end message has been handed out
        self._queue: list[Outgoing] = []
        self._seq = itertools.count()

    # --- inputs ----------------------------------------------------------------------------------
    def feed(self, pcm: bytes, now: float) -> None:
        """Audio in the task's PCM format (whole frames), received at `now`."""
        if self.ended:
            return
        if self.first_audio_epoch is None:
            self.first_audio_epoch = self.wall_offset + now
        frame_bytes = 2 * self.channels
        samples = np.frombuffer(pcm[: len(pcm) // frame_bytes * frame_bytes], dtype="<i2")
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1).astype(np.int16)
        self.timeline.samples.extend(samples.astype("<i2").tobytes())
        for utterance in self.vad.feed(samples):
            self._confirm(utterance, now)
        if self.vad.speech_start is None:  # between utterances, analysed audio is never needed again
            self.timeline.forget_before(self.timeline.start + len(self.timeline.samples) // 2 - 2 * self.vad.frame_len)
        self._maybe_partial(now)

    def update_task(self, task: dict[str, Any]) -> None:
        """A running task changed (set_task `updated`); the input format stays the same."""
        self.task = task

    def interrupt(self, now: float) -> None:
        """Drop the phrase in flight and the results not yet sent (with realism, the imminent ones go out late)."""
        if self.vad.speech_start is not None:
            self.vad.reset()
            self.confirmed += 1  # the interrupted utterance's id is not reused
        window = self.realism.late_window(self.interrupts) if self.realism else 0.0
        self.interrupts += 1
        self._queue = [item for item in self._queue if (window and item.due <= now + window) or _is_end(item.frame)]
        heapq.heapify(self._queue)
        self.pipeline_free_at = min(self.pipeline_free_at, now + window)
        self.audio_free_at = {lang: min(at, now + window) for lang, at in self.audio_free_at.items()}
        self.partial_due.clear()

    def speak(self, transcription_id: str, text: str, languages: Iterable[str], now: float) -> None:
        """tts_task: a tone whose length follows the text, per language, through the same pipeline."""
        n = int(OUTPUT_RATE * min(5.0, 0.06 * len(text) + 0.2))
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 330 * np.arange(n) / OUTPUT_RATE)).astype(np.int16)
        languages = list(languages)
        plan = self._plan(1_000_000 + self.tts_count, targets=len(languages), words=1, languages=languages)
        self.tts_count += 1
        start = self._pipeline_start(now, plan)
        for language in languages:
            self._schedule_audio(transcription_id, language, [tone], start + plan.tts_lead_s, plan)

    def end(self, now: float, *, force: bool, end_message: str) -> None:
        """end_task: confirm the tail (unless forced), then the end message after every result."""
        if force:
            self._queue.clear()
        elif not self.ended:
            tail = self.vad.flush()
            if tail:
                self._confirm(tail, now)
        self.ended = True
        last = max((item.due for item in self._queue), default=now)
        self._push(max(now, last), encoding.encode_event(p.EndOfStream(end_message)))

    # --- outputs ---------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        return self._queue[0].due if self._queue else None

    def pop_due(self, now: float) -> list[Frame]:
        """Frames due by `now`, in order; frames due together form one burst."""
        frames = []
        while self._queue and self._queue[0].due <= now:
            frame = heapq.heappop(self._queue).frame
            frames.append(frame)
            if _is_end(frame):
                self.finished = True
                self._queue.clear()
        return frames

    # --- scheduling ------------------------------------------------------------------------------
    def _push(self, due: float, frame: Frame, transcription_id: str | None = None) -> None:
        heapq.heappush(self._queue, Outgoing(due, next(self._seq), frame, transcription_id))

    def _plan(self, index: int, *, targets: int, words: int, languages: list[str]) -> UtterancePlan:
        if self.realism is None:
            return UtterancePlan.deterministic(self.settings.processing_delay_s, self.settings.output_chunk_s)
        return self.realism.plan(index, targets=targets, words=words, languages=tuple(languages))

    def _pipeline_start(self, now: float, plan: UtterancePlan, transcription_id: str | None = None) -> float:
        """When this utterance's first result is due: after its own delay, the previous one's results, its partials."""
        start = max(now, self.pipeline_free_at) + plan.delay_s
        if transcription_id is not None:
            start = max(start, self.partial_due.pop(transcription_id, start))
        self.pipeline_free_at = start
        return start

    def _confirm(self, utterance: Utterance, now: float) -> None:
        index, self.confirmed = self.confirmed, self.confirmed + 1
        self.next_partial_at = 0.0
        speech = self.timeline.take(int(utterance.start * self.rate), int(utterance.end * self.rate))
        tid = self.transcription_id(index)
        text = self._source_text(tid, utterance.end - utterance.start)
        targets = target_languages(self.task)
        plan = self._plan(index, targets=len(targets), words=len(text.split()), languages=targets)
        start = self._pipeline_start(now, plan, tid)
        source = self.task["pipeline"]["transcription"]["source_language"]
        validated = p.ValidatedTranscription(tid, source, text, (self._segment(text, utterance.start, utterance.end),))
        translations_due = [start + (plan.text_gap(i) if plan.order == "after" else 0.0) for i in range(len(targets))]
        validated_due = start + max(plan.text_gap(i) for i in range(len(targets))) if plan.order == "before" else start
        last_text = self._schedule_transcript(validated_due, validated, plan)
        out = self._to_output_rate(speech)
        for language, due in zip(targets, translations_due, strict=True):
            last_text = max(last_text, self._schedule_translation(due, language, validated, out, plan))
        # Stages run in any order within an utterance, but utterances come out in order.
        self.pipeline_free_at = max(self.pipeline_free_at, last_text)
        if "pipeline_timings" in self._allowed():
            timings = {name: plan.delay_s for name in _TIMING_STAGES}
            last = max((item.due for item in self._queue if item.transcription_id == tid), default=start)
            self._push(
                last, encoding.encode_event(p.PipelineTimings(tid, {**timings, "partial_transcription": 0.0})), tid
            )
        for offset, frame in plan.extras:
            self._push(start + offset, frame)

    def _schedule_transcript(self, due: float, event: p.Transcription, plan: UtterancePlan) -> float:
        """Schedule one transcript (twice if the plan duplicates its type); the last due time used."""
        if event.message_type not in self._allowed():
            return due
        frame = encoding.encode_event(event)
        self._push(due, frame, event.transcription_id)
        if event.message_type in plan.duplicates:
            due += plan.duplicate_gap_s
            self._push(due, frame, event.transcription_id)
        return due

    def _schedule_translation(
        self, due: float, language: str, validated: p.ValidatedTranscription, out: np.ndarray, plan: UtterancePlan
    ) -> float:
        """The translation's parts and their audio; returns when its last text is due."""
        words = f"[{language}] {validated.text}".split()
        start, end = validated.start or 0.0, validated.end or 0.0
        bounds = [round(k * len(words) / plan.parts) for k in range(plan.parts + 1)]
        pcm_parts, last = [], due
        for part, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            text = " ".join(words[lo:hi])
            t0, t1 = start + (end - start) * lo / len(words), start + (end - start) * hi / len(words)
            event = p.TranslatedTranscription(
                validated.transcription_id, language, text, (self._segment(text, t0, t1),), translation_part_id=part
            )
            last = self._schedule_transcript(due + part * plan.part_gap_s, event, plan)
            pcm_parts.append(out[len(out) * lo // len(words) : len(out) * hi // len(words)])
        self._schedule_audio(validated.transcription_id, language, pcm_parts, due + plan.tts_lead_s, plan)
        return last

    def _schedule_audio(
        self, tid: str, language: str, parts: list[np.ndarray], start: float, plan: UtterancePlan
    ) -> None:
        """Each part's chunks, in bursts at `plan.speed` times real time, after the language's previous audio.

        Chunks of one burst share a due time; the next burst is due once this one's audio would
        have been generated. A part's audio never starts before its own text (`start` + its gap).
        """
        if self.task.get("output_stream") is None:
            return
        zlib_audio = (self.task["output_stream"].get("target") or {}).get("format") == "zlib_pcm_s16le"
        sizes, bursts = itertools.cycle(plan.chunk_samples), itertools.cycle(plan.burst_chunks)
        at, generated = max(start, self.audio_free_at.get(language, start)), 0.0
        for part, pcm in enumerate(parts):
            at, generated, burst_left = max(at + generated, start + part * plan.part_gap_s), 0.0, next(bursts)
            offset = 0
            while offset < len(pcm):
                chunk = pcm[offset : offset + next(sizes)]
                offset += len(chunk)
                audio = p.OutputAudio(tid, language, chunk.tobytes(), offset >= len(pcm), str(part))
                self._push(at, encoding.encode_event(audio, zlib_audio=zlib_audio), tid)
                generated += len(chunk) / OUTPUT_RATE / plan.speed
                burst_left -= 1
                if burst_left == 0:  # 0 from the start (deterministic plan): one burst for everything
                    at, generated, burst_left = at + generated, 0.0, next(bursts)
        self.audio_free_at[language] = at + generated

    def _maybe_partial(self, now: float) -> None:
        start = self.vad.speech_start
        if start is None:
            return
        spoken = self.vad.last_voiced_end - start  # trailing silence is not speech
        if spoken < self.next_partial_at + self.settings.partial_interval_s:
            return
        self.next_partial_at = spoken
        tid = self.transcription_id(self.confirmed)
        text = self._source_text(tid, spoken)
        segment = self._segment(text, start, self.vad.last_voiced_end)
        source = self.task["pipeline"]["transcription"]["source_language"]
        plan = UtterancePlan() if self.realism is None else self.realism.plan(self.confirmed, targets=1, words=1)
        self.partial_due[tid] = self._schedule_transcript(
            now, p.PartialTranscription(tid, source, text, (segment,)), plan
        )
        if "partial_translated_transcription" not in self._allowed():
            return
        for tr in self.task["pipeline"]["translations"]:
            if not tr.get("translate_partial_transcriptions"):
                continue
            lag = self.realism.partial_lag(self.confirmed, self.partials_sent) if self.realism else 0.0
            self.partials_sent += 1
            if lag is None:
                continue
            lang = tr["target_language"]
            event = p.PartialTranslatedTranscription(tid, lang, f"[{lang}] {text}", (segment,), translation_part_id=0)
            self._push(now + lag, encoding.encode_event(event), tid)
            self.partial_due[tid] = max(self.partial_due[tid], now + lag)

    # --- content ---------------------------------------------------------------------------------
    def _to_output_rate(self, speech: np.ndarray) -> np.ndarray:
        out = speech if self.rate == OUTPUT_RATE else soxr.resample(speech, self.rate, OUTPUT_RATE)
        return np.asarray(out, dtype="<i2")

    def _segment(self, text: str, start: float, end: float) -> p.Segment:
        words = text.split()
        span = (end - start) / max(1, len(words))
        epoch = self.first_audio_epoch or self.wall_offset
        return p.Segment(
            text,
            round(start, 3),
            round(end, 3),
            epoch + start,
            epoch + end,
            tuple(p.Word(w, round(start + i * span, 3), round(start + (i + 1) * span, 3)) for i, w in enumerate(words)),
        )

    def _allowed(self) -> list[str]:
        pipeline = self.task["pipeline"]
        allowed = pipeline.get("allowed_message_types", self.task.get("allowed_message_types"))
        return list(allowed or DEFAULT_MESSAGE_TYPES)

    def transcription_id(self, index: int) -> str:
        return hashlib.sha1(f"{self.stream_id}:{index}".encode()).hexdigest()[:16]

    @staticmethod
    def _source_text(tid: str, seconds: float) -> str:
        """Deterministic growing text: one word per WORD_S of speech."""
        return " ".join(f"w{tid[:4]}{k}" for k in range(max(1, int(seconds / WORD_S))))


_TIMING_STAGES = (
    "validated_transcription",
    "translated_transcription",
    "prepared_tts_task",
    "sent_tts_task",
    "tts",
    "sent_to_nats",
    "total",
)


def _is_end(frame: Frame) -> bool:
    return frame.get("message_type") in ("end_of_stream", "eos")
