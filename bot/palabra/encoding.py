"""The server side of Palabra's wire: each typed event as the frame Palabra sends (the inverse of
`protocol.parse_message`), so the emulator builds its frames from the client's own types."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from bot.palabra import protocol as p


def encode_event(event: p.Event, *, zlib_audio: bool = False) -> dict[str, Any]:
    """The wire frame (`{"message_type", "data"}`) of a server event: the inverse of `parse_message`.

    Shapes follow what Palabra sends (probe and SDK fixtures): transcripts nested in
    `data.transcription`, `output_audio_data` flat with a string `translation_part_id`.
    """
    message_type, data = _encode(event, zlib_audio)
    return {"message_type": message_type, "data": data}


def encode_json(event: p.Event, *, zlib_audio: bool = False) -> str:
    return json.dumps(encode_event(event, zlib_audio=zlib_audio))


def _encode(event: p.Event, zlib_audio: bool) -> tuple[str, dict[str, Any]]:
    if isinstance(event, p.Transcription):
        return event.message_type, {"transcription": _encode_transcription(event)}
    if isinstance(event, p.OutputAudio):
        pcm = zlib.compress(event.pcm) if zlib_audio and event.pcm else event.pcm
        return "output_audio_data", {
            "transcription_id": event.transcription_id,
            "translation_part_id": event.translation_part_id,
            "language": event.language,
            "last_chunk": event.last_chunk,
            "data": base64.b64encode(pcm).decode("ascii"),
            "chunk_generation_delta": event.chunk_generation_delta,
        }
    if isinstance(event, p.TaskStatus):
        status: dict[str, Any] = {"command": event.command, "event": event.event, "task_status": event.status}
        if event.transcription_id is not None:
            status["transcription_id"] = event.transcription_id
        return "task_status", status
    if isinstance(event, p.CurrentTask):
        return "current_task", {**event.task, "task_status": event.status}
    if isinstance(event, p.ErrorMessage):
        return "error", {"code": event.code, "desc": event.desc, "param": event.param}
    if isinstance(event, p.WarningMessage):
        return "warning", {"code": event.code, "message": event.message}
    if isinstance(event, p.EndOfStream):
        return event.message_type, {}
    if isinstance(event, p.PipelineTimings):
        return "pipeline_timings", {"transcription_id": event.transcription_id, "timings": dict(event.timings)}
    if isinstance(event, p.TtsBufferStats):
        stats: dict[str, Any] = dict(event.stats)
        if event.timestamp is not None:
            stats["timestamp"] = event.timestamp
        return "tts_buffer_stats", {"stats": stats}
    if isinstance(event, p.Unknown):
        return event.message_type, event.data if isinstance(event.data, dict) else {}
    raise TypeError(f"{type(event).__name__} is not sent by the server")


def _encode_transcription(event: p.Transcription) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transcription_id": event.transcription_id,
        "language": event.language,
        "text": event.text,
        "segments": [
            {
                "text": s.text,
                "start": s.start,
                "end": s.end,
                "start_timestamp": s.start_timestamp,
                "end_timestamp": s.end_timestamp,
                "words": [{"word": w.word, "start": w.start, "end": w.end} for w in s.words],
            }
            for s in event.segments
        ],
    }
    if event.translation_part_id is not None:
        body["translation_part_id"] = event.translation_part_id
    return body
