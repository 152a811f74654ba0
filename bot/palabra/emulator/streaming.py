"""The emulator's streaming half: Palabra's speech-to-speech WebSocket protocol.

One `StreamSession` per connection. Its "translation" is deterministic: an energy VAD finds
utterances in the received audio, partials grow while one is spoken, and once trailing silence
confirms it the session sends the validated text, one translation per target and, as translated
speech, the utterance's own input audio resampled to 24 kHz (so tests can correlate signals).
Dialect switches, limits and fault injection come from `state.config`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import io
import json
import logging
import time
import wave
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr
from aiohttp import WSMsgType, web

from bot.palabra import languages
from bot.palabra.emulator.state import STATE, EmulatorState, StreamRecord
from bot.palabra.emulator.vad import EnergyVad, Utterance

log = logging.getLogger(__name__)

OUTPUT_RATE = 24000
TRANSCRIPT_TYPES = (
    "partial_transcription",
    "validated_transcription",
    "translated_transcription",
    "partial_translated_transcription",
)


@dataclass
class StreamLog:
    """What the emulator observed on one connection, beyond the shared StreamRecord (for tests)."""

    chunk_times: list[float] = field(default_factory=list)  # monotonic arrival of each input_audio_data
    chunk_bytes: list[int] = field(default_factory=list)  # decoded size of each
    warnings: list[str] = field(default_factory=list)
    dropped: bool = False


STREAM_LOGS: web.AppKey[dict[int, StreamLog]] = web.AppKey("palabra_emulator_stream_logs", dict)
_DROPS: web.AppKey[list[int]] = web.AppKey("palabra_emulator_drops", list)
_OPEN: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("palabra_emulator_open_sockets", set)


def add_routes(app: web.Application) -> None:
    app[STREAM_LOGS] = {}
    app[_DROPS] = [0]
    app[_OPEN] = set()
    app.on_shutdown.append(_close_open_sockets)
    app.router.add_get("/streaming-api/v1/speech-to-speech/stream", _handle)
    app.router.add_get("/streaming-api/{hash}/v1/speech-to-speech/stream", _handle)


async def _handle(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    token = request.query.get("token")
    owner = state.authenticate_stream_token(token)
    if owner is None:
        return web.Response(status=403, text="Forbidden")
    assert token is not None
    if not state.allow_ws_connection(token):
        return web.Response(
            status=429,
            text="Too many connections for this token; the limit is "
            f"{state.config.ws_connections_per_minute} per minute",
        )
    ws = web.WebSocketResponse(max_msg_size=0, heartbeat=None)
    await ws.prepare(request)
    record = state.open_stream(owner)
    stream_log = request.app[STREAM_LOGS].setdefault(record.id, StreamLog())
    session = StreamSession(state, record, stream_log, ws, request, request.app[_DROPS])
    request.app[_OPEN].add(ws)
    try:
        await session.run()
    finally:
        request.app[_OPEN].discard(ws)
        state.close_stream(record, session.close_code if session.close_code is not None else ws.close_code)
    return ws


async def _close_open_sockets(app: web.Application) -> None:
    """On shutdown, close streams with 1001 (going away) instead of waiting for them to time out."""
    for ws in list(app[_OPEN]):
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close(code=1001, message=b"server shutting down")


Errors = list[dict[str, Any]]


def _error(errors: Errors, loc: tuple, msg: str, kind: str, ctx: dict | None = None) -> None:
    item: dict[str, Any] = {"loc": loc, "msg": msg, "type": kind}
    if ctx:
        item["ctx"] = ctx
    errors.append(item)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def validation_errors(task: Any) -> Errors:
    """Pydantic-v1-style error dicts, as Palabra's VALIDATION_ERROR desc shows them."""
    errors: Errors = []
    if not isinstance(task, dict):
        _error(errors, ("__root__",), "value is not a valid dict", "type_error.dict")
        return errors
    pipeline = _dict(task.get("pipeline"))
    _input_errors(errors, task)
    _transcription_errors(errors, _dict(pipeline.get("transcription")))
    _translation_errors(errors, pipeline.get("translations"))
    _queue_errors(errors, pipeline.get("translation_queue_configs", task.get("translation_queue_configs")))
    return errors


