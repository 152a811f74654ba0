"""Per-sender jitter buffer and Opus decode: ordered, gap-filled 20 ms PCM frames.

Sans-I/O: `push(packet)` and `poll(now)` return frames and speaking events; the caller owns threads and
clocks. Every output frame occupies one 20 ms *slot* of the sender's RTP clock (`tick`):

- packets are ordered by (extended) sequence number; a missing one is waited for until `depth` later
  packets are buffered or the oldest buffered packet has waited `max_wait` seconds, then declared lost;
- a lost packet's slot is recovered with in-band FEC from the next packet (the slot right before it) or
  concealed by PLC (up to `plc_limit` slots); older unfilled slots become silence;
- while a sender is speaking and nothing arrives (DTX, loss), `poll()` fills silence on the wall clock,
  so a consumer gets a continuous stream without a burst of silence when speech resumes;
- after `speaking_timeout` without packets the sender stops speaking; the next packet starts a new
  talk spurt (re-anchored, no fill for the pause);
- the SFU numbers a sender's packets afresh for each new voice session of ours (any offset, backwards
  too): told of a new session (`expect_renumbering`), or seeing a jump beyond `resync_packets` or a run
  of `late_run_resync` late packets, the stream follows the new numbering.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from bot.audio.frames import DISCORD_RATE, FRAME_BYTES, FRAME_S, FRAME_SAMPLES, SILENT_FRAME
from bot.audio.opus import Decoder, OpusError
from bot.voice.receive import VoicePacket
from bot.voice.rtp import unwrap

log = logging.getLogger(__name__)


class OpusDecoder(Protocol):
    def decode(self, packet: bytes) -> bytes: ...
    def decode_fec(self, next_packet: bytes, samples: int = FRAME_SAMPLES) -> bytes: ...
    def conceal(self, samples: int = FRAME_SAMPLES) -> bytes: ...


class UserFrame(NamedTuple):  # a tuple: cheap to build once per packet
    """20 ms of one sender's audio: 48 kHz stereo s16le, 3840 bytes."""

    user_id: int
    pcm: bytes
    tick: int  # slot index on the sender's RTP clock since we first heard them (+1 per 20 ms)
    timestamp: int  # extended RTP timestamp of the slot
    sequence: int | None  # extended RTP sequence number (None for filled slots)
    kind: str  # "audio", "fec", "plc" or "silence"


@dataclass(frozen=True, slots=True)
class SpeakingChanged:
    user_id: int
    speaking: bool


Output = UserFrame | SpeakingChanged


@dataclass
class JitterStats:
    frames: int = 0
    late: int = 0
    duplicates: int = 0
    lost: int = 0
    fec_recovered: int = 0
    plc_frames: int = 0
    silence_frames: int = 0
    decode_errors: int = 0
    resyncs: int = 0  # sequence numbering restarted (a reconnect or a new SFU session)

    def add(self, other: JitterStats) -> None:
        for name, value in other.__dict__.items():
            setattr(self, name, getattr(self, name) + value)


@dataclass(slots=True)
class _Buffered:
    timestamp: int
    opus: bytes
    arrival: float


