"""When a stream's next chunk goes out (sans-I/O: time comes in as arguments).

Chunks go out one chunk length apart in real time (scaled by `pace`), each as soon as it is full and
due; a chunk still short at its deadline waits STALL_GRACE_CHUNKS for late audio before the timeline
pads it with silence (Palabra closes after 10 s without input and confirms a sentence only after
trailing silence). Replayed and backlogged audio (after a reconnect, or a resume that waited for its
command's budget) goes out at CATCH_UP_SPEED; a schedule that fell behind re-anchors instead of bursting.
"""

from __future__ import annotations

STALL_GRACE_CHUNKS = 1.0  # wait this many chunk lengths for late audio before padding with silence
CATCH_UP_SPEED = 2.0  # replayed and backlogged audio goes out this much faster than real time


class ChunkSchedule:
    def __init__(self, chunk_s: float, pace: float) -> None:
        self.interval = chunk_s / pace
        self.next_at: float | None = None  # None: no socket is streaming
        self.catch_up = 0  # bytes still to go out at CATCH_UP_SPEED

    def start(self, now: float, catch_up: int = 0) -> None:
        self.next_at, self.catch_up = now, catch_up

    def stop(self) -> None:
        self.next_at = None

    def due(self, now: float, unsent: int, chunk_bytes: int, *, draining: bool) -> bool:
        """Whether a chunk goes out at `now` with `unsent` bytes waiting (`draining`: the stream ends, so
        an empty buffer is not padded)."""
        if self.next_at is None or now < self.next_at:
            return False
        if unsent >= chunk_bytes:
            return True
        return not (draining and unsent == 0) and now >= self.next_at + self.interval * STALL_GRACE_CHUNKS

    def sent(self, now: float, size: int) -> None:
        catching_up = self.catch_up > 0
        self.catch_up = max(0, self.catch_up - size)
        assert self.next_at is not None
        self.next_at += self.interval / CATCH_UP_SPEED if catching_up else self.interval
        if now - self.next_at > self.interval:  # fell behind (a long tick): re-anchor, never burst
            self.next_at = now

    def deadline(self, full: bool) -> float | None:
        """When the next chunk is due: at its slot when `full`, else after the grace for late audio."""
        if self.next_at is None:
            return None
        return self.next_at + (0.0 if full else self.interval * STALL_GRACE_CHUNKS)