def _input_errors(errors: Errors, task: dict) -> None:
    source = _dict(task.get("input_stream")).get("source")
    if not isinstance(source, dict):
        _error(errors, ("input_stream", "source"), "field required", "value_error.missing")
        return
    if source.get("type", "ws") != "ws":
        return
    rate = source.get("sample_rate")
    if not isinstance(rate, int) or not 16000 <= rate <= 48000:
        low = not isinstance(rate, int) or rate < 16000
        bound = "greater than or equal to 16000" if low else "less than or equal to 48000"
        _error(errors, ("input_stream", "source", "sample_rate"), f"ensure this value is {bound}", "value_error.number")
    if source.get("format") not in ("pcm_s16le", "opus", "wav"):
        _error(
            errors,
            ("input_stream", "source", "format"),
            "unexpected value; permitted: 'pcm_s16le', 'opus', 'wav'",
            "value_error.const",
        )
    if source.get("channels", 1) not in (1, 2):
        _error(errors, ("input_stream", "source", "channels"), "unexpected value; permitted: 1, 2", "value_error.const")
    output = task.get("output_stream")
    fmt = _dict(_dict(output).get("target")).get("format", "pcm_s16le")
    if fmt not in ("pcm_s16le", "zlib_pcm_s16le"):
        _error(
            errors,
            ("output_stream", "target", "format"),
            "unexpected value; permitted: 'pcm_s16le', 'zlib_pcm_s16le'",
            "value_error.const",
        )


def _transcription_errors(errors: Errors, transcription: dict) -> None:
    loc = ("pipeline", "transcription")
    source = transcription.get("source_language")
    if source is None:
        _error(errors, (*loc, "source_language"), "field required", "value_error.missing")
    elif source not in languages.SOURCE_LANGUAGES:
        _error(errors, (*loc, "source_language"), f"unsupported language: {source!r}", "value_error")
    threshold = transcription.get("segment_confirmation_silence_threshold", 0.7)
    field_loc = (*loc, "segment_confirmation_silence_threshold")
    if not isinstance(threshold, (int, float)) or threshold < 0.3:
        _error(
            errors,
            field_loc,
            "ensure this value is greater than or equal to 0.3",
            "value_error.number.not_ge",
            {"limit_value": 0.3},
        )
    elif threshold > 2.0:
        _error(
            errors,
            field_loc,
            "ensure this value is less than or equal to 2.0",
            "value_error.number.not_le",
            {"limit_value": 2.0},
        )


def _translation_errors(errors: Errors, translations: Any) -> None:
    if not translations or not isinstance(translations, list):
        _error(
            errors, ("pipeline", "translations"), "ensure this value has at least 1 items", "value_error.list.min_items"
        )
        return
    for index, item in enumerate(translations):
        code = _dict(item).get("target_language")
        if code not in languages.TARGET_LANGUAGES:
            _error(
                errors,
                ("pipeline", "translations", index, "target_language"),
                f"unsupported language: {code!r}",
                "value_error",
            )


def _queue_errors(errors: Errors, queues: Any) -> None:
    for name, queue in _dict(queues).items():
        desired = _dict(queue).get("desired_queue_level_ms", 5000)
        maximum = _dict(queue).get("max_queue_level_ms", 20000)
        if not all(isinstance(v, (int, float)) for v in (desired, maximum)):
            _error(
                errors,
                ("pipeline", "translation_queue_configs", name),
                "value is not a valid integer",
                "type_error.integer",
            )
        elif maximum <= desired:
            _error(
                errors,
                ("pipeline", "translation_queue_configs", name, "__root__"),
                "`max_queue_level_ms` must be greater than `desired_queue_level_ms`",
                "value_error",
            )


def _normalised(task: dict) -> str:
    """Identity of a task for set_task `unchanged`: object key order ignored, array order kept."""
    return json.dumps(task, sort_keys=True)


