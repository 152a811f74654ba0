"""The per-datagram receive pipeline, sans-I/O: bytes in, events out.

Order (see the voice reference, "receive order of operations"): drop RTCP, non-Opus payload types and
our own SSRC -> transport AEAD decrypt -> strip extension data -> strip RTP padding -> map SSRC to user
(hold briefly and trial-decrypt when unknown) -> DAVE decrypt per sender. No exception escapes
`feed()`: a bad datagram becomes a counter and, when failures repeat, a `DecryptFailure` event.

Thread safety: `feed()` and the mutators take one lock, so the UDP thread and the event loop (voice
gateway messages) can share a pipeline.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bot.voice import e2ee
from bot.voice.e2ee import DaveError
from bot.voice.rtp import OPUS_PAYLOAD_TYPE, RtpError, RtpHeader, is_rtcp, parse_header, strip_plaintext
from bot.voice.transport import TransportCipher, TransportCipherError

log = logging.getLogger(__name__)

HOLD_SECONDS = 2.0  # how long packets of an unmapped SSRC wait for op 5 or a trial-decrypt hit
HOLD_PACKETS = 100  # per SSRC (~2 s of 20 ms frames)
HOLD_SSRCS = 32  # distinct unmapped SSRCs held at once
TRIAL_EVERY = 5  # trial-decrypt an unmapped SSRC on its 1st, 6th, 11th ... held packet
# Report repeated failures on the 1st, then every REPORT_EVERY-th consecutive failure per sender.
REPORT_EVERY = 25
# DAVE failures that a commit we have not processed yet may explain: retried once our epoch changes.
RETRY_REASONS = frozenset({e2ee.NO_CRYPTOR, e2ee.NO_DECRYPTOR})
RETRY_SECONDS = 0.2
RETRY_PACKETS = 50

SessionSource = Callable[[], tuple[Any, int]]  # -> (davey.DaveSession | None, dave_protocol_version)


class VoicePacket(NamedTuple):  # a tuple: cheap to build once per packet
    """One sender's Opus frame, fully decrypted, ready for that sender's jitter buffer."""

    user_id: int
    ssrc: int
    sequence: int
    timestamp: int
    opus: bytes
    arrival: float


@dataclass(frozen=True, slots=True)
class DecryptFailure:
    """Decryption keeps failing: surfaced to users/operators, not swallowed."""

    stage: str  # "transport" or "dave"
    reason: str
    ssrc: int | None
    user_id: int | None
    consecutive: int
    total: int


@dataclass(frozen=True, slots=True)
class SsrcMapped:
    ssrc: int
    user_id: int
    source: str  # "gateway" (op 5/12) or "trial" (found by trial decryption)


Event = VoicePacket | DecryptFailure | SsrcMapped


@dataclass
class PipelineStats:
    packets: int = 0
    accepted: int = 0
    ignored_rtcp: int = 0
    ignored_payload_type: int = 0
    ignored_own: int = 0
    malformed: int = 0
    transport_failures: int = 0
    dave_failures: int = 0
    dave_failures_by_reason: dict[str, int] = field(default_factory=dict)
    held: int = 0
    held_expired: int = 0
    trial_hits: int = 0
    internal_errors: int = 0
    dave_recovered: int = 0  # DAVE failures opened later, after our epoch caught up with the sender's

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "dave_failures_by_reason": dict(self.dave_failures_by_reason)}


@dataclass(slots=True)
class _Held:
    header: RtpHeader
    frame: bytes
    arrival: float


@dataclass(slots=True)
class _Retry:
    held: _Held
    user_id: int
    epoch: int | None  # our session's epoch when the frame failed


def _epoch(session: Any) -> int | None:
    epoch = getattr(session, "epoch", None)  # davey.DaveSession.epoch (None before the group exists)
    return epoch if isinstance(epoch, int) else None


class ReceivePipeline:
    def __init__(
        self,
        session_source: SessionSource = lambda: (None, 0),
        *,
        own_user_id: int | None = None,
        own_ssrc: int | None = None,
    ) -> None:
        self._session_source = session_source
        self.own_user_id = own_user_id
        self.own_ssrc = own_ssrc
        self._cipher: TransportCipher | None = None
        self._ssrc_to_user: dict[int, int] = {}
        self._held: dict[int, deque[_Held]] = {}
        self._consecutive: dict[tuple[str, int | None], int] = {}
        self._retry: deque[_Retry] = deque(maxlen=RETRY_PACKETS)
        self._lock = threading.Lock()
        self.stats = PipelineStats()

    # ---- state from the voice gateway (event loop) -------------------------------------------------
    def set_transport(self, mode: str, secret_key: bytes) -> None:
        cipher = TransportCipher(mode, secret_key)
        with self._lock:
            self._cipher = cipher

    def set_own_ssrc(self, ssrc: int) -> None:
        with self._lock:
            self.own_ssrc = ssrc

    def map_ssrc(self, ssrc: int, user_id: int, now: float) -> list[Event]:
        """op 5/12: SSRC -> user; releases that SSRC's held packets."""
        with self._lock:
            return self._map(ssrc, user_id, "gateway", now)

    def forget_user(self, user_id: int) -> None:
        """op 13: the user left; their SSRC may be reused by someone else."""
        with self._lock:
            for ssrc in [s for s, u in self._ssrc_to_user.items() if u == user_id]:
                del self._ssrc_to_user[ssrc]

    def user_for(self, ssrc: int) -> int | None:
        return self._ssrc_to_user.get(ssrc)

    # ---- per datagram (UDP thread) ----------------------------------------------------------------
    def feed(self, datagram: bytes, now: float) -> list[Event]:
        """Consume one datagram; never raises."""
        with self._lock:
            self.stats.packets += 1
            try:
                events = self._feed(datagram, now)
                if self._held:  # nothing to expire on the common path (every SSRC mapped)
                    self._expire_held(now)
                return events
            except Exception:  # a bug must not kill the UDP thread; counted and logged (rate-limited upstream)
                self.stats.internal_errors += 1
                log.debug("receive pipeline error on a %d-byte datagram", len(datagram), exc_info=True)
                return []

    def _feed(self, datagram: bytes, now: float) -> list[Event]:
        if is_rtcp(datagram):
            self.stats.ignored_rtcp += 1
            return []
        try:
            header = parse_header(datagram)
        except RtpError:
            self.stats.malformed += 1
            return []
        if header.payload_type != OPUS_PAYLOAD_TYPE:
            self.stats.ignored_payload_type += 1
            return []
        if header.ssrc == self.own_ssrc:
            self.stats.ignored_own += 1
            return []
        if self._cipher is None:
            return self._fail("transport", "no_key", header.ssrc, None)
        try:
            frame = strip_plaintext(header, self._cipher.decrypt(header, datagram))
        except TransportCipherError:
            return self._fail("transport", "auth_failed", header.ssrc, None)
        except RtpError:
            self.stats.malformed += 1
            return []
        if self._consecutive:  # a failure streak to end; empty (and skipped) while all is well
            self._consecutive.pop(("transport", header.ssrc), None)
        if not frame:
            self.stats.malformed += 1
            return []
        user_id = self._ssrc_to_user.get(header.ssrc)
        if user_id is None:
            return self._hold(header, frame, now)
        return self._open(header, frame, user_id, now)

    def _open(self, header: RtpHeader, frame: bytes, user_id: int, arrival: float) -> list[Event]:
        session, version = self._session_source()
        events = self._retry_after_epoch_change(session, version, arrival) if self._retry else []
        try:
            opus = e2ee.open_frame(user_id, frame, session, version)
        except DaveError as exc:
            if exc.reason in RETRY_REASONS and session is not None:
                self._retry.append(_Retry(_Held(header, frame, arrival), user_id, _epoch(session)))
            return events + self._fail("dave", exc.reason, header.ssrc, user_id)
        if self._consecutive:
            self._consecutive.pop(("dave", user_id), None)
        self.stats.accepted += 1
        events.append(VoicePacket(user_id, header.ssrc, header.sequence, header.timestamp, opus, arrival))
        return events

    def _retry_after_epoch_change(self, session: Any, version: int, now: float) -> list[Event]:
        """Frames a sender keyed for an epoch we had not reached: open them once our epoch moved on
        (the sender processed the commit before we did). Safe: a failed attempt does not consume the
        nonce. Kept RETRY_SECONDS at most, so the jitter buffer can still place them."""
        if not self._retry or session is None:
            return []
        epoch, waiting = _epoch(session), deque[_Retry](maxlen=RETRY_PACKETS)
        events: list[Event] = []
        for item in self._retry:
            if now - item.held.arrival > RETRY_SECONDS:
                continue
            if item.epoch == epoch:
                waiting.append(item)
                continue
            try:
                opus = e2ee.open_frame(item.user_id, item.held.frame, session, version)
            except DaveError:
                continue
            self.stats.accepted += 1
            self.stats.dave_recovered += 1
            h = item.held.header
            events.append(VoicePacket(item.user_id, h.ssrc, h.sequence, h.timestamp, opus, item.held.arrival))
        self._retry = waiting
        return events

    # ---- unmapped SSRCs ----------------------------------------------------------------------------
    def _hold(self, header: RtpHeader, frame: bytes, now: float) -> list[Event]:
        queue = self._held.get(header.ssrc)
        if queue is None:
            if len(self._held) >= HOLD_SSRCS:
                self.stats.held_expired += 1
                return []
            queue = self._held[header.ssrc] = deque(maxlen=HOLD_PACKETS)
        if len(queue) == queue.maxlen:
            self.stats.held_expired += 1
        queue.append(_Held(header, frame, now))
        self.stats.held += 1
        if (len(queue) - 1) % TRIAL_EVERY == 0:
            return self._trial(header.ssrc, queue[0].frame, now)
        return []

    def _trial(self, ssrc: int, frame: bytes, now: float) -> list[Event]:
        """Try the oldest held frame against every group member not yet mapped; a hit maps the SSRC.

        Safe: a failed DAVE decrypt does not consume the sender's nonce.
        """
        if frame == e2ee.SILENCE_FRAME:
            return []
        session, version = self._session_source()
        if version == 0:
            return []
        mapped = set(self._ssrc_to_user.values())
        for member in e2ee.group_members(session, self.own_user_id):
            if member in mapped:
                continue
            try:
                opus = session.decrypt(member, e2ee.AUDIO, frame)
            except ValueError:
                continue
            self.stats.trial_hits += 1
            # The hit consumed that frame's nonce (a second decrypt would be a replay), so the oldest
            # held frame is released with the plaintext we already have.
            return self._map(ssrc, member, "trial", now, first_plaintext=opus)
        return []

    def _map(
        self, ssrc: int, user_id: int, source: str, now: float, first_plaintext: bytes | None = None
    ) -> list[Event]:
        self._ssrc_to_user[ssrc] = user_id
        events: list[Event] = [SsrcMapped(ssrc, user_id, source)]
        held = self._held.pop(ssrc, None)
        if not held:
            return events
        if first_plaintext is not None:
            first = held.popleft()
            h = first.header
            self.stats.accepted += 1
            events.append(VoicePacket(user_id, ssrc, h.sequence, h.timestamp, first_plaintext, first.arrival))
        for item in held:
            events.extend(self._open(item.header, item.frame, user_id, item.arrival))
        return events

    def _expire_held(self, now: float) -> None:
        for ssrc in list(self._held):
            queue = self._held[ssrc]
            while queue and now - queue[0].arrival > HOLD_SECONDS:
                queue.popleft()
                self.stats.held_expired += 1
            if not queue:
                del self._held[ssrc]

    # ---- failures ----------------------------------------------------------------------------------
    def _fail(self, stage: str, reason: str, ssrc: int | None, user_id: int | None) -> list[Event]:
        if stage == "transport":
            self.stats.transport_failures += 1
            total = self.stats.transport_failures
            key: tuple[str, int | None] = (stage, ssrc)
        else:
            self.stats.dave_failures += 1
            by_reason = self.stats.dave_failures_by_reason
            by_reason[reason] = by_reason.get(reason, 0) + 1
            total = self.stats.dave_failures
            key = (stage, user_id)
        consecutive = self._consecutive.get(key, 0) + 1
        self._consecutive[key] = consecutive
        if consecutive == 1 or consecutive % REPORT_EVERY == 0:
            return [DecryptFailure(stage, reason, ssrc, user_id, consecutive, total)]
        return []
