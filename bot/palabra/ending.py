"""An asked end of a stream (sans-I/O): the buffered audio goes out at its pace, then `end_task`, then
Palabra's end of stream is awaited. Every wait is bounded by the end's timeout: half of it for a
socket to come back, the audio's own length (plus two chunks and a second) to drain, all of it for
the end of stream."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ending:
    timeout: float
    wait_until: float | None = None  # give up waiting for a (re)connection at this time
    drain_until: float | None = None  # stop sending buffered audio at this time
    eos_until: float | None = None  # stop waiting for end_of_stream at this time

    def socket_lost(self, now: float) -> None:
        self.wait_until, self.drain_until = now + self.timeout / 2, None

    def waited_too_long(self, now: float) -> bool:
        """No socket streams: True once the wait for one is over."""
        if self.wait_until is None:
            self.wait_until = now + self.timeout / 2
        return now >= self.wait_until

    def draining(self, now: float, unsent_s: float, chunk_s: float) -> None:
        if self.drain_until is None:
            self.drain_until = now + unsent_s + 2 * chunk_s + 1.0

    def drained(self, now: float, unsent_bytes: int) -> bool:
        """Whether end_task goes now: nothing left to send, or the drain took its time."""
        return self.drain_until is not None and (unsent_bytes == 0 or now >= self.drain_until)

    def end_task_sent(self, now: float) -> None:
        self.eos_until = now + self.timeout

    def eos_overdue(self, now: float) -> bool:
        return self.eos_until is not None and now >= self.eos_until

    def deadline(self, *, connected: bool, streaming: bool) -> float | None:
        """The next time the end needs a tick, by where the stream is."""
        if not connected:
            return self.wait_until
        return self.drain_until if streaming else self.eos_until
