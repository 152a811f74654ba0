"""The emulator's streaming half: Palabra's speech-to-speech WebSocket protocol, the I/O part.

One `StreamSession` per connection: it authenticates the upgrade, answers commands (acks, errors,
rate limits), and moves bytes. The "translation" is the sans-I/O `FakeTranslator` (translator.py),
which returns timed frames that the session's sender sends when they fall due; input pacing is
`PacingMonitor` (pacing.py); `set_task` checks are validation.py. Dialect switches, limits, fault
injection and seeded realism come from `state.config`.
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
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from bot.palabra import encoding
from bot.palabra import protocol as p
from bot.palabra.emulator.pacing import PacingMonitor
from bot.palabra.emulator.realism import Realism, RealismProfile
from bot.palabra.emulator.state import STATE, EmulatorState, StreamRecord
from bot.palabra.emulator.translator import FakeTranslator, TranslatorSettings
from bot.palabra.emulator.validation import as_dict, validation_error_desc, validation_errors
from bot.palabra.task import COMMAND_RATE_LIMITS, source_format, target_languages

log = logging.getLogger(__name__)

WATCHDOG_S = 0.05
TTS_PER_MINUTE = 60


@dataclass
class StreamLog:
    """What the emulator observed on one connection, beyond the shared StreamRecord (for tests)."""

    chunk_times: list[float] = field(default_factory=list)  # monotonic arrival of each input_audio_data
    chunk_bytes: list[int] = field(default_factory=list)  # decoded size of each
    warnings: list[str] = field(default_factory=list)  # codes of the warnings sent
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
    if owner is None or token is None:
        return web.Response(status=403, text="Forbidden")
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
    sockets: set[web.WebSocketResponse] = app[_OPEN]
    for ws in list(sockets):
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close(code=1001, message=b"server shutting down")


def _normalised(task: dict[str, Any]) -> str:
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
        self.task: dict[str, Any] | None = None
        self.status = "none"  # none | running | paused
        self.running_since = 0.0
        self.ended = False
        self.translator: FakeTranslator | None = None
        self.fmt, self.channels = "pcm_s16le", 1
        self.pacing = PacingMonitor()
        self.last_audio = time.monotonic()
        self.last_command: dict[str, float] = {}
        self.tts_times: list[float] = []
        self.wake = asyncio.Event()  # the translator has new output (or the stream ends)
        self.finished = asyncio.Event()  # the end message went out
        self.send_lock = asyncio.Lock()
        self.tasks: list[asyncio.Task[None]] = []
        self.close_code: int | None = None  # the code this side closed with (aiohttp reports the peer's echo)

    # --- main loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        self.tasks = [asyncio.create_task(self._watchdog()), asyncio.create_task(self._sender())]
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
            if len(self.tts_times) >= TTS_PER_MINUTE:
                await self._error("RATE_LIMIT_EXCEEDED", f"tts_task is limited to {TTS_PER_MINUTE} per minute")
                return True
            self.tts_times.append(now)
            return False
        interval = self.config.command_interval_s.get(kind)
        if interval is None:
            return False
        bucket = COMMAND_RATE_LIMITS[kind][0] if kind in COMMAND_RATE_LIMITS else kind
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
    async def _set_task(self, kind: str, data: dict[str, Any]) -> None:
        errors = validation_errors(data)
        if errors:
            await self._error("VALIDATION_ERROR", validation_error_desc(errors))
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
            if self.translator:
                self.translator.update_task(data)
        self.record.task = self.task
        self._set_status("running")
        self.last_audio = time.monotonic()
        for warning in self._voice_warnings(data):
            await self._send_event(p.WarningMessage("VOICE_NOT_FOUND", warning))
        await self._ack("set_task", event)

    def _start(self, task: dict[str, Any]) -> None:
        self.task = task
        self.fmt, _, self.channels = source_format(task)
        config = self.config
        realism = None
        if config.realism is not None:
            profile = RealismProfile(delay_s=config.realism_delay_s)
            realism = Realism(config.realism, stream_id=self.record.id, profile=profile, time_scale=config.time_scale)
        settings = TranslatorSettings(
            vad_threshold_dbfs=config.vad_threshold_dbfs,
            partial_interval_s=config.partial_interval_s,
            output_chunk_s=config.output_chunk_s,
            processing_delay_s=config.processing_delay_s,
        )
        self.translator = FakeTranslator(
            task,
            stream_id=self.record.id,
            settings=settings,
            realism=realism,
            wall_offset=time.time() - time.monotonic(),
        )
        self.pacing = PacingMonitor(
            time_scale=config.time_scale, drift=config.pacing_warnings, stalls=config.realism is not None
        )
        self.running_since = time.monotonic() + config.task_start_delay_s
        if config.drop_after_s is not None:
            self.tasks.append(asyncio.create_task(self._drop_later(config.drop_after_s)))

    def _set_status(self, status: str) -> None:
        now = time.monotonic()
        if status == "paused":
            self.pacing.pause(now)
        elif status == "running":
            self.pacing.resume(now)
        self.status = status

    @staticmethod
    def _voice_warnings(task: dict[str, Any]) -> list[str]:
        out = []
        for tr in task["pipeline"]["translations"]:
            voice = str(as_dict(tr.get("speech_generation")).get("voice_id", "default_low"))
            if voice.startswith("missing_"):  # a hook for tests of VOICE_NOT_FOUND
                out.append(f"Voice ID '{voice}' is not available, using default voice")
        return out

    async def _get_task(self, kind: str, data: dict[str, Any]) -> None:
        if self.task is None or time.monotonic() < self.running_since:
            await self._error("NOT_FOUND", "No active task found")
            return
        await self._send_event(p.CurrentTask(self.task, self.status))

    async def _pause(self, kind: str, data: dict[str, Any]) -> None:
        if self.task is None:
            await self._error("NOT_FOUND", "No active task found")
            return
        self._set_status("paused")
        await self._ack("pause_task", "paused")

    async def _interrupt(self, kind: str, data: dict[str, Any]) -> None:
        if self.translator is None:
            await self._error("NOT_FOUND", "No active task found")
            return
        self.translator.interrupt(time.monotonic())
        if data.get("pause_task"):
            self._set_status("paused")
        await self._ack(kind, "interrupted")
        self.wake.set()

    async def _end(self, kind: str, data: dict[str, Any]) -> None:
        self.ended = True
        if self.translator is None:
            await self._send_event(p.EndOfStream(self.config.end_message))
        else:
            self.translator.end(time.monotonic(), force=bool(data.get("force")), end_message=self.config.end_message)
            self.wake.set()
            await self._wait_finished()
        await self._close(1000)

    async def _wait_finished(self) -> None:
        """The sender drains the results, then sends the end message (or dies with the connection)."""
        sender = self.tasks[1]
        waiter = asyncio.ensure_future(self.finished.wait())
        await asyncio.wait({waiter, sender}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not self.finished.is_set():
            raise _Closed

    async def _tts(self, kind: str, data: dict[str, Any]) -> None:
        if self.task is None or self.translator is None:
            await self._error("NOT_FOUND", "No active task found")
            return
        text, language = str(data.get("text", "")), str(data.get("language", ""))
        targets = target_languages(self.task)
        if not text or (not data.get("translate_text") and language not in targets):
            await self._error(
                "VALIDATION_ERROR",
                f"tts_task needs text and one of the task's target languages {targets}, got {language!r}",
            )
            return
        tid = hashlib.sha1(f"tts-{self.record.id}-{text}-{time.monotonic()}".encode()).hexdigest()[:16]
        await self._ack("tts_task", "queued", transcription_id=tid)
        languages = targets if data.get("translate_text") else [language]
        self.translator.speak(tid, text, languages, time.monotonic())
        self.wake.set()

    # --- audio -----------------------------------------------------------------------------------
    async def _audio(self, kind: str, data: dict[str, Any]) -> None:
        if self.translator is None or self.status != "running" or self.ended:
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
        self.translator.feed(pcm, now)
        self.wake.set()
        warning = self.pacing.on_audio(now, len(pcm) / (2 * self.channels * self.translator.rate))
        if warning:
            await self._send_event(warning)

    def _decode(self, raw: bytes) -> bytes:
        if self.fmt == "wav" and raw[:4] == b"RIFF":
            with contextlib.suppress(wave.Error, EOFError), wave.open(io.BytesIO(raw)) as wav:
                return bytes(wav.readframes(wav.getnframes()))
        if self.fmt == "opus":
            return b""  # not decoded by the emulator; recorded as nothing
        return raw

    # --- background ------------------------------------------------------------------------------
    async def _sender(self) -> None:
        """Send the translator's frames when they fall due; frames due together go out as one burst."""
        while True:
            self.wake.clear()
            deadline = self.translator.next_deadline() if self.translator else None
            if deadline is None or deadline > time.monotonic():
                timeout = None if deadline is None else deadline - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout)
                continue
            assert self.translator is not None
            for frame in self.translator.pop_due(time.monotonic()):
                await self._send_frame(frame)
            if self.translator.finished:
                self.finished.set()
                return

    async def _watchdog(self) -> None:
        while not self.ws.closed:
            await asyncio.sleep(WATCHDOG_S)
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
            warning = self.pacing.check(time.monotonic())
            if warning:
                await self._send_event(warning)

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
    async def _ack(self, command: str, event: str, transcription_id: str | None = None) -> None:
        if self.config.ack_task_status or command == "tts_task":
            await self._send_event(p.TaskStatus(command, event, self.status, transcription_id))

    async def _close(self, code: int) -> None:
        self.close_code = code
        await self.ws.close(code=code)

    async def _error(self, code: str, desc: str) -> None:
        await self._send_event(p.ErrorMessage(code, desc))

    async def _send_event(self, event: p.Event) -> None:
        await self._send_frame(encoding.encode_event(event))

    async def _send_frame(self, frame: dict[str, Any]) -> None:
        if self.ws.closed or self.log.dropped:
            raise _Closed
        async with self.send_lock:
            try:
                await self.ws.send_str(json.dumps(frame))
            except (ConnectionError, RuntimeError) as exc:
                raise _Closed from exc
        kind = str(frame.get("message_type", "(none)"))
        self.record.messages_out[kind] = self.record.messages_out.get(kind, 0) + 1
        if kind == "warning":
            self.log.warnings.append(str(frame["data"].get("code", "")))