@dataclass
class UserStream:
    user_id: int
    decoder_factory: Callable[[], OpusDecoder] = Decoder
    depth: int = 3
    max_wait: float = 0.06
    max_fill: int = 50  # longest gap (slots) filled on arrival; longer gaps re-anchor
    resync_packets: int = 500  # a sequence jump beyond this (10 s of packets) is a new numbering
    late_run_resync: int = 5  # this many late packets in a row are a new numbering too (backwards)
    plc_limit: int = 5
    speaking_timeout: float = 0.3
    stats: JitterStats = field(default_factory=JitterStats)

    def __post_init__(self) -> None:
        self._decoder = self.decoder_factory()
        self._buffer: dict[int, _Buffered] = {}
        self._next_seq: int | None = None
        self._seq_ref = 0
        self._ts_ref = 0
        self._base_ts: int | None = None
        self._last_ts = 0  # extended timestamp of the last filled slot
        # (wall time, timestamp): when slot `timestamp` was due. Follows the most delayed packet of the
        # spurt, so one network or scheduling hiccup does not make every later packet look late.
        self._anchor: tuple[float, int] = (0.0, 0)
        self._last_arrival = 0.0
        # Added to the sender's timestamps. Senders like discord.py advance the RTP clock only per packet
        # sent, not through pauses, so after silence we filled their next packet can look "in the past":
        # we shift their clock forward instead of dropping in-sequence audio.
        self._ts_shift = 0
        self.speaking = False
        self._renumbered = False  # set by `expect_renumbering`: the next packet re-anchors the numbering
        self._late_run = 0  # late packets in a row

    # ---- input -------------------------------------------------------------------------------------
    def expect_renumbering(self) -> None:
        """Our voice session is new (a fresh connection): the SFU numbers this sender's packets afresh
        for it, by any offset, so her next packet re-anchors the numbering. A jump backwards by less
        than `resync_packets` would otherwise make all her packets late."""
        self._renumbered = True

    def push(self, packet: VoicePacket) -> list[Output]:
        out: list[Output] = []
        if self._next_seq is None:
            self._seq_ref, self._ts_ref = packet.sequence, packet.timestamp
            self._base_ts = packet.timestamp
        seq = unwrap(packet.sequence, self._seq_ref, 16)
        ts = unwrap(packet.timestamp, self._ts_ref, 32)
        if self._next_seq is not None and (self._renumbered or abs(seq - self._next_seq) > self.resync_packets):
            seq = self._resync(packet.sequence)
        self._renumbered = False
        # Comparisons rather than max(): a builtin call each, three per packet.
        if seq > self._seq_ref:  # noqa: PLR1730
            self._seq_ref = seq
        if ts > self._ts_ref:  # noqa: PLR1730
            self._ts_ref = ts
        if not self.speaking:
            self._start_spurt(seq, ts, packet.arrival, out)
        if packet.arrival > self._last_arrival:  # noqa: PLR1730
            self._last_arrival = packet.arrival
        assert self._next_seq is not None
        if seq < self._next_seq:
            self._late_run += 1
            if self._late_run < self.late_run_resync:
                self.stats.late += 1
                return out
            # Reordering makes single packets late, not runs: the numbering went backwards (a new
            # session whose start we were not told of). Follow it from this packet on.
            seq = self._resync(packet.sequence)
        self._late_run = 0
        if seq in self._buffer:
            self.stats.duplicates += 1
            return out
        if seq == self._next_seq and not self._buffer:
            # In order with nothing waiting (the common case): what _drain would do, minus the buffer.
            self._emit_packet(seq, ts, packet.opus, packet.arrival, 0, out)
            self._next_seq = seq + 1
            return out
        self._buffer[seq] = _Buffered(ts, packet.opus, packet.arrival)
        self._drain(packet.arrival, out)
        return out

    def poll(self, now: float) -> list[Output]:
        """Call every ~20 ms: gives up on missing packets, fills silence, ends talk spurts."""
        out: list[Output] = []
        if not self.speaking:
            return out
        self._drain(now, out)
        if not self._buffer:
            self._fill_silence_until(now, out)
            if now - self._last_arrival > self.speaking_timeout:
                self.speaking = False
                out.append(SpeakingChanged(self.user_id, False))
        return out

    # ---- ordering ----------------------------------------------------------------------------------
    def _resync(self, sequence: int) -> int:
        """Sequence numbers jumped further than any reordering: after a reconnect the SFU numbers a
        sender's packets afresh (any offset, backwards too). Follow the new numbering instead of
        calling every packet late; the RTP clock, which the sender keeps, still places the audio."""
        self.stats.resyncs += 1
        self._buffer.clear()
        self._seq_ref = self._next_seq = sequence
        return sequence

    def _start_spurt(self, seq: int, ts: int, arrival: float, out: list[Output]) -> None:
        self.speaking = True
        self._buffer.clear()
        self._next_seq = seq
        if self._base_ts != ts and ts + self._ts_shift <= self._last_ts:
            # The sender's clock did not run through the pause: advance by the wall-clock pause.
            paused = max(1, round((arrival - self._last_arrival) / FRAME_S))
            self._ts_shift = self._last_ts + paused * FRAME_SAMPLES - ts
        self._last_ts = ts + self._ts_shift - FRAME_SAMPLES
        self._anchor = (arrival, ts + self._ts_shift)
        out.append(SpeakingChanged(self.user_id, True))

    def _drain(self, now: float, out: list[Output]) -> None:
        assert self._next_seq is not None or not self._buffer
        while self._buffer:
            item = self._buffer.pop(self._next_seq, None)  # type: ignore[arg-type]
            if item is not None:
                self._emit_packet(self._next_seq, item.timestamp, item.opus, item.arrival, 0, out)  # type: ignore[arg-type]
                self._next_seq += 1  # type: ignore[operator]
                continue
            oldest = min(self._buffer)
            waited = now - self._buffer[oldest].arrival
            if len(self._buffer) <= self.depth and waited < self.max_wait:
                return
            missing = oldest - self._next_seq  # type: ignore[operator]
            self.stats.lost += missing
            item = self._buffer.pop(oldest)
            self._emit_packet(oldest, item.timestamp, item.opus, item.arrival, missing, out)
            self._next_seq = oldest + 1

    # ---- slots -------------------------------------------------------------------------------------
    def _emit_packet(  # the buffered packet's fields, unpacked: called once per packet
        self, seq: int, timestamp: int, opus: bytes, arrival: float, missing: int, out: list[Output]
    ) -> None:
        ts = timestamp + self._ts_shift
        gap = (ts - self._last_ts) // FRAME_SAMPLES - 1
        if gap < 0:
            # In sequence, but its slot was already filled with silence while we waited: the sender's
            # clock did not run through a pause (or the packet is very late). Play it next.
            self._ts_shift += self._last_ts + FRAME_SAMPLES - ts
            ts, gap = self._last_ts + FRAME_SAMPLES, 0
        anchor_wall, anchor_ts = self._anchor
        if gap > self.max_fill:
            self._anchor = (arrival, ts)  # a long pause inside a spurt: no fill
        else:
            if arrival - (ts - anchor_ts) / DISCORD_RATE > anchor_wall:
                self._anchor = (arrival, ts)
            if gap:
                self._fill_gap(gap, min(missing, gap), opus, out)
        self._last_ts = ts - FRAME_SAMPLES
        try:
            pcm = self._decoder.decode(opus)
        except OpusError:
            self.stats.decode_errors += 1
            pcm = self._conceal_or_silence()
        if len(pcm) == FRAME_BYTES:  # one 20 ms frame, the usual packet
            self._slot(pcm, seq, "audio", out)
            return
        for start in range(0, max(len(pcm), FRAME_BYTES), FRAME_BYTES):
            chunk = pcm[start : start + FRAME_BYTES]
            self._slot(chunk.ljust(FRAME_BYTES, b"\0"), seq if start == 0 else None, "audio", out)

    def _fill_gap(self, gap: int, lost_slots: int, next_opus: bytes, out: list[Output]) -> None:
        """Fill `gap` slots before a packet: the last `lost_slots` were lost packets, the rest DTX."""
        for index in range(gap):
            from_end = gap - index  # 1 = the slot right before the packet
            if from_end == 1 and lost_slots >= 1:
                self._slot(self._fec(next_opus), None, "fec", out)
            elif from_end <= min(lost_slots, self.plc_limit):
                self._slot(self._conceal_or_silence(), None, "plc", out)
            else:
                self._slot(SILENT_FRAME, None, "silence", out)

    def _fill_silence_until(self, now: float, out: list[Output]) -> None:
        anchor_wall, anchor_ts = self._anchor
        while True:
            slot_ts = self._last_ts + FRAME_SAMPLES
            due = anchor_wall + (slot_ts - anchor_ts) / DISCORD_RATE + self.max_wait
            if due > now:
                return
            self._slot(SILENT_FRAME, None, "silence", out)

    def _slot(self, pcm: bytes, seq: int | None, kind: str, out: list[Output]) -> None:
        self._last_ts += FRAME_SAMPLES
        assert self._base_ts is not None
        tick = (self._last_ts - self._base_ts) // FRAME_SAMPLES
        self.stats.frames += 1
        if kind == "audio":
            pass
        elif kind == "fec":
            self.stats.fec_recovered += 1
        elif kind == "plc":
            self.stats.plc_frames += 1
        elif kind == "silence":
            self.stats.silence_frames += 1
        out.append(UserFrame(self.user_id, pcm, tick, self._last_ts, seq, kind))

    def _fec(self, next_opus: bytes) -> bytes:
        try:
            return self._decoder.decode_fec(next_opus)[:FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
        except OpusError:
            self.stats.decode_errors += 1
            return self._conceal_or_silence()

    def _conceal_or_silence(self) -> bytes:
        try:
            return self._decoder.conceal()[:FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
        except OpusError:
            self.stats.decode_errors += 1
            return SILENT_FRAME
