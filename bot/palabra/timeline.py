"""The audio timeline of a streaming session, with the replay cursor (pure data, no time, no I/O).

Every byte sent to Palabra gets a place on one continuous timeline (seconds since the session's first
audio, silence padding included). What was sent since the last finalised utterance is kept; after a
reconnect the cursor goes back to its start, so the new socket hears the unfinished utterance again
and its segment times are shifted by where its audio starts on the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_REPLAY_S = 30.0  # bound of the replay history
# With nothing but silence since the last finalised utterance there is nothing worth replaying: the
# history keeps only this much of it (instead of 30 s, re-copied with every chunk of an idle session).
SILENT_REPLAY_S = 1.0
# A final's end may fall a little before the last non-zero sample of its speech (a fading tail the
# recogniser trims): sound this close after the last final counts as confirmed for an idle pause.
FINAL_EDGE_S = 0.5
# Quieter than this (peak, s16) is silence for an idle pause: about -60 dBFS. Opus decodes the pauses
# inside a transmission as +-1 LSB, never as zeros, and nothing this quiet is speech to a recogniser.
QUIET_PEAK = 32


def _loud(pcm: bytes | bytearray) -> np.ndarray:
    """Indices of the samples (s16le) above QUIET_PEAK."""
    samples = np.frombuffer(pcm, "<i2", len(pcm) // 2)
    return np.flatnonzero((samples > QUIET_PEAK) | (samples < -QUIET_PEAK))


def is_quiet(pcm: bytes | bytearray) -> bool:
    """Silence for an idle pause: zeros (the common case, one C call) or nothing above QUIET_PEAK."""
    return pcm.count(0) == len(pcm) or not len(_loud(pcm))


def loud_bytes(pcm: bytes | bytearray) -> int:
    """Bytes of `pcm` up to and including its last sample above QUIET_PEAK (0: all quiet)."""
    if pcm.count(0) == len(pcm):
        return 0
    loud = _loud(pcm)
    return int(loud[-1] + 1) * 2 if len(loud) else 0


@dataclass
class StreamStats:
    chunks_sent: int = 0
    bytes_sent: int = 0
    silence_chunks: int = 0  # chunks padded with silence because the producer stalled
    audio_bytes_sent: int = 0  # the producer's own audio (no padding, no replays)
    reconnects: int = 0
    idle_pauses: int = 0  # times the stream paused Palabra (pause_task) because nobody spoke
    idle_paused_s: float = 0.0  # time paused so, ended pauses only (Palabra does not bill it)
    replayed_s: float = 0.0
    outages_s: list[float] = field(default_factory=list)  # from each drop to the task running again


class AudioTimeline:
    def __init__(self, bytes_per_second: int, frame_bytes: int, chunk_bytes: int, stats: StreamStats) -> None:
        self.bytes_per_second, self.frame_bytes, self.chunk_bytes = bytes_per_second, frame_bytes, chunk_bytes
        self.stats = stats
        self.pending = bytearray()  # the producer's audio, not yet on the timeline
        self._history = bytearray()  # timeline audio since the last finalised utterance (for replay)
        self._history_start = 0  # timeline byte where `_history` starts
        self._cursor = 0  # bytes of `_history` sent on the current socket (the replay cursor)
        self._max_history = int(MAX_REPLAY_S * bytes_per_second)
        self._max_silent_history = int(SILENT_REPLAY_S * bytes_per_second)
        self._zero_chunk = bytes(chunk_bytes)
        self._voiced_until = 0  # timeline byte just after the last sample sent above QUIET_PEAK
        self._final_edge = int(FINAL_EDGE_S * bytes_per_second)

    @property
    def history_start(self) -> int:
        """Timeline byte where a new socket's audio starts (its segment times count from here)."""
        return self._history_start

    @property
    def replay_bytes(self) -> int:
        return len(self._history)

    @property
    def unsent_bytes(self) -> int:
        """Audio still to go out on the current socket: replay not yet re-sent plus the producer's."""
        return len(self.pending) + len(self._history) - self._cursor

    @property
    def sent_s(self) -> float:
        """Seconds of audio on the timeline so far (sent at least once)."""
        return (self._history_start + len(self._history)) / self.bytes_per_second

    @property
    def idle(self) -> bool:
        """Nothing left that Palabra still needs: every voiced byte is behind a final (or too old to
        replay), everything on the timeline was sent on this socket, and what waits is silence."""
        return (
            self._voiced_until <= self._history_start + self._final_edge
            and self._cursor == len(self._history)
            and is_quiet(self.pending)
        )

    def forget_sent(self) -> None:
        """An idle pause begins: the silence already sent is not worth replaying."""
        self._drop(self._cursor)

    def skip_pending(self, size: int) -> None:
        """Drop `size` bytes of pending silence without sending them: they still take their place on the
        timeline (as if sent and final), so later segment times and the mixer's clock stay in step.
        Only with nothing held for replay (an idle pause keeps none)."""
        size = min(size - size % self.frame_bytes, len(self.pending))
        if size <= 0:
            return
        assert not self._history, "skipping silence with audio held for replay"
        del self.pending[:size]
        self._history_start += size

    def rewind(self) -> None:
        """A new socket: everything since the last finalised utterance is to be sent again."""
        self._cursor = 0

    def take_chunk(self) -> tuple[bytes, int]:
        """The next chunk — replay from the cursor first, then fresh audio, then silence — and how many
        bytes of it are padding."""
        n = self.chunk_bytes
        replay = bytes(self._history[self._cursor : self._cursor + n])
        self._cursor += len(replay)
        fresh = bytes(self.pending[: n - len(replay)])
        del self.pending[: len(fresh)]
        padding = n - len(replay) - len(fresh)
        new = fresh + bytes(padding)
        self._history.extend(new)
        self._cursor += len(new)
        if new != self._zero_chunk:
            voiced = loud_bytes(new)
            if voiced:
                voiced += -voiced % self.frame_bytes
                self._voiced_until = self._history_start + len(self._history) - len(new) + voiced
        excess = len(self._history) - self._max_history
        if self._voiced_until <= self._history_start:  # only silence held: keep a little of it
            excess = min(max(excess, len(self._history) - self._max_silent_history), self._cursor)
        if excess > 0:
            self._drop(excess - excess % self.frame_bytes)
        self.stats.chunks_sent += 1
        self.stats.bytes_sent += n
        self.stats.audio_bytes_sent += len(fresh)
        if padding:
            self.stats.silence_chunks += 1
        return replay + new, padding

    def finalised(self, end_s: float) -> None:
        """An utterance ending at `end_s` (timeline seconds) is final: replay needs nothing before it."""
        end_byte = int(end_s * self.bytes_per_second)
        self._drop(min(end_byte - end_byte % self.frame_bytes - self._history_start, self._cursor))

    def _drop(self, size: int) -> None:
        if size > 0:
            del self._history[:size]
            self._history_start += size
            self._cursor -= size
