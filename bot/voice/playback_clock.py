"""One 20 ms send clock for every speaker in the process.

discord.py's AudioPlayer is a thread per voice client that encodes whatever its source returns, silence
included, 50 times a second. Here a few sender threads (`MAX_SENDERS`) each tick
their share of the attached outlets on one monotonic schedule (deadline = anchor + n x 20 ms, so sleep
jitter never accumulates). Per tick an outlet either encodes and sends a frame, sends one of the five
Opus silence frames that close a talk spurt, or does nothing at all.

Sans-I/O where it counts: `Outlet.tick()` takes the voice connection as a small `PacketSink` protocol,
so the same code sends through a discord.VoiceClient and through the bench's loopback sender.
Late frames (sent more than one frame after their deadline) and skipped ticks are counted per outlet:
the capacity bench reads them.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.audio import opus
from bot.audio.frames import FRAME_S, FRAME_SAMPLES

log = logging.getLogger(__name__)

OPUS_SILENCE = b"\xf8\xff\xfe"  # one 20 ms Opus frame of silence, what Discord clients send
SILENCE_TAIL_FRAMES = 5  # sent after speech, then nothing until the next audible frame
MAX_SENDERS = 4  # more threads than cores: most of an outlet's tick is waiting for the GIL, and waits overlap
MAX_CATCH_UP_TICKS = 5  # after a longer stall the schedule is re-anchored (those ticks are skipped)
LATE_AFTER_S = FRAME_S  # a frame sent this long after its deadline counts as late
GIVE_UP_TICKS = 3000  # an outlet whose connection stays down for a minute is dropped


class FrameSource(Protocol):
    def next_frame(self) -> bytes | None: ...


@runtime_checkable
class SpurtSource(FrameSource, Protocol):
    """A source that may ask the sender to wait a moment before starting a talk spurt."""

    def spurt_ready(self, waited_ticks: int) -> bool: ...


class PacketSink(Protocol):
    """What an outlet needs from a voice connection (discord.VoiceClient has all three)."""

    timestamp: int

    def is_connected(self) -> bool: ...
    def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None: ...


def make_encoder(*, bitrate_kbps: int | None = None, complexity: int | None = None) -> opus.Encoder:
    """The playback encoder (bot.voice.playback's settings); the Opus sweep varies bitrate and complexity."""
    from bot.voice.playback import OPUS_COMPLEXITY, OPUS_SETTINGS

    return opus.Encoder(
        application=OPUS_SETTINGS["application"],
        bitrate_kbps=OPUS_SETTINGS["bitrate"] if bitrate_kbps is None else bitrate_kbps,
        fec=OPUS_SETTINGS["fec"],
        expected_packet_loss=OPUS_SETTINGS["expected_packet_loss"],
        signal=OPUS_SETTINGS["signal_type"],
        complexity=OPUS_COMPLEXITY if complexity is None else complexity,
        bandwidth="full",
    )


@dataclass
class OutletStats:
    ticks: int = 0
    encoded: int = 0
    silence_sent: int = 0
    idle_ticks: int = 0  # nothing sent
    late: int = 0
    skipped: int = 0  # ticks lost to a stall longer than MAX_CATCH_UP_TICKS
    not_connected: int = 0
    held_for_e2ee: int = 0  # connected, but the DAVE group not ready: audio waits instead of being dropped


class Outlet:
    """One source playing into one voice connection."""

    def __init__(
        self,
        sink: PacketSink,
        source: FrameSource,
        encoder: opus.Encoder | None = None,
        on_reconnected: Callable[[], None] | None = None,
        media_ready: Callable[[], bool] | None = None,
    ) -> None:
        self.sink, self.source = sink, source
        self.on_reconnected = on_reconnected  # e.g. re-send the speaking op (a new voice session needs it)
        # False while frames would go out unencrypted into a DAVE call (bot.voice.adapter.media_ready)
        self.media_ready = media_ready
        self._was_connected = True
        self._disconnected_ticks = 0
        self.encoder = encoder or make_encoder()
        self.stats = OutletStats()
        self._silent_run = SILENCE_TAIL_FRAMES  # start quiet: no silence tail before the first speech
        self._unsent = 0  # ticks with nothing sent since the last packet: the RTP clock skips them
        self._holding = False  # audio waits for the DAVE group (ticked meanwhile, like a disconnect)
        self._start_wait = 0  # ticks a talk spurt has waited for its first frames (SpurtSource)
        self._spurt_ready = source.spurt_ready if isinstance(source, SpurtSource) else None
        self.detached = False
        self.kicked = False

    def skip_idle(self, ticks: int) -> None:
        """`ticks` went by while the sender slept (every outlet idle): the RTP clock still runs."""
        self.stats.ticks += ticks
        self.stats.idle_ticks += ticks
        self._unsent += ticks

    @property
    def idle(self) -> bool:
        """Between talk spurts: nothing is being sent, so the next spurt may start at any moment. Not
        while the connection is down: audio queued meanwhile wakes nobody again, so the sender keeps
        ticking until the connection is back (or the outlet gives up)."""
        return (
            self._was_connected
            and not self._holding
            and not self._start_wait
            and self._silent_run >= SILENCE_TAIL_FRAMES
        )

    def tick(self) -> None:
        self.stats.ticks += 1
        if not self.sink.is_connected():
            self.stats.not_connected += 1
            self._disconnected_ticks += 1
            self._was_connected = False
            if self._disconnected_ticks > GIVE_UP_TICKS:  # gone for good (never stopped): stop ticking it
                self.detached = True
            return
        self._disconnected_ticks = 0
        if not self._was_connected:
            self._was_connected = True
            self._silent_run, self._unsent = SILENCE_TAIL_FRAMES, 0
            if self.on_reconnected is not None:
                self.on_reconnected()
        if self.media_ready is not None and not self.media_ready():
            self.stats.held_for_e2ee += 1
            self._holding = True
            self._unsent += 1  # the RTP clock runs on through the wait, as through a pause
            return
        self._holding = False
        if self._silent_run >= SILENCE_TAIL_FRAMES and not self._spurt_may_start():
            self._start_wait += 1
            self.stats.idle_ticks += 1
            self._unsent += 1
            return
        self._start_wait = 0
        pcm = self.source.next_frame()
        if pcm is None:
            if self._silent_run >= SILENCE_TAIL_FRAMES:
                self.stats.idle_ticks += 1
                self._unsent += 1
                return
            self._silent_run += 1
            self.stats.silence_sent += 1
            self._send(OPUS_SILENCE)
            return
        self._silent_run = 0
        self.stats.encoded += 1
        self._send(self.encoder.encode(pcm))  # libopus through ctypes: the GIL is released

    def _spurt_may_start(self) -> bool:
        return self._spurt_ready is None or self._spurt_ready(self._start_wait)

    def _send(self, packet: bytes) -> None:
        if self._unsent:
            # Keep the RTP clock on the wall clock through the pause, as Discord clients do; the
            # sender's own increment covers one frame per packet.
            self.sink.timestamp = (self.sink.timestamp + self._unsent * FRAME_SAMPLES) & 0xFFFFFFFF
            self._unsent = 0
        self.sink.send_audio_packet(packet, encode=False)


class _Sender(threading.Thread):
    def __init__(self, index: int, clock: Callable[[], float]) -> None:
        super().__init__(name=f"playback-clock-{index}", daemon=True)
        self.outlets: list[Outlet] = []
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = False
        self.clock = clock

    def kick(self, outlet: Outlet) -> None:
        """Audio arrived for `outlet` (any thread): an idle one starts its talk spurt now, not at the next
        tick (a spurt has no cadence to keep yet; its later frames follow the schedule)."""
        outlet.kicked = True
        self.wake.set()

    def run(self) -> None:
        while not self.stopping:
            if not self.outlets:
                self.wake.wait()  # nothing attached: no wake-ups at all
                self.wake.clear()
                continue
            self._run_schedule()

    def _run_schedule(self) -> None:
        anchor, n = self.clock(), 0
        while not self.stopping and self.outlets:
            if all(o.idle and not o.kicked for o in self.outlets):
                self._sleep_until_kicked()  # nothing to send anywhere: no wake-ups until audio arrives
                anchor, n = self.clock(), 1
                continue
            deadline = anchor + n * FRAME_S
            delay = deadline - self.clock()
            if delay > 0:
                if self.wake.wait(delay):
                    self.wake.clear()
                    self._start_spurts()
                    continue
            elif -delay > MAX_CATCH_UP_TICKS * FRAME_S:
                behind = int(-delay / FRAME_S)
                with self.lock:
                    for outlet in self.outlets:
                        outlet.stats.skipped += behind
                anchor, n, deadline = self.clock(), 0, self.clock()
            with self.lock:
                outlets = [o for o in self.outlets if not o.detached]
                self.outlets = outlets
            for outlet in outlets:
                try:
                    outlet.tick()
                except Exception:
                    log.exception("playback: sending a frame failed")
                if self.clock() - deadline > LATE_AFTER_S:
                    outlet.stats.late += 1
            n += 1

    def _sleep_until_kicked(self) -> None:
        slept = self.clock()
        self.wake.wait()
        self.wake.clear()
        ticks = int((self.clock() - slept) / FRAME_S)
        with self.lock:
            outlets = list(self.outlets)
        for outlet in outlets:
            outlet.skip_idle(ticks)
        self._start_spurts()

    def _start_spurts(self) -> None:
        with self.lock:
            kicked = [o for o in self.outlets if o.kicked and not o.detached]
        for outlet in kicked:
            outlet.kicked = False
            if outlet.idle:
                try:
                    outlet.tick()
                except Exception:
                    log.exception("playback: sending a frame failed")


class PlaybackClock:
    """The sender threads; `attach` an outlet, `detach` it (or mark it `detached`) to stop."""

    def __init__(self, senders: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        count = senders or MAX_SENDERS
        self._senders = [_Sender(index, clock) for index in range(count)]
        self._next = 0
        self._started = False
        self._lock = threading.Lock()

    def attach(self, outlet: Outlet) -> Outlet:
        with self._lock:
            if not self._started:
                for sender in self._senders:
                    sender.start()
                self._started = True
            sender = min(self._senders, key=lambda s: len(s.outlets))
        with sender.lock:
            sender.outlets.append(outlet)
        if hasattr(outlet.source, "on_audio"):  # TranslationSource: wake the sender when audio arrives
            outlet.source.on_audio = lambda: sender.kick(outlet)
        outlet.kicked = True  # audio may be queued already
        sender.wake.set()
        return outlet

    def detach(self, outlet: Outlet) -> None:
        outlet.detached = True

    @property
    def outlets(self) -> list[Outlet]:
        return [o for sender in self._senders for o in sender.outlets if not o.detached]

    def stop(self) -> None:
        for sender in self._senders:
            sender.stopping = True
            sender.wake.set()
        for sender in self._senders:
            if sender.is_alive():
                sender.join(timeout=1)


@functools.lru_cache(maxsize=1)
def shared_clock() -> PlaybackClock:
    """The process's playback clock (its threads start with the first attached outlet)."""
    return PlaybackClock()
