"""Input pacing as the server judges it, without I/O: TOO_FAST / TOO_SLOW / STALLED warnings.

Palabra wants input audio at real-time rate and says so with `warning` messages (`{code, message}`)
when it drifts by more than a couple of seconds, or stalls. `time_scale` > 1 declares a client that
streams faster on purpose (`simulate --speed`); a pause (`pause_task`) is not "too slow".
"""

from __future__ import annotations

from bot.palabra import protocol as p
from bot.palabra.emulator.realism import STALLED, STALLED_MESSAGE

DRIFT_S = 2.0  # ahead or behind real time by more than this -> a warning
REPEAT_S = 5.0  # at most one drift warning per this long
STALL_S = 1.0  # no input for this long (while running) -> AUDIO_STREAM_STALLED, once per gap


class PacingMonitor:
    def __init__(self, *, time_scale: float = 1.0, drift: bool = True, stalls: bool = False) -> None:
        self.time_scale, self.drift, self.stalls = time_scale, drift, stalls
        self.first_audio: float | None = None  # clock time of the first chunk, moved forward by pauses
        self.audio_s = 0.0
        self.last_audio: float | None = None
        self.last_warning = float("-inf")
        self.paused_at: float | None = None
        self.stall_reported = False

    def on_audio(self, now: float, seconds: float) -> p.WarningMessage | None:
        if self.first_audio is None:
            self.first_audio = now
        self.audio_s += seconds
        self.last_audio, self.stall_reported = now, False
        return self.check(now)

    def pause(self, now: float) -> None:
        if self.paused_at is None:
            self.paused_at = now

    def resume(self, now: float) -> None:
        if self.paused_at is None:
            return
        if self.first_audio is not None:
            self.first_audio += now - self.paused_at  # a pause is not "audio too slow"
        if self.last_audio is not None:
            self.last_audio += now - self.paused_at
        self.paused_at = None

    def check(self, now: float) -> p.WarningMessage | None:
        """The warning due at `now`, if any (call on every chunk and now and then between them)."""
        if self.first_audio is None or self.paused_at is not None:
            return None
        gap = None if self.last_audio is None else (now - self.last_audio) * self.time_scale
        if self.stalls and not self.stall_reported and gap is not None and gap >= STALL_S:
            self.stall_reported = True
            return p.WarningMessage(STALLED, STALLED_MESSAGE)
        if not self.drift or now - self.last_warning <= REPEAT_S:
            return None
        ahead = self.audio_s - (now - self.first_audio) * self.time_scale
        if abs(ahead) <= DRIFT_S:
            return None
        self.last_warning = now
        code, word = ("AUDIO_STREAM_TOO_FAST", "faster") if ahead > 0 else ("AUDIO_STREAM_TOO_SLOW", "slower")
        return p.WarningMessage(
            code, f"Audio is arriving {abs(ahead):.1f} s {word} than real time; stream it in real time"
        )
