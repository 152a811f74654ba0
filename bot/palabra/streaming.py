"""A Palabra speech-to-speech streaming session over one (re-establishable) WebSocket.

`StreamingSession.start(...)` connects, sends `set_task` and waits until the task runs. Audio given
to `send_audio` is cut into `chunk_ms` chunks and sent on a monotonic real-time schedule; when the
producer stalls, silence keeps the stream alive (Palabra closes after 10 s without audio and only
confirms a sentence after trailing silence). Events come out of `async for event in session`, with
segment times on one continuous timeline: seconds of audio since the session's first audio.

On an unexpected close the session reconnects (bounded, jittered backoff), re-sends the task and
replays the audio since the last finalised utterance, so the utterance in flight is not lost.
The protocol itself (messages, parsing) lives in `protocol.py`; this module only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bot.logs import redact
from bot.palabra import protocol as p
from bot.palabra.errors import (
    AuthenticationError,
    InsufficientBalanceError,
    NotReadyError,
    PalabraConnectionError,
    PalabraError,
    SessionClosedError,
    TaskError,
    TaskValidationError,
)

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.palabra.ai"
POLL_INTERVAL_S = 2.1  # get_task and set_task share a 1-per-2-s limit
STALL_GRACE_CHUNKS = 1.0  # wait this many chunk lengths for late audio before sending silence
MAX_REPLAY_S = 30.0  # bound of the replay ring buffer
STABLE_AFTER_S = 30.0  # a connection up this long resets the reconnect attempt count
CATCH_UP_SPEED = 2.0  # replayed and backlogged audio goes out this much faster than real time
LEGACY_EOS_TIMEOUT = 4
# Palabra's command limits: set_task and get_task share one budget; pause_task and end_task 1 per 3 s.
COMMAND_BUCKETS = {
    "set_task": ("task", 2.05),
    "get_task": ("task", 2.05),
    "pause_task": ("pause_task", 3.05),
    "end_task": ("end_task", 3.05),
}
Dialect = Literal["auto", "current", "legacy"]


@dataclass
class StreamStats:
    chunks_sent: int = 0
    bytes_sent: int = 0
    silence_chunks: int = 0  # chunks padded with silence because the producer stalled
    audio_bytes_sent: int = 0  # the producer's own audio (no padding, no replays)
    reconnects: int = 0
    replayed_s: float = 0.0


class _Connection:
    """One WebSocket plus what is known about it: readiness and where its audio starts on the timeline."""

    def __init__(self, ws: Any, offset_s: float, rest_session_id: str | None) -> None:
        self.ws = ws
        self.offset_s = offset_s
        self.rest_session_id = rest_session_id
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reader: asyncio.Task | None = None
        self.poller: asyncio.Task | None = None
        self.opened_at = time.monotonic()
        self.last_command: dict[str, float] = {}  # rate-limit bucket -> monotonic time of the last send


class StreamingSession:
    def __init__(
        self,
        *,
        credentials: Any,
        task: dict,
        api_url: str = DEFAULT_API_URL,
        rest: Any = None,
        chunk_ms: int = 320,
        pace: float = 1.0,
        ready_timeout: float = 30.0,
        max_reconnects: int = 5,
        dialect: Dialect = "auto",
    ) -> None:
        if pace <= 0:
            raise ValueError("pace must be positive")
        if dialect not in ("auto", "current", "legacy"):
            raise ValueError(f"dialect must be 'auto', 'current' or 'legacy', got {dialect!r}")
        source = task["input_stream"]["source"]
        self.credentials, self.task, self.api_url = credentials, task, api_url
        self.sample_rate, self.channels = int(source.get("sample_rate", 16000)), int(source.get("channels", 1))
        self.chunk_ms, self.pace, self.ready_timeout = chunk_ms, pace, ready_timeout
        self.max_reconnects, self.dialect = max_reconnects, dialect
        self.zlib_audio = (task.get("output_stream") or {}).get("target", {}).get("format") == "zlib_pcm_s16le"
        self.bytes_per_second = self.sample_rate * 2 * self.channels
        self.chunk_bytes = int(self.sample_rate * chunk_ms / 1000) * 2 * self.channels
        self.chunk_s = self.chunk_bytes / self.bytes_per_second
        self.stats = StreamStats()
        self.session_id: str | None = None  # REST session id (app credentials), for the caller to delete
        self._rest, self._own_rest = rest, False
        self._conn: _Connection | None = None
        self._events: asyncio.Queue[p.Event | None] = asyncio.Queue()
        self._failure: BaseException | None = None
        self._pending = bytearray()  # audio from the producer, not yet sent
        self._replay = bytearray()  # audio to re-send after a reconnect (already on the timeline)
        self._history = bytearray()  # recently sent audio since the last finalised utterance
        self._history_start_s = 0.0
        self._audio_arrived = asyncio.Event()
        self._connected = asyncio.Event()
        self._paused = False
        self._ending = False
        self._closed = False
        self._sender: asyncio.Task | None = None
        self._reconnector: asyncio.Task | None = None
        self._reconnect_attempts = 0  # consecutive, see STABLE_AFTER_S
        self._disconnected_at: float | None = None
        self._catch_up_bytes = 0  # replay + outage backlog still to send at CATCH_UP_SPEED
        self._end_seen = asyncio.Event()

    # --- lifecycle -------------------------------------------------------------------------------
    @classmethod
    async def start(
        cls,
        *,
        credentials: Any,
        task: dict,
        api_url: str = DEFAULT_API_URL,
        rest: Any = None,
        chunk_ms: int = 320,
        pace: float = 1.0,
        ready_timeout: float = 30.0,
        max_reconnects: int = 5,
        dialect: Dialect = "auto",
    ) -> StreamingSession:
        session = cls(
            credentials=credentials,
            task=task,
            api_url=api_url,
            rest=rest,
            chunk_ms=chunk_ms,
            pace=pace,
            ready_timeout=ready_timeout,
            max_reconnects=max_reconnects,
            dialect=dialect,
        )
        try:
            session._conn = await session._open(offset_s=0.0)
        except BaseException:
            await session._release_rest()
            raise
        session._connected.set()
        log.info(
            "Palabra stream ready (%s credentials, %d Hz, %d ch, %d ms chunks)",
            credentials.kind,
            session.sample_rate,
            session.channels,
            chunk_ms,
        )
        session._sender = asyncio.create_task(session._send_loop(), name="palabra-audio-sender")
        return session

    async def __aenter__(self) -> StreamingSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close at once (no end_task); queued events stay readable."""
        if self._closed:
            return
        self._closed = self._ending = True
        for task in (self._sender, self._reconnector):
            if task and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._conn:
            await self._shutdown(self._conn)
        await self._release_rest()
        self._events.put_nowait(None)

    async def end(self, timeout: float = 30.0) -> None:
        """Send the buffered audio (at its pace), then end_task; wait up to `timeout` for end_of_stream/eos."""
        if self._ending:
            return
        if self._reconnector is not None and not self._failure:  # a reconnect is under way: let it finish
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._connected.wait(), timeout=max(0.1, timeout / 2))
        buffered_s = (len(self._pending) + len(self._replay)) / self.bytes_per_second
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drain_audio(), timeout=buffered_s / self.pace + 2 * self.chunk_s + 1.0)
        self._ending = True
        if self._sender:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender
        unsent = len(self._pending) + len(self._replay)
        if unsent:
            log.warning("ending the Palabra stream with %.2f s of audio not sent", unsent / self.bytes_per_second)
        deadline = time.monotonic() + timeout
        conn = self._conn
        if conn is None or not self._connected.is_set():
            log.warning("ending a Palabra session that is not connected; closing without end_task")
            await self.close()
            return
        legacy = self.dialect == "legacy"
        await self._send(conn, p.EndTask(eos_timeout=LEGACY_EOS_TIMEOUT, force=False) if legacy else p.EndTask())
        try:
            await asyncio.wait_for(self._end_seen.wait(), timeout=max(0.1, deadline - time.monotonic()))
            if conn.reader:
                await asyncio.wait_for(asyncio.shield(conn.reader), timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("Palabra did not finish the stream within %.0f s of end_task; closing", timeout)
        await self.close()

    async def _drain_audio(self) -> None:
        while self._pending or self._replay:
            if self._sender is None or self._sender.done() or self._failure:
                return
            await asyncio.sleep(self.chunk_s / self.pace / 4)

    # --- public controls -------------------------------------------------------------------------
    async def send_audio(self, pcm: bytes) -> None:
        """Queue audio in the task's input format (any length); the sender paces it out."""
        if self._ending:
            raise SessionClosedError("the streaming session is ending; no more audio is accepted")
        if self._failure:
            raise SessionClosedError(f"the streaming session failed: {self._failure}") from self._failure
        if self._paused:
            return  # paused on purpose: the audio is not for Palabra
        self._pending.extend(pcm)
        self._audio_arrived.set()

    async def pause(self) -> None:
        """Stop sending audio (pause_task); Palabra keeps the task and does not time out."""
        self._paused = True
        self._pending.clear()
        if self._conn and self._connected.is_set():
            await self._send(self._conn, p.PauseTask())

    async def resume(self) -> None:
        """Resume after pause() by sending the task again."""
        if self._conn and self._connected.is_set():
            await self._send(self._conn, p.SetTask(self.task))
        self._paused = False

    async def interrupt(self, languages: Sequence[str] | None = None) -> None:
        """Drop the phrase in flight (interrupt_task; flush_task in the legacy dialect)."""
        command_cls = p.FlushTask if self.dialect == "legacy" else p.InterruptTask
        if self._conn and self._connected.is_set():
            await self._send(self._conn, command_cls(tuple(languages) if languages else ("global",)))

    async def get_task(self) -> None:
        if self._conn and self._connected.is_set():
            await self._send(self._conn, p.GetTask())

    async def speak(self, text: str, language: str, *, translate: bool = False) -> None:
        if self._conn and self._connected.is_set():
            await self._send(self._conn, p.TtsTask(text, language, translate))

    # --- events ----------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[p.Event]:
        return self.events()

    async def events(self) -> AsyncIterator[p.Event]:
        """Every event in order; ends after the session closes, raising if it failed."""
        while True:
            event = await self._events.get()
            if event is None:
                self._events.put_nowait(None)  # later iterators end too
                if self._failure:
                    raise SessionClosedError(f"the streaming session failed: {self._failure}") from self._failure
                return
            yield event

    # --- connecting ------------------------------------------------------------------------------
    async def _open(self, offset_s: float) -> _Connection:
        url, rest_id = await self._endpoint()
        try:
            return await self._connect(url, offset_s, rest_id)
        except BaseException:
            # The REST session made for this attempt would otherwise count against the account's
            # parallel-session limit until it expires.
            await self._forget_rest_session(rest_id)
            raise

    async def _connect(self, url: str, offset_s: float, rest_id: str | None) -> _Connection:
        try:
            ws = await websockets.connect(
                url, ping_interval=10, ping_timeout=30, max_size=None, open_timeout=self.ready_timeout
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise AuthenticationError(
                    f"Palabra refused the streaming token (HTTP {status})", status=status
                ) from None
            raise PalabraConnectionError(f"Palabra rejected the WebSocket upgrade with HTTP {status}") from None
        except (TimeoutError, OSError, ValueError, websockets.exceptions.WebSocketException) as exc:
            # Every other websockets error (InvalidURI, say) quotes the URL, and the URL holds the token.
            raise PalabraConnectionError(f"cannot connect to Palabra streaming: {redact(str(exc))}") from None
        conn = _Connection(ws, offset_s, rest_id)
        conn.reader = asyncio.create_task(self._read_loop(conn), name="palabra-reader")
        try:
            await self._send(conn, p.SetTask(self.task))
            conn.poller = asyncio.create_task(self._poll_until_ready(conn), name="palabra-get-task-poll")
            await asyncio.wait_for(asyncio.shield(conn.ready), timeout=self.ready_timeout)
        except TimeoutError:
            await self._shutdown(conn)
            raise NotReadyError(f"Palabra did not start the task within {self.ready_timeout:.0f} s") from None
        except BaseException:
            await self._shutdown(conn)
            raise
        finally:
            if conn.poller:
                conn.poller.cancel()
        return conn

    async def _endpoint(self) -> tuple[str, str | None]:
        """The WebSocket URL (with its token) and the REST session id (app credentials only)."""
        from bot.palabra.credentials import stream_base_url

        if self.credentials.kind == "api_key":
            key = self.credentials.api_key.get_secret_value()
            base = stream_base_url(self.api_url)
            return f"{base}/streaming-api/{uuid.uuid4().hex}/v1/speech-to-speech/stream?token={key}", None
        if self._rest is None:
            from bot.palabra.rest import PalabraRest

            self._rest, self._own_rest = PalabraRest(self.credentials, self.api_url), True
        info = await self._rest.create_session()
        self.session_id = info.id
        log.info("Palabra streaming session %s created", info.id)
        return f"{info.ws_url}?token={info.publisher}", info.id

    async def _poll_until_ready(self, conn: _Connection) -> None:
        """For servers that do not ack set_task: ask get_task (no faster than the rate limit) until it runs."""
        while not conn.ready.done():
            await asyncio.sleep(POLL_INTERVAL_S)
            if not conn.ready.done():
                await self._send(conn, p.GetTask())

    async def _shutdown(self, conn: _Connection) -> None:
        for task in (conn.poller, conn.reader):
            if task and not task.done() and task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(Exception):
            await conn.ws.close()
        if conn.reader and conn.reader is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await conn.reader

    async def _release_rest(self) -> None:
        if self._own_rest and self._rest is not None:
            with contextlib.suppress(Exception):
                await self._rest.aclose()
            self._rest, self._own_rest = None, False

    async def _send(self, conn: _Connection, command: p.Command) -> None:
        bucket = COMMAND_BUCKETS.get(command.message_type)
        if bucket:  # wait out Palabra's rate limit rather than get an error back
            name, interval = bucket
            now = time.monotonic()
            slot = max(now, conn.last_command.get(name, now - interval) + interval)
            conn.last_command[name] = slot  # reserved before sleeping, so concurrent sends queue up
            if slot > now:
                log.debug("waiting %.1f s before %s (Palabra's command rate limit)", slot - now, command.message_type)
                await asyncio.sleep(slot - now)
        try:
            await conn.ws.send(command.to_json())
        except ConnectionClosed:
            log.debug("could not send %s: connection closed", command.message_type)

    # --- receiving -------------------------------------------------------------------------------
    async def _read_loop(self, conn: _Connection) -> None:
        try:
            async for frame in conn.ws:
                event = p.parse_message(frame, zlib_audio=self.zlib_audio)
                if event is not None:
                    self._on_event(conn, event)
            reason = f"closed by Palabra (code {conn.ws.close_code})"
        except ConnectionClosed as exc:
            reason = f"connection lost ({exc})"
        except Exception as exc:  # a bug of ours must not leave the session hanging silently
            log.exception("error while reading from Palabra; treating the connection as lost")
            reason = f"reader failed ({type(exc).__name__})"
            with contextlib.suppress(Exception):
                await conn.ws.close()
        if time.monotonic() - conn.opened_at >= STABLE_AFTER_S:
            self._reconnect_attempts = 0  # it was up long enough: a new drop starts a new count
        if not conn.ready.done():
            conn.ready.set_exception(SessionClosedError(f"Palabra closed the connection before the task ran: {reason}"))
            return
        if self._ending or self._closed:
            if not self._closed and not self._end_seen.is_set():
                log.warning("Palabra streaming %s before the end of stream; the tail may be missing", reason)
            self._events.put_nowait(None)
            return
        if conn is self._conn and self._reconnector is None:
            self._reconnector = asyncio.create_task(self._reconnect(reason), name="palabra-reconnect")

    def _on_event(self, conn: _Connection, event: p.Event) -> None:
        if not conn.ready.done() and self._readiness(conn, event):
            return
        if isinstance(event, p.Transcription):
            event = event.shifted(conn.offset_s)
            if isinstance(event, p.ValidatedTranscription) and event.end is not None:
                self._finalised(event.end)
        elif isinstance(event, p.EndOfStream):
            self._end_seen.set()
        self._events.put_nowait(event)

    def _readiness(self, conn: _Connection, event: p.Event) -> bool:
        """Handle an event that arrives before the task runs; True if it is consumed here."""
        if isinstance(event, p.TaskStatus) and event.confirms_task:
            conn.ready.set_result(None)
        elif isinstance(event, p.CurrentTask) and event.status in ("running", "paused"):
            conn.ready.set_result(None)
            return True
        elif isinstance(event, p.ErrorMessage):
            if event.code == "NOT_FOUND":
                return True  # get_task before the task runs
            cls = TaskValidationError if event.code == "VALIDATION_ERROR" else TaskError
            conn.ready.set_exception(cls(event.code, event.desc, event.param))
            return True
        return False

    def _finalised(self, end_s: float) -> None:
        """An utterance ending at `end_s` is final: replay needs nothing before it."""
        drop = int((end_s - self._history_start_s) * self.bytes_per_second)
        drop -= drop % (2 * self.channels)
        if drop > 0:
            del self._history[:drop]
            self._history_start_s += drop / self.bytes_per_second

    # --- reconnecting ----------------------------------------------------------------------------
    async def _reconnect(self, reason: str) -> None:
        self._connected.clear()
        self._disconnected_at = time.monotonic()
        old = self._conn
        log.warning("Palabra streaming %s; reconnecting", reason)
        if old:
            await self._shutdown(old)
            await self._forget_rest_session(old.rest_session_id)
        last_error: BaseException | None = None
        while self._reconnect_attempts < self.max_reconnects:
            self._reconnect_attempts += 1
            attempt = self._reconnect_attempts
            await asyncio.sleep(min(8.0, 0.25 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
            if self._closed or self._ending:
                return
            try:
                conn = await self._open(offset_s=self._history_start_s)
            except (AuthenticationError, TaskValidationError, InsufficientBalanceError) as exc:
                last_error = exc  # retrying cannot help
                break
            except (PalabraError, OSError) as exc:
                last_error = exc
                log.warning("Palabra reconnect attempt %d/%d failed: %s", attempt, self.max_reconnects, exc)
                continue
            except Exception as exc:
                log.exception("unexpected error while reconnecting to Palabra")
                last_error = exc
                break
            self._resume_after_reconnect(conn, attempt, reason)
            return
        self._failure = last_error or SessionClosedError(f"Palabra streaming {reason}")
        log.error(
            "giving up on the Palabra stream after %d reconnect attempts: %s", self._reconnect_attempts, self._failure
        )
        self._events.put_nowait(None)

    def _resume_after_reconnect(self, conn: _Connection, attempt: int, reason: str) -> None:
        self._replay = bytearray(self._history)
        replayed_s = len(self._replay) / self.bytes_per_second
        outage_s = time.monotonic() - (self._disconnected_at or time.monotonic())
        backlog = min(len(self._pending), int(outage_s * self.pace * self.bytes_per_second))
        self._catch_up_bytes = len(self._replay) + backlog
        self._conn = conn
        self.stats.reconnects += 1
        self.stats.replayed_s += replayed_s
        self._reconnector = None
        log.warning(
            "reconnected to Palabra (attempt %d); replaying %.2f s of audio since the last finalised utterance",
            attempt,
            replayed_s,
        )
        self._events.put_nowait(p.Reconnected(attempt, replayed_s, reason))
        self._connected.set()

    async def _forget_rest_session(self, rest_id: str | None) -> None:
        if not rest_id or self._rest is None:
            return
        try:
            await self._rest.delete_session(rest_id)
        except Exception as exc:  # the session expires by itself; deleting is a courtesy
            log.info("could not delete the dropped Palabra session %s: %s", rest_id, exc)

    # --- sending audio ---------------------------------------------------------------------------
    async def _send_loop(self) -> None:
        """Send one chunk per chunk length (divided by pace) on a monotonic schedule."""
        interval = self.chunk_s / self.pace
        next_at = time.monotonic()
        stalled = False
        while True:
            if not self._connected.is_set() or self._paused:
                await self._wait_until_sendable()
                next_at = time.monotonic()
                continue
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            chunk, is_silence = await self._next_chunk(next_at + interval * STALL_GRACE_CHUNKS)
            if chunk is None:
                continue  # paused or disconnected while waiting
            if is_silence and not stalled:
                log.debug("audio producer stalled; sending silence to keep the Palabra stream alive")
            stalled = is_silence
            conn = self._conn
            assert conn is not None
            await self._send(conn, p.InputAudioData(chunk))
            self._account(len(chunk), is_silence)
            catching_up = self._catch_up_bytes > 0
            self._catch_up_bytes = max(0, self._catch_up_bytes - len(chunk))
            next_at += interval / CATCH_UP_SPEED if catching_up else interval
            if time.monotonic() - next_at > interval:  # fell behind (stall, reconnect): re-anchor, never burst
                next_at = time.monotonic()

    async def _wait_until_sendable(self) -> None:
        while not self._connected.is_set() or self._paused:
            await asyncio.sleep(0.02)

    async def _next_chunk(self, silence_at: float) -> tuple[bytes | None, bool]:
        """The next full chunk; waits for late audio until `silence_at`, then pads with silence."""
        n = self.chunk_bytes
        while len(self._replay) + len(self._pending) < n:
            remaining = silence_at - time.monotonic()
            if remaining <= 0:
                break
            self._audio_arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._audio_arrived.wait(), timeout=remaining)
            if self._paused or not self._connected.is_set():
                return None, False
        from_replay = bytes(self._replay[:n])
        del self._replay[:n]
        fresh = bytes(self._pending[: n - len(from_replay)])
        del self._pending[: len(fresh)]
        self.stats.audio_bytes_sent += len(fresh)
        is_silence = len(from_replay) + len(fresh) < n
        if is_silence:
            fresh += bytes(n - len(from_replay) - len(fresh))
        self._history.extend(fresh)
        self._trim_history()
        return from_replay + fresh, is_silence

    def _trim_history(self) -> None:
        excess = len(self._history) - int(MAX_REPLAY_S * self.bytes_per_second)
        if excess > 0:
            excess -= excess % (2 * self.channels)
            del self._history[:excess]
            self._history_start_s += excess / self.bytes_per_second

    def _account(self, size: int, is_silence: bool) -> None:
        self.stats.chunks_sent += 1
        self.stats.bytes_sent += size
        if is_silence:
            self.stats.silence_chunks += 1
