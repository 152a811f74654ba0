"""Voice receive for discord.py: the threads and the asyncio side around the sans-I/O pieces.

    UDP datagram (discord.py's SocketReader thread)
      -> ReceivePipeline.feed: parse + transport decrypt + DAVE decrypt (small, bounded work)
      -> per-user UserStream (jitter buffer, Opus decode with the GIL released, FEC/PLC), still on the
         UDP thread: a packet in order costs no thread hand-off before the event loop
      -> event loop: `frames()` (UserFrame) and `events()` (speaking, decryption failures, members)
    The worker thread does the rest under the same lock: packets released from the unmapped-SSRC hold
    (gateway messages), the 20 ms polls while someone speaks (gaps, silence fill, end of a talk spurt).

`ListeningVoiceClient` is the `discord.VoiceClient` to pass to `channel.connect(cls=...)`: it sees every
JSON voice-gateway message (parsed by bot.voice.gateway into events: ops 2, 4, 5, 9, 11, 12, 13),
registers the UDP listener and sends the UDP keepalive; every private discord.py access goes through
bot.voice.adapter, which also makes voice resumes fall back to a fresh connection when they stall.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import struct
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import discord

from bot.voice import adapter
from bot.voice import gateway as voice_gateway
from bot.voice.errors import VoiceError, VoiceGatewayError
from bot.voice.jitter import JitterStats, SpeakingChanged, UserFrame, UserStream
from bot.voice.receive import DecryptFailure, ReceivePipeline, SessionSource, SsrcMapped, VoicePacket

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 5.0
MAX_KEEPALIVE_SECONDS = 30.0  # NAT UDP mappings commonly expire after 30-120 s of silence
POLL_SECONDS = 0.02
RECEIVE_QUEUE_FRAMES = 1500  # 30 s of one speaker; beyond that the consumer is gone: drop oldest
LOG_EVERY_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class MemberJoined:
    user_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MemberLeft:
    user_id: int


ReceiverEvent = SpeakingChanged | DecryptFailure | SsrcMapped | MemberJoined | MemberLeft


class _RateLimitedLog:
    """At most one log line per key per interval, with the number suppressed meanwhile."""

    def __init__(self, interval: float = LOG_EVERY_SECONDS) -> None:
        self.interval = interval
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, key: str, level: int, message: str, *args: Any) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(key, (-1e9, 0))
        if now - last < self.interval:
            self._last[key] = (last, suppressed + 1)
            return
        self._last[key] = (now, 0)
        suffix = f" ({suppressed} similar suppressed)" if suppressed else ""
        log.log(level, message + suffix, *args)


class VoiceReceiver:
    """Receive state of one voice connection. Thread-safe entry points: `on_datagram` (UDP thread),
    `on_gateway_message` (event loop)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        session_source: SessionSource,
        *,
        own_user_id: int | None,
        stream_factory: Callable[[int], UserStream] = UserStream,
        max_queue_frames: int = RECEIVE_QUEUE_FRAMES,
        on_failure: Callable[[DecryptFailure], None] | None = None,
    ) -> None:
        self.loop = loop
        self.pipeline = ReceivePipeline(session_source, own_user_id=own_user_id)
        self._stream_factory = stream_factory
        self.on_failure = on_failure  # called on the event loop for each reported DecryptFailure
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._frames: asyncio.Queue[UserFrame] = asyncio.Queue()
        self._events: asyncio.Queue[ReceiverEvent] = asyncio.Queue()
        self._max_queue = max_queue_frames
        self._streams: dict[int, UserStream] = {}
        self._streams_lock = threading.Lock()  # UDP thread (packets) and worker (polls) share the streams
        self._outbox: list[Any] = []  # items for the event loop, in order
        self._outbox_lock = threading.Lock()
        self._outbox_scheduled = False
        self._retired = JitterStats()
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._log = _RateLimitedLog()
        self.gateway_ops: Counter[int] = Counter()  # voice-gateway JSON ops seen (reconnects show here)
        self.dropped_frames = 0
        self.worker_errors = 0
        self.callback_errors = 0
        self.gateway_errors = 0

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._stopping.clear()
            self._worker = threading.Thread(target=self._work, name="voice-decode", daemon=True)
            self._worker.start()

    def stop(self) -> None:
        self._stopping.set()
        self._inbox.put(("stop", None))
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=2)

    @property
    def worker_alive(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    # ---- inputs ------------------------------------------------------------------------------------
    def on_datagram(self, data: bytes) -> None:
        """UDP thread: parse, decrypt and decode, then hand the frames to the event loop. Never raises."""
        try:
            for event in self.pipeline.feed(data, time.monotonic()):
                if not isinstance(event, VoicePacket):
                    self._inbox.put(("event", event))
                    continue
                with self._streams_lock:  # delivered under the lock: frames stay in order per user
                    out = self._handle(event)
                    if out:
                        self._deliver(out)
                self._wake_worker_if_speaking(out)
        except Exception:
            self.callback_errors += 1
            self._log("datagram", logging.ERROR, "voice receive: unexpected error handling a datagram")

    def on_gateway_message(self, message: Mapping[str, Any]) -> None:
        """Event loop: JSON voice-gateway messages (after discord.py has handled them)."""
        op = message.get("op")
        if isinstance(op, int):
            self.gateway_ops[op] += 1
        try:
            event = voice_gateway.parse(message)
        except VoiceGatewayError as exc:
            self.gateway_errors += 1
            self._log("gateway", logging.WARNING, "voice receive: %s", exc)
            return
        if event is not None:
            self.on_gateway_event(event)

    def on_gateway_event(self, event: voice_gateway.GatewayEvent) -> None:
        now = time.monotonic()
        if isinstance(event, voice_gateway.Ready):  # our own SSRC, of a new voice session
            self.pipeline.set_own_ssrc(event.ssrc)
            with self._streams_lock:
                for stream in self._streams.values():
                    stream.expect_renumbering()
        elif isinstance(event, voice_gateway.SessionDescription):  # the (new) transport key
            try:
                self.pipeline.set_transport(event.mode, event.secret_key)
            except VoiceError as exc:
                self.gateway_errors += 1
                self._log("transport", logging.ERROR, "voice receive: cannot use the session key: %s", exc)
        elif isinstance(event, voice_gateway.SsrcAnnounced):
            self._map_ssrc(event.ssrc, event.user_id, now)
        elif isinstance(event, voice_gateway.ClientsConnected):
            self._publish_event(MemberJoined(event.user_ids))
        elif isinstance(event, voice_gateway.ClientDisconnected):
            self.pipeline.forget_user(event.user_id)
            self._inbox.put(("forget", event.user_id))
            self._publish_event(MemberLeft(event.user_id))

    def _map_ssrc(self, ssrc: int, user_id: int, now: float) -> None:
        """Map and hand over the packets held for the SSRC in one step, under the streams' lock: the UDP
        thread's next packet of that SSRC (mapped now) waits for them, so they stay first in the stream
        instead of reaching the worker after it and counting as late."""
        with self._streams_lock:
            out = [item for event in self.pipeline.map_ssrc(ssrc, user_id, now) for item in self._handle(event)]
            if out:
                self._deliver(out)
        self._wake_worker_if_speaking(out)

    def _wake_worker_if_speaking(self, items: list[Any]) -> None:
        if any(isinstance(item, SpeakingChanged) and item.speaking for item in items):
            self._inbox.put(("wake", None))  # the worker polls while someone speaks

    # ---- decode worker -----------------------------------------------------------------------------
    def _work(self) -> None:
        next_poll = time.monotonic() + POLL_SECONDS
        while not self._stopping.is_set():
            out: list[Any] = []
            try:
                # Nobody speaking: nothing to poll for, so block until a packet (an idle session costs
                # no wake-ups; the first packet of a talk spurt re-arms the poll).
                with self._streams_lock:
                    idle = not any(stream.speaking for stream in self._streams.values())
                timeout = None if idle else max(0.0, next_poll - time.monotonic())
                try:
                    kind, item = self._inbox.get(timeout=timeout)
                except queue.Empty:
                    kind, item = "", None
                if kind == "stop":
                    break
                with self._streams_lock:
                    if kind == "event":
                        out.extend(self._handle(item))
                    elif kind == "forget":
                        self._forget(item)
                    now = time.monotonic()
                    if now >= next_poll:
                        next_poll = now + POLL_SECONDS
                        for stream in list(self._streams.values()):
                            out.extend(stream.poll(now))
                    if out:
                        self._deliver(out)
            except Exception:  # the worker must survive anything a packet can do
                self.worker_errors += 1
                self._log("worker", logging.ERROR, "voice receive: decode worker error")

    def _handle(self, event: Any) -> list[Any]:
        if isinstance(event, VoicePacket):
            stream = self._streams.get(event.user_id)
            if stream is None:
                stream = self._streams[event.user_id] = self._stream_factory(event.user_id)
            return stream.push(event)
        if isinstance(event, DecryptFailure):
            self._log(
                f"fail-{event.stage}-{event.reason}",
                logging.WARNING,
                "voice receive: %s decryption failing (%s) for ssrc=%s user=%s: %d in a row, %d total",
                event.stage,
                event.reason,
                event.ssrc,
                event.user_id,
                event.consecutive,
                event.total,
            )
        return [event]

    def _forget(self, user_id: int) -> None:
        stream = self._streams.pop(user_id, None)
        if stream is not None:
            self._retired.add(stream.stats)

    def _deliver(self, items: list[Any]) -> None:
        """Hand items to the event loop. While a hand-off is still waiting to run, later items join it:
        a busy loop then takes one call (and one wake-up of its self-pipe) for many packets."""
        with self._outbox_lock:
            self._outbox.extend(items)
            if self._outbox_scheduled:
                return
            self._outbox_scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._flush_outbox)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            with self._outbox_lock:
                self.dropped_frames += sum(isinstance(i, UserFrame) for i in self._outbox)
                self._outbox.clear()
                self._outbox_scheduled = False

    def _flush_outbox(self) -> None:
        with self._outbox_lock:
            items, self._outbox = self._outbox, []
            self._outbox_scheduled = False
        self._publish_batch(items)

    # ---- event loop side ---------------------------------------------------------------------------
    def _publish_batch(self, items: list[Any]) -> None:
        for item in items:
            if isinstance(item, UserFrame):
                if self._frames.qsize() >= self._max_queue:
                    self._frames.get_nowait()
                    self.dropped_frames += 1
                self._frames.put_nowait(item)
            else:
                self._publish_event(item)

    def _publish_event(self, event: ReceiverEvent) -> None:
        if self._events.qsize() >= self._max_queue:
            self._events.get_nowait()
        self._events.put_nowait(event)
        if isinstance(event, DecryptFailure) and self.on_failure is not None:
            try:
                self.on_failure(event)
            except Exception:
                log.exception("voice receive: on_failure callback raised")

    async def frames(self) -> AsyncIterator[UserFrame]:
        """Per-user 20 ms frames (48 kHz stereo s16le), in order per user, forever."""
        while True:
            yield await self._frames.get()

    async def events(self) -> AsyncIterator[ReceiverEvent]:
        """Speaking start/stop, members joining/leaving, SSRC mappings, repeated decryption failures."""
        while True:
            yield await self._events.get()

    def stats(self) -> dict[str, Any]:
        totals = JitterStats()
        totals.add(self._retired)
        for stream in list(self._streams.values()):
            totals.add(stream.stats)
        return {
            **self.pipeline.stats.as_dict(),
            **{f"jitter_{k}": v for k, v in totals.__dict__.items()},
            "dropped_frames": self.dropped_frames,
            "worker_errors": self.worker_errors,
            "callback_errors": self.callback_errors,
            "gateway_errors": self.gateway_errors,
            "worker_alive": self.worker_alive,
            "sessions": self.gateway_ops[4],  # SESSION_DESCRIPTIONs: 1 + reconnects with a new session
            "resumes": self.gateway_ops[9],
            "users": sorted(self._streams),
        }


