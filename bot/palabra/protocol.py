"""Palabra's translation management protocol, both directions, without any I/O.

Outgoing commands are dataclasses with `to_json()`. Incoming text frames go through
`parse_message(text)`, which returns a typed event, or None for frames that carry no message
(queue-status frames, `{}`). It never raises on server input: anything unusable becomes a
`Malformed` event and a log line, unknown message types an `Unknown` event.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bot.audio.frames import PALABRA_OUTPUT_RATE

log = logging.getLogger(__name__)


# --- client -> server ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    message_type: ClassVar[str] = ""

    def payload(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"message_type": self.message_type, "data": self.payload()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass(frozen=True)
class SetTask(Command):
    message_type: ClassVar[str] = "set_task"
    task: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return self.task


@dataclass(frozen=True)
class GetTask(Command):
    message_type: ClassVar[str] = "get_task"
    exclude_hidden: bool | None = None

    def payload(self) -> dict[str, Any]:
        return {} if self.exclude_hidden is None else {"exclude_hidden": self.exclude_hidden}


@dataclass(frozen=True)
class InputAudioData(Command):
    message_type: ClassVar[str] = "input_audio_data"
    audio: bytes

    def payload(self) -> dict[str, Any]:
        return {"data": base64.b64encode(self.audio).decode("ascii")}


@dataclass(frozen=True)
class PauseTask(Command):
    message_type: ClassVar[str] = "pause_task"


@dataclass(frozen=True)
class InterruptTask(Command):
    message_type: ClassVar[str] = "interrupt_task"
    languages: tuple[str, ...] = ("global",)
    pause_task: bool = False

    def payload(self) -> dict[str, Any]:
        return {"languages": list(self.languages) or ["global"], "pause_task": self.pause_task}


@dataclass(frozen=True)
class FlushTask(InterruptTask):
    """The legacy name of interrupt_task (docs, SDK <= 2.1.0)."""

    message_type: ClassVar[str] = "flush_task"


@dataclass(frozen=True)
class EndTask(Command):
    """`{}` (SDK >= 2.1.1) or the legacy `{eos_timeout, force}` form."""

    message_type: ClassVar[str] = "end_task"
    eos_timeout: int | None = None
    force: bool | None = None

    def __post_init__(self) -> None:
        if self.eos_timeout is not None and not 1 <= self.eos_timeout <= 30:
            raise ValueError(f"eos_timeout must be 1-30 seconds, got {self.eos_timeout}")

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.force is not None:
            data["force"] = self.force
        if self.eos_timeout is not None:
            data["eos_timeout"] = self.eos_timeout
        return data


@dataclass(frozen=True)
class TtsTask(Command):
    message_type: ClassVar[str] = "tts_task"
    text: str
    language: str
    translate_text: bool = False

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "language": self.language, "translate_text": self.translate_text}


# --- server -> client ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class Word:
    word: str
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Segment:
    text: str
    start: float
    end: float
    start_timestamp: float | None = None
    end_timestamp: float | None = None
    words: tuple[Word, ...] = ()

    def shifted(self, offset: float) -> Segment:
        words = tuple(
            Word(w.word, None if w.start is None else w.start + offset, None if w.end is None else w.end + offset)
            for w in self.words
        )
        return dataclasses.replace(self, start=self.start + offset, end=self.end + offset, words=words)


@dataclass(frozen=True)
class Transcription(Event):
    message_type: ClassVar[str] = "transcription"
    is_final: ClassVar[bool] = False
    is_translation: ClassVar[bool] = False
    transcription_id: str
    language: str
    text: str
    segments: tuple[Segment, ...] = ()
    translation_part_id: int | None = None

    @property
    def start(self) -> float | None:
        return self.segments[0].start if self.segments else None

    @property
    def end(self) -> float | None:
        return self.segments[-1].end if self.segments else None

    def shifted(self, offset: float) -> Transcription:
        """The same message with segment times moved by `offset` seconds (one continuous timeline)."""
        if not offset:
            return self
        return dataclasses.replace(self, segments=tuple(s.shifted(offset) for s in self.segments))

    def mapped(self, offset_at: Callable[[float], float]) -> Transcription:
        """Each segment moved by `offset_at(its start)`: the times of a stream that skipped silence
        (idle pauses) land on the one continuous timeline piece by piece."""
        return dataclasses.replace(self, segments=tuple(s.shifted(offset_at(s.start)) for s in self.segments))


@dataclass(frozen=True)
class PartialTranscription(Transcription):
    message_type: ClassVar[str] = "partial_transcription"


@dataclass(frozen=True)
class ValidatedTranscription(Transcription):
    message_type: ClassVar[str] = "validated_transcription"
    is_final: ClassVar[bool] = True


@dataclass(frozen=True)
class TranslatedTranscription(Transcription):
    message_type: ClassVar[str] = "translated_transcription"
    is_final: ClassVar[bool] = True
    is_translation: ClassVar[bool] = True


@dataclass(frozen=True)
class PartialTranslatedTranscription(Transcription):
    message_type: ClassVar[str] = "partial_translated_transcription"
    is_translation: ClassVar[bool] = True


@dataclass(frozen=True)
class OutputAudio(Event):
    """One chunk of translated speech: PCM s16le, 24 kHz, mono (decompressed if zlib)."""

    transcription_id: str
    language: str
    pcm: bytes = field(repr=False)
    last_chunk: bool = False
    translation_part_id: str | None = None
    chunk_generation_delta: float | None = None

    SAMPLE_RATE: ClassVar[int] = PALABRA_OUTPUT_RATE

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.SAMPLE_RATE


@dataclass(frozen=True)
class TaskStatus(Event):
    command: str
    event: str
    status: str
    transcription_id: str | None = None

    @property
    def confirms_task(self) -> bool:
        """The set_task ack SDK 2.2 waits for before streaming."""
        return (
            self.command == "set_task"
            and self.event in ("started", "updated", "unchanged", "resumed")
            and self.status == "running"
        )


@dataclass(frozen=True)
class CurrentTask(Event):
    task: dict[str, Any]
    status: str


@dataclass(frozen=True)
class ErrorMessage(Event):
    code: str
    desc: str
    param: Any = None


@dataclass(frozen=True)
class WarningMessage(Event):
    code: str
    message: str


@dataclass(frozen=True)
class EndOfStream(Event):
    message_type: str = "end_of_stream"  # or "eos" (legacy dialect)


@dataclass(frozen=True)
class PipelineTimings(Event):
    transcription_id: str
    timings: dict[str, float]


@dataclass(frozen=True)
class TtsBufferStats(Event):
    stats: dict[str, dict[str, Any]]
    timestamp: float | None = None


@dataclass(frozen=True)
class Unknown(Event):
    message_type: str
    data: Any


@dataclass(frozen=True)
class Malformed(Event):
    reason: str
    raw: str = field(repr=False)


@dataclass(frozen=True)
class Reconnected(Event):
    """Emitted by the streaming client (not the server) after it re-established a dropped session."""

    attempt: int
    replayed_s: float
    reason: str


_TRANSCRIPTIONS: dict[str, type[Transcription]] = {
    cls.message_type: cls
    for cls in (PartialTranscription, ValidatedTranscription, TranslatedTranscription, PartialTranslatedTranscription)
}


def parse_message(text: str | bytes, *, zlib_audio: bool = False) -> Event | None:
    """One server frame -> an event; None for frames without a message (`{}`, queue status)."""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    try:
        message = json.loads(raw)
    except (json.JSONDecodeError, TypeError) as exc:
        return _malformed(f"not JSON: {exc}", raw)
    if not isinstance(message, dict):
        return _malformed("not a JSON object", raw)
    message_type = message.get("message_type")
    if not message_type:
        if message:
            log.debug("ignoring frame without message_type (keys: %s)", ", ".join(sorted(map(str, message))))
        return None
    data = message.get("data")
    if isinstance(data, str):  # some servers double-encode `data`
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            return _malformed(f"{message_type}: data is a string but not JSON: {exc}", raw)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return _malformed(f"{message_type}: data is {type(data).__name__}, not an object", raw)
    try:
        return _parse_known(str(message_type), data, zlib_audio) or Unknown(str(message_type), data)
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, zlib.error) as exc:
        return _malformed(f"{message_type}: {exc}", raw)


def _malformed(reason: str, raw: str) -> Malformed:
    log.warning("malformed message from Palabra: %s", reason)
    return Malformed(reason, raw)


def _parse_known(message_type: str, data: dict[str, Any], zlib_audio: bool) -> Event | None:
    if message_type in _TRANSCRIPTIONS:
        return _parse_transcription(_TRANSCRIPTIONS[message_type], data)
    if message_type == "output_audio_data":
        return _parse_audio(data, zlib_audio)
    if message_type == "task_status":
        return TaskStatus(
            str(data.get("command", "")),
            str(data.get("event", "")),
            str(data.get("task_status", "unknown")),
            _opt_str(data.get("transcription_id")),
        )
    if message_type == "current_task":
        task = {k: v for k, v in data.items() if k != "task_status"}
        return CurrentTask(task, str(data.get("task_status", "unknown")))
    if message_type == "error":
        return ErrorMessage(str(data.get("code") or "UNKNOWN_ERROR"), _error_text(data), data.get("param"))
    if message_type == "warning":
        return WarningMessage(str(data.get("code", "")), str(data.get("message") or data.get("desc") or ""))
    if message_type in ("end_of_stream", "eos"):
        return EndOfStream(message_type)
    if message_type == "pipeline_timings":
        timings = data.get("timings") or {}
        return PipelineTimings(
            str(data.get("transcription_id", "")),
            {str(k): float(v) for k, v in timings.items() if isinstance(v, (int, float))},
        )
    if message_type == "tts_buffer_stats":
        stats = dict(data.get("stats") or {})
        timestamp = stats.pop("timestamp", None)
        return TtsBufferStats(
            {k: v for k, v in stats.items() if isinstance(v, dict)}, float(timestamp) if timestamp is not None else None
        )
    return None


def _parse_transcription(cls: type[Transcription], data: dict[str, Any]) -> Transcription:
    body = data.get("transcription") or data  # tolerate a flat shape
    part = body.get("translation_part_id")
    return cls(
        transcription_id=str(body.get("transcription_id", "")),
        language=str(body.get("language", "")),
        text=str(body.get("text", "")),
        segments=tuple(_parse_segment(s) for s in body.get("segments") or () if isinstance(s, dict)),
        translation_part_id=int(part) if part is not None and str(part).isdigit() else None,
    )


def _parse_segment(seg: dict[str, Any]) -> Segment:
    words = tuple(
        Word(str(w.get("word", "")), _opt_float(w.get("start")), _opt_float(w.get("end")))
        for w in seg.get("words") or ()
        if isinstance(w, dict)
    )
    return Segment(
        str(seg.get("text", "")),
        float(seg.get("start") or 0.0),
        float(seg.get("end") or 0.0),
        _opt_float(seg.get("start_timestamp")),
        _opt_float(seg.get("end_timestamp")),
        words,
    )


def _parse_audio(data: dict[str, Any], zlib_audio: bool) -> OutputAudio:
    pcm = base64.b64decode(data.get("data") or "", validate=True)
    if zlib_audio and pcm:
        pcm = zlib.decompress(pcm)
    part = data.get("translation_part_id")
    return OutputAudio(
        transcription_id=str(data.get("transcription_id", "")),
        language=str(data.get("language", "")),
        pcm=pcm,
        last_chunk=bool(data.get("last_chunk", False)),
        translation_part_id=None if part is None else str(part),
        chunk_generation_delta=_opt_float(data.get("chunk_generation_delta")),
    )


def _error_text(data: dict[str, Any]) -> str:
    """`desc` (probe, Python), `description` (JS) or `msg` (docs); desc may be a pydantic error list."""
    text = data.get("desc") or data.get("description") or data.get("msg") or ""
    if isinstance(text, list):
        parts = []
        for item in text:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or ())
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(text)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