class _Closed(Exception):
    """The connection is gone; stop handling this stream."""


class StreamSession:
    def __init__(
        self,
        state: EmulatorState,
        record: StreamRecord,
        stream_log: StreamLog,
        ws: web.WebSocketResponse,
        request: web.Request,
        drops: list[int],
    ) -> None:
        self.state, self.config = state, state.config
        self.record, self.log, self.ws, self.request, self.drops = record, stream_log, ws, request, drops
        self.task: dict | None = None
        self.status = "none"  # none | running | paused
        self.running_since = 0.0
        self.ended = False
        self.vad: EnergyVad | None = None
        self.timeline = bytearray()  # mono s16le analysed but not yet emitted as output audio
        self.timeline_start = 0  # sample index of timeline[0]
        self.emitting = False  # the result worker holds an utterance it has not finished emitting
        self.rate, self.channels, self.fmt = 16000, 1, "pcm_s16le"
        self.first_audio_wall: float | None = None
        self.paused_at = 0.0
        self.first_audio_epoch = 0.0
        self.audio_s = 0.0
        self.last_audio = time.monotonic()
        self.last_command: dict[str, float] = {}
        self.tts_times: list[float] = []
        self.confirmed = 0  # utterances confirmed so far; the next one's index
        self.next_partial_at = 0.0
        self.results: asyncio.Queue[tuple[int, Utterance] | dict | None] = asyncio.Queue()
        self.send_lock = asyncio.Lock()
        self.last_warning = 0.0
        self.tasks: list[asyncio.Task] = []
        self.close_code: int | None = None  # the code this side closed with (aiohttp reports the peer's echo)

    # --- main loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        self.tasks = [asyncio.create_task(self._watchdog()), asyncio.create_task(self._result_worker())]
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                await self._dispatch(msg.data)
                if self.ended:
                    break
        except _Closed:
            pass
        finally:
            for task in self.tasks:
                task.cancel()
            for task in self.tasks:
                with contextlib.suppress(asyncio.CancelledError, _Closed, ConnectionError):
                    await task
            if not self.ws.closed and not self.log.dropped:
                await self.ws.close()

    async def _dispatch(self, text: str) -> None:
        try:
            message = json.loads(text)
            kind = message["message_type"]
            data = message.get("data") or {}
            if isinstance(data, str):
                data = json.loads(data)
        except (json.JSONDecodeError, KeyError, TypeError):
            await self._error("VALIDATION_ERROR", 'Invalid message: expected {"message_type": ..., "data": {...}}')
            return
        self.record.messages_in[kind] = self.record.messages_in.get(kind, 0) + 1
        handler = {
            "set_task": self._set_task,
            "get_task": self._get_task,
            "input_audio_data": self._audio,
            "pause_task": self._pause,
            "interrupt_task": self._interrupt,
            "flush_task": self._interrupt,
            "end_task": self._end,
            "tts_task": self._tts,
        }.get(kind)
        if handler is None:
            await self._error("VALIDATION_ERROR", f"Unknown message_type: {kind!r}")
            return
        if await self._rate_limited(kind):
            return
        if not isinstance(data, dict):
            await self._error("VALIDATION_ERROR", f"{kind}: data must be an object")
            return
        await handler(kind, data)

    async def _rate_limited(self, kind: str) -> bool:
        if not self.config.enforce_command_rate_limits:
            return False
        now = time.monotonic()
        if kind == "tts_task":
            self.tts_times = [t for t in self.tts_times if now - t < 60.0]
            if len(self.tts_times) >= 60:
                await self._error("RATE_LIMIT_EXCEEDED", "tts_task is limited to 60 per minute")
                return True
            self.tts_times.append(now)
            return False
        interval = self.config.command_interval_s.get(kind)
        if interval is None:
            return False
        bucket = "task" if kind in ("set_task", "get_task") else kind
        last = self.last_command.get(bucket)
        if last is not None and now - last < interval:
            await self._error(
                "RATE_LIMIT_EXCEEDED",
                f"{kind} is limited to one per {interval:g} s; retry in {interval - (now - last):.1f} s",
            )
            return True
        self.last_command[bucket] = now
        return False

    # --- commands --------------------------------------------------------------------------------
    async def _set_task(self, kind: str, data: dict) -> None:
        errors = validation_errors(data)
        if errors:
            await self._error("VALIDATION_ERROR", f"ValidationError(model='SetTaskRequestMessage', errors={errors!r})")
            return
        previous, was_paused = self.task, self.status == "paused"
        if previous is None:
            event = "started"
            self._start(data)
        elif _normalised(previous) == _normalised(data):
            event = "resumed" if was_paused else "unchanged"
        elif previous["input_stream"] != data["input_stream"]:
            # The emulator's audio timeline has one format; a real server may allow this.
            await self._error(
                "VALIDATION_ERROR",
                "the emulator cannot change input_stream of a running task; open a new connection instead",
            )
            return
        else:
            event = "updated"
            self.task = data
        self.record.task = self.task
        self._set_status("running")
        self.last_audio = time.monotonic()
        for warning in self._voice_warnings(data):
            await self._send("warning", {"code": "VOICE_NOT_FOUND", "message": warning})
        await self._ack("set_task", event)

    def _start(self, task: dict) -> None:
        self.task = task
        source = task["input_stream"]["source"]
        self.fmt = source.get("format", "pcm_s16le")
        self.rate, self.channels = int(source.get("sample_rate", 16000)), int(source.get("channels", 1))
        threshold = task["pipeline"]["transcription"].get("segment_confirmation_silence_threshold", 0.7)
        self.vad = EnergyVad(self.rate, threshold_dbfs=self.config.vad_threshold_dbfs, confirm_silence_s=threshold)
        self.running_since = time.monotonic() + self.config.task_start_delay_s
        if self.config.drop_after_s is not None:
            self.tasks.append(asyncio.create_task(self._drop_later(self.config.drop_after_s)))

    def _set_status(self, status: str) -> None:
        now = time.monotonic()
        if status == "paused" and self.status != "paused":
            self.paused_at = now
        elif status == "running" and self.status == "paused" and self.first_audio_wall is not None:
            self.first_audio_wall += now - self.paused_at  # a pause is not "audio too slow"
        self.status = status

    @staticmethod
    def _voice_warnings(task: dict) -> list[str]:
        out = []
        for tr in task["pipeline"]["translations"]:
            voice = str(_dict(tr.get("speech_generation")).get("voice_id", "default_low"))
            if voice.startswith("missing_"):  # a hook for tests of VOICE_NOT_FOUND
                out.append(f"Voice ID '{voice}' is not available, using default voice")
        return out

    async def _get_task(self, kind: str, data: dict) -> None:
        if self.task is None or time.monotonic() < self.running_since:
            await self._error("NOT_FOUND", "No active task found")
            return
        await self._send("current_task", {**self.task, "task_status": self.status})

    async def _pause(self, kind: str, data: dict) -> None:
        if self.task is None:
            await self._error("NOT_FOUND", "No active task found")
            return
        self._set_status("paused")
        await self._ack("pause_task", "paused")

    async def _interrupt(self, kind: str, data: dict) -> None:
        if self.task is None:
            await self._error("NOT_FOUND", "No active task found")
            return
        if self.vad and self.vad.speech_start is not None:
            self.vad.reset()
            self.confirmed += 1  # the interrupted utterance's id is not reused
        while not self.results.empty():  # drop results not yet emitted
            self.results.get_nowait()
        if data.get("pause_task"):
            self._set_status("paused")
        await self._ack(kind, "interrupted")

    async def _end(self, kind: str, data: dict) -> None:
        self.ended = True
        if data.get("force"):
            while not self.results.empty():
                self.results.get_nowait()
        elif self.vad:
            tail = self.vad.flush()
            if tail:
                self._confirm(tail)
        self.results.put_nowait(None)
        await self.tasks[1]  # the result worker drains, then sends the end message
        await self._close(1000)

    async def _tts(self, kind: str, data: dict) -> None:
        if self.task is None:
            await self._error("NOT_FOUND", "No active task found")
            return
        text, language = str(data.get("text", "")), str(data.get("language", ""))
        targets = [t["target_language"] for t in self.task["pipeline"]["translations"]]
        if not text or (not data.get("translate_text") and language not in targets):
            await self._error(
                "VALIDATION_ERROR",
                f"tts_task needs text and one of the task's target languages {targets}, got {language!r}",
            )
            return
        tid = hashlib.sha1(f"tts-{self.record.id}-{text}-{time.monotonic()}".encode()).hexdigest()[:16]
        await self._ack("tts_task", "queued", transcription_id=tid)
        self.results.put_nowait(
            {"tts": text, "languages": targets if data.get("translate_text") else [language], "transcription_id": tid}
        )

    # --- audio -----------------------------------------------------------------------------------
    async def _audio(self, kind: str, data: dict) -> None:
        if self.task is None or self.status != "running" or self.ended:
            return  # audio before the task exists (or while paused) is discarded silently
        try:
            raw = base64.b64decode(data.get("data", ""), validate=True)
        except (binascii.Error, ValueError):
            await self._error("VALIDATION_ERROR", "input_audio_data.data is not valid base64")
            return
        pcm = self._decode(raw)
        now = time.monotonic()
        self.log.chunk_times.append(now)
        self.log.chunk_bytes.append(len(pcm))
        self.record.input_pcm.extend(pcm)
        self.last_audio = now
        if self.first_audio_wall is None:
            self.first_audio_wall, self.first_audio_epoch = now, time.time()
        samples = np.frombuffer(pcm[: len(pcm) // (2 * self.channels) * 2 * self.channels], dtype="<i2")
        mono = samples.reshape(-1, self.channels).mean(axis=1).astype(np.int16) if self.channels > 1 else samples
        self.audio_s += len(mono) / self.rate
        self.timeline.extend(mono.tobytes())
        assert self.vad is not None
        for utterance in self.vad.feed(mono):
            self._confirm(utterance)
        self._forget_silence()
        await self._maybe_partial()
        await self._check_pacing(now)

    def _forget_silence(self) -> None:
        """Between utterances, audio already analysed is never needed again (long silences stay cheap)."""
        assert self.vad is not None
        if self.vad.speech_start is None and self.results.empty() and not self.emitting:
            keep = 2 * self.vad.frame_len  # the VAD may still hold a partial frame of this audio
            drop = max(0, len(self.timeline) // 2 - keep)
            self.timeline_start += drop
            del self.timeline[: 2 * drop]

    def _decode(self, raw: bytes) -> bytes:
        if self.fmt == "wav" and raw[:4] == b"RIFF":
            with contextlib.suppress(wave.Error, EOFError), wave.open(io.BytesIO(raw)) as wav:
                return wav.readframes(wav.getnframes())
        if self.fmt == "opus":
            return b""  # not decoded by the emulator; recorded as nothing
        return raw

    def _confirm(self, utterance: Utterance) -> None:
        self.results.put_nowait((self.confirmed, utterance))
        self.confirmed += 1
        self.next_partial_at = 0.0

    async def _maybe_partial(self) -> None:
        assert self.vad is not None
        start = self.vad.speech_start
        if start is None:
            return
        spoken = self.vad.last_voiced_end - start  # trailing silence is not speech
        if spoken < self.next_partial_at + self.config.partial_interval_s:
            return
        self.next_partial_at = spoken
        tid = self._transcription_id(self.confirmed)
        source = self.task["pipeline"]["transcription"]["source_language"]  # type: ignore[index]
        text = self._source_text(tid, spoken)
        await self._transcript("partial_transcription", tid, source, text, start, self.vad.last_voiced_end)

    async def _check_pacing(self, now: float) -> None:
        if not self.config.pacing_warnings or self.first_audio_wall is None:
            return
        wall = (now - self.first_audio_wall) * self.config.time_scale
        ahead = self.audio_s - wall
        code = "AUDIO_STREAM_TOO_FAST" if ahead > 2.0 else "AUDIO_STREAM_TOO_SLOW" if ahead < -2.0 else None
        if code and now - self.last_warning > 5.0:
            self.last_warning = now
            self.log.warnings.append(code)
            word = "faster" if ahead > 0 else "slower"
            await self._send(
                "warning",
                {
                    "code": code,
                    "message": f"Audio is arriving {abs(ahead):.1f} s {word} than real time; stream it in real time",
                },
            )

    # --- results ---------------------------------------------------------------------------------
    async def _result_worker(self) -> None:
        while True:
            item = await self.results.get()
            self.emitting = True
            if item is None:
                await self._send(self.config.end_message, {})
                return
            if self.config.processing_delay_s:
                await asyncio.sleep(self.config.processing_delay_s)
            if isinstance(item, dict):
                await self._emit_tts(item)
            else:
                await self._emit_utterance(*item)
            self.emitting = False

    async def _emit_utterance(self, index: int, utterance: Utterance) -> None:
        assert self.task is not None
        tid = self._transcription_id(index)
        pipeline = self.task["pipeline"]
        text = self._source_text(tid, utterance.end - utterance.start)
        await self._transcript(
            "validated_transcription",
            tid,
            pipeline["transcription"]["source_language"],
            text,
            utterance.start,
            utterance.end,
        )
        first = (int(utterance.start * self.rate) - self.timeline_start) * 2
        last = (int(utterance.end * self.rate) - self.timeline_start) * 2
        speech = np.frombuffer(bytes(self.timeline[max(0, first) : max(0, last)]), dtype="<i2")
        del self.timeline[: max(0, last)]  # utterances come in order: nothing before this one is needed again
        self.timeline_start += max(0, last) // 2
        for tr in pipeline["translations"]:
            language = tr["target_language"]
            await self._transcript(
                "translated_transcription",
                tid,
                language,
                f"[{language}] {text}",
                utterance.start,
                utterance.end,
                part=0,
            )
            await self._send_output_audio(tid, language, speech, self.rate)
        if "pipeline_timings" in self._allowed():
            delay = self.config.processing_delay_s
            await self._send(
                "pipeline_timings",
                {
                    "transcription_id": tid,
                    "timings": {
                        "partial_transcription": 0.0,
                        "validated_transcription": delay,
                        "translated_transcription": delay,
                        "prepared_tts_task": delay,
                        "sent_tts_task": delay,
                        "tts": delay,
                        "sent_to_nats": delay,
                        "total": delay,
                    },
                },
            )

    async def _emit_tts(self, item: dict) -> None:
        n = int(OUTPUT_RATE * min(5.0, 0.06 * len(item["tts"]) + 0.2))
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 330 * np.arange(n) / OUTPUT_RATE)).astype(np.int16)
        for language in item["languages"]:
            await self._send_output_audio(item["transcription_id"], language, tone, OUTPUT_RATE)

    async def _send_output_audio(self, tid: str, language: str, speech: np.ndarray, rate: int) -> None:
        if self.task is None or self.task.get("output_stream") is None or not len(speech):
            return
        out = speech if rate == OUTPUT_RATE else soxr.resample(speech, rate, OUTPUT_RATE)
        out = np.asarray(out, dtype=np.int16)
        zlib_out = (self.task["output_stream"].get("target") or {}).get("format") == "zlib_pcm_s16le"
        step = max(1, int(OUTPUT_RATE * self.config.output_chunk_s))
        for offset in range(0, len(out), step):
            chunk = out[offset : offset + step].tobytes()
            if zlib_out:
                chunk = zlib.compress(chunk)
            await self._send(
                "output_audio_data",
                {
                    "transcription_id": tid,
                    "translation_part_id": "0",
                    "language": language,
                    "last_chunk": offset + step >= len(out),
                    "data": base64.b64encode(chunk).decode("ascii"),
                    "chunk_generation_delta": None,
                },
            )

    async def _transcript(
        self, kind: str, tid: str, language: str, text: str, start: float, end: float, part: int | None = None
    ) -> None:
        if kind not in self._allowed():
            return
        words = text.split()
        span = (end - start) / max(1, len(words))
        body: dict[str, Any] = {
            "transcription_id": tid,
            "language": language,
            "text": text,
            "segments": [
                {
                    "text": text,
                    "start": round(start, 3),
                    "end": round(end, 3),
                    "start_timestamp": self.first_audio_epoch + start,
                    "end_timestamp": self.first_audio_epoch + end,
                    "words": [
                        {"word": w, "start": round(start + i * span, 3), "end": round(start + (i + 1) * span, 3)}
                        for i, w in enumerate(words)
                    ],
                }
            ],
        }
        if part is not None:
            body["translation_part_id"] = part
        await self._send(kind, {"transcription": body})
        if kind == "partial_transcription" and "partial_translated_transcription" in self._allowed():
            for tr in self.task["pipeline"]["translations"]:  # type: ignore[index]
                if tr.get("translate_partial_transcriptions"):
                    lang = tr["target_language"]
                    await self._transcript(
                        "partial_translated_transcription", tid, lang, f"[{lang}] {text}", start, end, part=0
                    )

    def _allowed(self) -> list[str]:
        assert self.task is not None
        pipeline = self.task["pipeline"]
        default = ["translated_transcription", "partial_transcription", "validated_transcription"]
        return pipeline.get("allowed_message_types", self.task.get("allowed_message_types")) or default

    def _transcription_id(self, index: int) -> str:
        return hashlib.sha1(f"{self.record.id}:{index}".encode()).hexdigest()[:16]

    @staticmethod
    def _source_text(tid: str, seconds: float) -> str:
        """Deterministic growing text: one word per 0.3 s of speech."""
        return " ".join(f"w{tid[:4]}{k}" for k in range(max(1, int(seconds / 0.3))))

    # --- background ------------------------------------------------------------------------------
    async def _watchdog(self) -> None:
        while not self.ws.closed:
            await asyncio.sleep(0.05)
            if self.ended or self.status == "paused":
                self.last_audio = time.monotonic()
                continue
            silent = time.monotonic() - self.last_audio
            if silent >= self.config.audio_timeout_s:
                timeout = self.config.audio_timeout_s
                await self._error(
                    "SERVICE_TIMEOUT",
                    f"No input audio received for {timeout:g}s. Use the pause_task command for intentional pauses.",
                )
                self.ended = True
                await self._close(1008)
                return
            if self.first_audio_wall is not None and silent > 2.0:
                await self._check_pacing(time.monotonic())

    async def _drop_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        count = self.config.drop_count
        if count and self.drops[0] >= count:
            return
        self.drops[0] += 1
        self.log.dropped = True
        code = self.config.drop_close_code
        log.info("emulator: dropping stream %d (%s; fault injection)", self.record.id, code or "no close frame")
        transport = self.request.transport
        if code is None and transport is not None:
            transport.abort()
        else:
            await self._close(code or 1011)

    # --- output ----------------------------------------------------------------------------------
    async def _ack(self, command: str, event: str, **extra: Any) -> None:
        if self.config.ack_task_status or command == "tts_task":
            await self._send("task_status", {"command": command, "event": event, "task_status": self.status, **extra})

    async def _close(self, code: int) -> None:
        self.close_code = code
        await self.ws.close(code=code)

    async def _error(self, code: str, desc: str) -> None:
        await self._send("error", {"code": code, "desc": desc, "param": None})

    async def _send(self, kind: str, data: dict) -> None:
        if self.ws.closed or self.log.dropped:
            raise _Closed
        async with self.send_lock:
            try:
                await self.ws.send_str(json.dumps({"message_type": kind, "data": data}))
            except (ConnectionError, RuntimeError) as exc:
                raise _Closed from exc
        self.record.messages_out[kind] = self.record.messages_out.get(kind, 0) + 1