class ListeningVoiceClient(adapter.AesGcmSendMixin, discord.VoiceClient):
    """A VoiceClient that also receives: `channel.connect(cls=ListeningVoiceClient)`, then
    `vc.receiver.frames()`. Never connect it self-deafened (a deafened bot is sent no audio).
    Negotiates AES-256-GCM when the server offers it (Discord's preferred mode), else XChaCha20.

    Class attributes a subclass may change (tests compress time this way): `keepalive_interval_s`
    (None sends no keepalive) and `resume_grace_s` (see bot.voice.adapter)."""

    keepalive_interval_s: float | None = KEEPALIVE_SECONDS
    resume_grace_s: float = adapter.RESUME_GRACE_S

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        super().__init__(client, channel)
        own_id = client.user.id if client.user else None
        self.receiver = VoiceReceiver(client.loop, self._dave_state, own_user_id=own_id)
        self.keepalives_sent = 0
        self._listening = False
        self._keepalive: asyncio.Task[None] | None = None

    def create_connection_state(self) -> adapter.ConnectionState:
        # Called from VoiceClient.__init__; the hook looks the receiver up per message, so it does not
        # matter that the receiver is created afterwards (no message arrives before connect()).
        return adapter.connection_state_with_hook(self, self._on_voice_ws_message, resume_grace_s=self.resume_grace_s)

    async def _on_voice_ws_message(self, _ws: object, message: dict[str, Any]) -> None:
        self.receiver.on_gateway_message(message)

    def _dave_state(self) -> tuple[Any, int]:
        return adapter.dave_state(self)

    async def connect(
        self, *, reconnect: bool, timeout: float, self_deaf: bool = False, self_mute: bool = False
    ) -> None:
        await super().connect(reconnect=reconnect, timeout=timeout, self_deaf=self_deaf, self_mute=self_mute)
        self.start_listening()

    def start_listening(self) -> None:
        if self._listening:
            return
        self._listening = True
        self.receiver.start()
        adapter.add_socket_listener(self, self.receiver.on_datagram)
        interval = self.keepalive_interval_s
        if interval is not None:
            if not 0 < interval <= MAX_KEEPALIVE_SECONDS:
                raise ValueError(f"keepalive interval must be in (0, {MAX_KEEPALIVE_SECONDS}] s, got {interval}")
            self._keepalive = self.loop.create_task(self._send_keepalives(interval), name="voice-udp-keepalive")

    async def _send_keepalives(self, interval_s: float) -> None:
        """A listen-only client sends no RTP, and NATs and Discord's SFU forget a UDP peer that sends
        nothing (minutes); an 8-byte counter every few seconds keeps the mapping. Unlike receivers that
        pass milliseconds to a seconds API, the interval is seconds and bounded here."""
        counter = 0
        while True:
            await asyncio.sleep(interval_s)
            counter = (counter + 1) & 0xFFFFFFFF
            if adapter.send_datagram(self, struct.pack(">Q", counter)):
                self.keepalives_sent += 1
            else:
                log.debug("voice keepalive not sent (not connected)")

    async def disconnect(self, *, force: bool = False) -> None:
        self._stop_listening()
        await super().disconnect(force=force)

    def cleanup(self) -> None:
        self._stop_listening()
        super().cleanup()

    def _stop_listening(self) -> None:
        if not self._listening:
            return
        self._listening = False
        if self._keepalive is not None:
            self._keepalive.cancel()
        adapter.remove_socket_listener(self, self.receiver.on_datagram)
        self.receiver.stop()
