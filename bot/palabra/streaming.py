"""A Palabra speech-to-speech streaming session over one (re-establishable) WebSocket: the asyncio side.

All protocol logic — handshake, dialects, rate limits, chunking, the timeline and replay, backoff —
lives in the sans-I/O `PalabraConnection` (connection.py). This module only moves bytes: it opens
sockets (creating a REST session first for app credentials), feeds received frames in, sends what
the connection wants sent, sleeps until its next deadline and reconnects when it asks to.

`StreamingSession.start(...)` returns once the task runs. Audio given to `send_audio` is paced out;
events come out of `async for event in session`, with segment times on one continuous timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State

from bot.logs import redact
from bot.palabra import protocol as p
from bot.palabra.connection import PalabraConnection, Phase
from bot.palabra.credentials import Credentials, stream_base_url
from bot.palabra.dialects import Dialect
from bot.palabra.errors import AuthenticationError, PalabraConnectionError, PalabraError, SessionClosedError
from bot.palabra.idle import Idle
from bot.palabra.rest import PalabraRest, StreamingSessionInfo
from bot.palabra.timeline import StreamStats
from bot.wakeup import Wakeup

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.palabra.ai"
CLOSE_TIMEOUT_S = 2.0

__all__ = ["DEFAULT_API_URL", "StreamStats", "StreamingSession"]


class StreamingSession:
    def __init__(
        self,
        *,
        credentials: Credentials,
        task: dict[str, Any],
        api_url: str = DEFAULT_API_URL,
        rest: Any = None,  # PalabraRest or a wrapper with create_session/delete_session/aclose
        chunk_ms: int = 320,
        pace: float = 1.0,
        ready_timeout: float = 30.0,
        max_reconnects: int = 5,
        dialect: Dialect = "auto",
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        idle_pause_s: float | None = None,
    ) -> None:
        self.protocol = PalabraConnection(
            task,
            chunk_ms=chunk_ms,
            pace=pace,
            ready_timeout=ready_timeout,
            max_reconnects=max_reconnects,
            dialect=dialect,
            rng=rng,
            idle_pause_s=idle_pause_s,
        )
        self.credentials, self.task, self.api_url, self.ready_timeout = credentials, task, api_url, ready_timeout
        self.session_id: str | None = None  # REST session id (app credentials), for the caller to delete
        self._clock = clock
        self._rest, self._own_rest = rest, False
        self._ws: ClientConnection | None = None
        self._events: asyncio.Queue[p.Event | None] = asyncio.Queue()
        self._wake = Wakeup()
        self._settled = asyncio.Event()  # the first task ran, or the start failed
        self._done = asyncio.Event()  # the protocol finished and the driver stopped
        self._driver: asyncio.Task[None] | None = None
        self._connector: asyncio.Task[None] | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._closed = False

    # --- what callers read -----------------------------------------------------------------------
    @property
    def stats(self) -> StreamStats:
        return self.protocol.stats

    @property
    def idle_paused(self) -> bool:
        """Palabra is paused because nobody spoke (not billed); the next speech resumes it."""
        return self.protocol.idle_pause.state is not Idle.OFF

    def idle_paused_s(self) -> float:
        """Time spent in idle pauses so far."""
        return self.protocol.idle_pause.paused_s(self._clock())

    @property
    def sample_rate(self) -> int:
        return self.protocol.sample_rate

    @property
    def channels(self) -> int:
        return self.protocol.channels

    @property
    def bytes_per_second(self) -> int:
        return self.protocol.bytes_per_second

    @property
    def chunk_bytes(self) -> int:
        return self.protocol.chunk_bytes

    @property
    def chunk_s(self) -> float:
        return self.protocol.chunk_s

    # --- lifecycle -------------------------------------------------------------------------------
    @classmethod
    async def start(cls, **options: Any) -> StreamingSession:
        """Connect and wait until the task runs; raises the Palabra error that prevented it."""
        session = cls(**options)
        session._driver = asyncio.create_task(session._drive(), name="palabra-stream")
        try:
            await session._settled.wait()
        except BaseException:
            await session.close()
            raise
        if not session.protocol.ever_ready:
            failure = session.protocol.unexpected or session.protocol.failure
            await session.close()
            raise failure or SessionClosedError("the Palabra stream did not start")
        log.info(
            "Palabra stream ready (%s credentials, %d Hz, %d ch, %d ms chunks)",
            session.credentials.kind,
            session.sample_rate,
            session.channels,
            round(session.chunk_s * 1000),
        )
        return session

    async def __aenter__(self) -> StreamingSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close at once (no end_task); queued events stay readable."""
        if self._closed:
            return
        self._closed = True
        self.protocol.close()
        self._wake.set()
        if self._driver is not None and self._driver is not asyncio.current_task():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._done.wait()), timeout=CLOSE_TIMEOUT_S + 1)
        await self._stop_tasks()
        await self._release_rest()
        self._events.put_nowait(None)

    async def end(self, timeout: float = 30.0) -> None:
        """Send the buffered audio (at its pace), then end_task; wait up to `timeout` for end_of_stream/eos."""
        if self._closed or self.protocol.end_requested:
            return
        self.protocol.end(timeout)
        self._wake.set()
        await self._done.wait()  # the protocol bounds every wait (drain, reconnect, end of stream)
        await self.close()

    # --- controls --------------------------------------------------------------------------------
    async def send_audio(self, pcm: bytes) -> None:
        """Queue audio in the task's input format (any length); it is paced out in chunks."""
        # The driver sleeps to the protocol's deadline; it is woken only when this audio moves that
        # earlier (a chunk filled: it goes out at once; speech after an idle pause: set_task goes now).
        if self.protocol.send_audio(pcm):
            self._wake.set()

    async def pause(self) -> None:
        self._input(self.protocol.pause)

    async def resume(self) -> None:
        self._input(self.protocol.resume)

    async def interrupt(self, languages: Sequence[str] | None = None) -> None:
        self._input(lambda: self.protocol.interrupt(languages))

    async def get_task(self) -> None:
        self._input(self.protocol.get_task)

    async def speak(self, text: str, language: str, *, translate: bool = False) -> None:
        self._input(lambda: self.protocol.speak(text, language, translate=translate))

    def _input(self, command: Callable[[], None]) -> None:
        command()
        self._wake.set()

    # --- events ----------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[p.Event]:
        return self.events()

    async def events(self) -> AsyncIterator[p.Event]:
        """Every event in order; ends after the session closes, raising if it failed."""
        while True:
            event = await self._events.get()
            if event is None:
                self._events.put_nowait(None)  # later iterators end too
                failure = self.protocol.failure
                if failure is not None and self.protocol.ever_ready:
                    raise SessionClosedError(f"the streaming session failed: {failure}") from failure
                return
            yield event

    # --- the driver: tick, send, connect, close, sleep -------------------------------------------
    async def _drive(self) -> None:
        protocol = self.protocol
        try:
            while True:
                self._wake.clear()
                now = self._clock()
                protocol.tick(now)
                self._publish()
                await self._flush()
                if protocol.close_wanted or protocol.finished:
                    await self._close_socket()
                if protocol.finished:
                    return
                if protocol.connect_at is not None and now >= protocol.connect_at and self._connector is None:
                    protocol.connecting()
                    self._connector = asyncio.create_task(self._connect(), name="palabra-connect")
                await self._sleep_until(protocol.next_deadline())
        except Exception:
            log.exception("the Palabra stream driver failed; closing the stream")
            protocol.close()
        finally:
            self._publish()
            self._settled.set()
            self._done.set()
            self._events.put_nowait(None)

    async def _sleep_until(self, deadline: float | None) -> None:
        await self._wake.wait(None if deadline is None else max(0.0, deadline - self._clock()))

    def _publish(self) -> None:
        for event in self.protocol.events_received():
            self._events.put_nowait(event)
        if self.protocol.ever_ready or self.protocol.finished:
            self._settled.set()

    async def _flush(self) -> None:
        frames = self.protocol.data_to_send()
        ws = self._ws
        for frame in frames:
            if ws is None:
                return  # lost meanwhile: what was not sent is replayed from the timeline
            try:
                await ws.send(frame)
            except ConnectionClosed:
                log.debug("could not send a frame: connection closed")
                return

    async def _close_socket(self) -> None:
        ws = self._ws
        if ws is not None and ws.state is not State.CLOSED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), timeout=CLOSE_TIMEOUT_S)

    # --- connecting and reading ------------------------------------------------------------------
    async def _connect(self) -> None:
        rest_id: str | None = None
        try:
            url, rest_id = await self._endpoint()
            ws = await self._open(url)
        except asyncio.CancelledError:
            await self._forget_rest_session(rest_id)
            raise
        except Exception as exc:
            await self._forget_rest_session(rest_id)  # it would count against the parallel-session limit
            self.protocol.connection_failed(self._clock(), exc)
            self._wake.set()
            return
        finally:
            self._connector = None
        if self.protocol.finished:  # closed while connecting
            await self._close_and_forget(ws, rest_id)
            return
        self._ws, self.session_id = ws, rest_id or self.session_id
        self.protocol.connection_made(self._clock())
        reader = asyncio.create_task(self._read(ws, rest_id), name="palabra-reader")
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)
        self._wake.set()

    async def _close_and_forget(self, ws: ClientConnection, rest_id: str | None) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), timeout=CLOSE_TIMEOUT_S)
        await self._forget_rest_session(rest_id)

    async def _open(self, url: str) -> ClientConnection:
        try:
            return await websockets.connect(
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

    async def _read(self, ws: ClientConnection, rest_id: str | None) -> None:
        try:
            async for frame in ws:
                self.protocol.receive_text(frame)
                self._wake.set()
            reason = f"closed by Palabra (code {ws.close_code})"
        except ConnectionClosed as exc:
            reason = f"connection lost ({exc})"
        except Exception as exc:  # a bug of ours must not leave the session hanging silently
            log.exception("error while reading from Palabra; treating the connection as lost")
            reason = f"reader failed ({type(exc).__name__})"
            with contextlib.suppress(Exception):
                await ws.close()
        if ws is self._ws:
            self._ws = None
            self.protocol.connection_lost(self._clock(), reason)
            self._wake.set()
        if self.protocol.phase is not Phase.DONE:
            await self._forget_rest_session(rest_id)  # dropped or failed, not ended: nobody else deletes it

    async def _endpoint(self) -> tuple[str, str | None]:
        """The WebSocket URL (with its token) and the REST session id (app credentials only)."""
        if self.credentials.kind == "api_key":
            assert self.credentials.api_key is not None
            key = self.credentials.api_key.get_secret_value()
            base = stream_base_url(self.api_url)
            return f"{base}/streaming-api/{uuid.uuid4().hex}/v1/speech-to-speech/stream?token={key}", None
        if self._rest is None:
            self._rest, self._own_rest = PalabraRest(self.credentials, self.api_url), True
        info: StreamingSessionInfo = await self._rest.create_session()
        log.info("Palabra streaming session %s created", info.id)
        return f"{info.ws_url}?token={info.publisher}", info.id

    async def _forget_rest_session(self, rest_id: str | None) -> None:
        if not rest_id or self._rest is None:
            return
        if rest_id == self.session_id:
            self.session_id = None
        try:
            await self._rest.delete_session(rest_id)
        except PalabraError as exc:  # the session expires by itself; deleting is a courtesy
            log.info("could not delete the dropped Palabra session %s: %s", rest_id, exc)

    async def _stop_tasks(self) -> None:
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), timeout=CLOSE_TIMEOUT_S)
        if self._readers:  # a closed socket ends its reader, which deletes a failed attempt's REST session
            await asyncio.wait(set(self._readers), timeout=CLOSE_TIMEOUT_S)
        tasks = [t for t in (self._connector, self._driver, *self._readers) if t and t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _release_rest(self) -> None:
        if self._own_rest and self._rest is not None:
            with contextlib.suppress(Exception):
                await self._rest.aclose()
            self._rest, self._own_rest = None, False
