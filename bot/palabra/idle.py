"""The idle pause of a streaming session (sans-I/O state; `PalabraConnection` drives it).

Once `idle_pause_s` of audio in a row was quiet (nothing above about -60 dBFS, see
bot.palabra.timeline.QUIET_PEAK: Opus decodes the pauses inside a transmission as +-1 LSB, not zeros),
every utterance is final and Palabra has sent nothing for as long, the stream sends `pause_task` and
stops sending silence: the docs say a paused task is not billed and does not time out. The first loud
audio resumes it (`set_task` with the same task, which the docs say resumes a paused one) and goes out
right behind it, after a short lead of the quiet before it, so no syllable is lost. The silence not
sent still counts on the timeline (`SkipMap`), so segment times after a pause land where the mixer put
the audio.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

from bot.palabra.timeline import AudioTimeline, StreamStats

log = logging.getLogger(__name__)

# After an idle pause the stream restarts with this much of the quiet before the speech: the same lead
# the session starts with (bot.interpretation.session.STREAM_LEAD_S), which keeps every chunk full by
# its deadline without delaying it.
RESUME_LEAD_S = 0.25


class Idle(enum.Enum):
    OFF = "off"  # streaming as usual
    PAUSED = "paused"  # pause_task sent (or queued): quiet audio is counted, not sent
    RESUMING = "resuming"  # loud audio came: set_task queued, the audio waits for it


@dataclass
class SkipMap:
    """One socket's map from Palabra's segment times to timeline seconds. Palabra's times are "seconds
    from stream start" (docs); no probe covered a pause, and we take them as seconds of audio it was sent
    (what its recogniser hears; the emulator counts so), so the silence a pause did not send is added
    back to every segment after it."""

    offset_s: float  # timeline seconds where the socket's audio starts
    _skips: list[tuple[float, float]] = field(default_factory=list)  # (from Palabra time, total skipped)

    def skipped(self, after_s: float, seconds: float) -> None:
        """`seconds` of silence not sent; segments starting at `after_s` or later come after it."""
        total = (self._skips[-1][1] if self._skips else 0.0) + seconds
        if self._skips and self._skips[-1][0] == after_s:
            self._skips[-1] = (after_s, total)
        else:
            self._skips.append((after_s, total))

    def offset_at(self, t: float) -> float:
        """Timeline seconds to add to Palabra's time `t`."""
        skipped = 0.0
        for after, total in self._skips:
            if t < after:
                break
            skipped = total
        return self.offset_s + skipped


class IdlePause:
    def __init__(self, idle_pause_s: float | None, bytes_per_second: int, frame_bytes: int, stats: StreamStats) -> None:
        if idle_pause_s is not None and idle_pause_s <= 0:
            raise ValueError("idle_pause_s must be positive (None: never pause)")
        self.idle_pause_s, self.stats = idle_pause_s, stats
        self.lead_bytes = int(RESUME_LEAD_S * bytes_per_second / frame_bytes) * frame_bytes
        self._limit = None if idle_pause_s is None else int(idle_pause_s * bytes_per_second)
        self.state = Idle.OFF
        self.since: float | None = None  # when the current pause began (until its time is counted)
        self.resume_backlog = 0  # audio that waited for a resume a reconnect completed
        self._quiet_run = 0  # bytes of quiet audio sent in a row, reset by anything Palabra sends back

    def chunk_sent(self, size: int, quiet: bool) -> None:
        self._quiet_run = self._quiet_run + size if quiet else 0

    def palabra_answered(self) -> None:
        """A transcript or translated audio: Palabra is still at work, so not idle yet."""
        self._quiet_run = 0

    @property
    def due(self) -> bool:
        return self.state is Idle.OFF and self._limit is not None and self._quiet_run >= self._limit

    def begin(self, now: float) -> None:
        self.state, self.since = Idle.PAUSED, now
        self.stats.idle_pauses += 1
        log.info("nobody spoke for %.0f s: Palabra paused until someone does", self.idle_pause_s)

    def skip_quiet(self, timeline: AudioTimeline, at: tuple[int, SkipMap] | None, *, ending: bool) -> None:
        """While paused: count the pending quiet audio on the timeline without sending it, all but the
        lead for the next speech (none if ending). `at`: the socket's bytes sent and its SkipMap."""
        size = len(timeline.pending) - (0 if ending else self.lead_bytes)
        if size <= 0:
            return
        timeline.skip_pending(size)
        if at is not None:
            sent_bytes, skips = at
            # Any segment of the audio after the pause starts after its lead, and any before it ended
            # well before the pause (idle_pause_s of quiet): the boundary sits safely inside that quiet.
            after = sent_bytes / timeline.bytes_per_second - min(1.0, (self.idle_pause_s or 0.0) / 2)
            skips.skipped(after, size / timeline.bytes_per_second)

    def ended(self) -> None:
        """The task runs again: streaming as usual."""
        self.state, self._quiet_run = Idle.OFF, 0

    def count_time(self, now: float, over: bool) -> None:
        """Close the paused time once the pause is over or the stream ends (billing stops then)."""
        if (over or self.state is Idle.OFF) and self.since is not None:
            self.stats.idle_paused_s += now - self.since
            self.since = None

    def paused_s(self, now: float) -> float:
        """Time spent in idle pauses so far, the current one included."""
        return self.stats.idle_paused_s + (now - self.since if self.since is not None else 0.0)

    def refuse(self, code: str) -> bool:
        """Palabra answered an error while paused for silence: no more idle pauses on this stream (silence
        again, as before them, rather than a stream that sends nothing and times out). True if the
        task is to be resumed."""
        log.warning("Palabra answered %s during an idle pause: no more idle pauses on this stream", code)
        self._limit = None
        if self.state is Idle.PAUSED:
            self.state = Idle.RESUMING
            return True
        return False
