"""Drives the emulator's `FakeTranslator` on a fake clock, as its sender would, and reads the frames."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr

from bot.palabra import protocol as p
from bot.palabra.emulator.realism import Realism, RealismProfile
from bot.palabra.emulator.translator import FakeTranslator, TranslatorSettings
from bot.palabra.task import build_task

RATE = 16000
CHUNK = 5120  # 160 ms at 16 kHz


@dataclass
class Sent:
    at: float
    frame: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.frame.get("message_type", ""))

    @property
    def event(self) -> p.Event | None:
        return p.parse_message(_json(self.frame))


@dataclass
class Run:
    sent: list[Sent] = field(default_factory=list)
    confirmed_at: dict[str, float] = field(default_factory=dict)  # tid -> clock time its utterance was confirmed
    interrupted_at: float | None = None

    def events(self, cls: type[p.Event]) -> list[tuple[float, Any]]:
        return [(s.at, e) for s in self.sent if isinstance(e := s.event, cls)]

    def of(self, cls: type[p.Event]) -> list[Any]:
        return [e for _, e in self.events(cls)]

    def audio(self, tid: str, language: str) -> bytes:
        return b"".join(a.pcm for a in self.of(p.OutputAudio) if (a.transcription_id, a.language) == (tid, language))

    def signature(self) -> list[tuple[float, str]]:
        return [(round(s.at, 9), _json(s.frame)) for s in self.sent]


def _json(frame: dict[str, Any]) -> str:
    return json.dumps(frame, sort_keys=True)


def translator(
    seed: int | None = None,
    *,
    task: dict[str, Any] | None = None,
    delay_s: tuple[float, float] = (0.0, 7.0),
    stream_id: int = 1,
    **settings: Any,
) -> FakeTranslator:
    realism = None if seed is None else Realism(seed, stream_id=stream_id, profile=RealismProfile(delay_s=delay_s))
    return FakeTranslator(
        task or build_task("en", ["es", "fr"]),
        stream_id=stream_id,
        settings=TranslatorSettings(**settings),
        realism=realism,
    )


def drive(
    t: FakeTranslator,
    pcm: bytes,
    *,
    interrupt_at: float | None = None,
    end: bool = True,
    force: bool = False,
) -> Run:
    """Feed `pcm` in real time (the clock is the audio's own time), then end_task; collect every frame."""
    run, now = Run(), 0.0
    confirmed = t.confirmed

    def drain(until: float) -> None:
        while (due := t.next_deadline()) is not None and due <= until:
            run.sent.extend(Sent(due, frame) for frame in t.pop_due(due))

    for offset in range(0, len(pcm), CHUNK):
        drain(now)
        if interrupt_at is not None and run.interrupted_at is None and now >= interrupt_at:
            t.interrupt(now)
            run.interrupted_at = now
        t.feed(pcm[offset : offset + CHUNK], now)
        for index in range(confirmed, t.confirmed):
            run.confirmed_at[t.transcription_id(index)] = now
        confirmed = t.confirmed
        now += len(pcm[offset : offset + CHUNK]) / (2 * RATE)
    if end:
        t.end(now, force=force, end_message="end_of_stream")
        for index in range(confirmed, t.confirmed):
            run.confirmed_at[t.transcription_id(index)] = now
    drain(math.inf)
    return run


def expected_output(pcm: bytes, validated: p.ValidatedTranscription) -> np.ndarray:
    """The utterance's input audio, resampled the way the emulator does (its "translation")."""
    samples = np.frombuffer(pcm, dtype="<i2")
    speech = samples[int((validated.start or 0) * RATE) : int((validated.end or 0) * RATE)]
    return np.asarray(soxr.resample(speech, RATE, 24000), dtype="<i2")
