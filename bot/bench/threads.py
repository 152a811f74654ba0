"""CPU time per thread group of this process (Linux `/proc/self/task/<tid>/stat`), for the capacity steps.

The process total says that a step fell behind; the split says where the time went: the event loop
(mixer clocks, Palabra traffic), the UDP readers, the playback senders (mostly the Opus encoder) or the
decode workers. Threads are grouped by name with their numbers dropped ("playback-clock-2" ->
"playback-clock-N"). Elsewhere than Linux the split is empty rather than guessed.
"""

from __future__ import annotations

import os
import re
import threading
import time

_NUMBER = re.compile(r"\d+")


def _ticks(native_id: int) -> int | None:
    try:
        with open(f"/proc/self/task/{native_id}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks


def group_of(name: str) -> str:
    return _NUMBER.sub("N", name)


class ThreadCpu:
    """`start()` then `cores()`: CPU cores used per thread group in between (threads that ended are missed)."""

    def __init__(self) -> None:
        self._start: dict[int, tuple[str, int]] = {}
        self._t0 = 0.0

    def _snapshot(self) -> dict[int, tuple[str, int]]:
        out = {}
        for thread in threading.enumerate():
            if thread.native_id is None:
                continue
            ticks = _ticks(thread.native_id)
            if ticks is not None:
                out[thread.native_id] = (group_of(thread.name), ticks)
        return out

    def start(self) -> None:
        self._start, self._t0 = self._snapshot(), time.monotonic()

    def cores(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._t0
        if elapsed <= 0:
            return {}
        per_second = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        used: dict[str, int] = {}
        for native_id, (group, ticks) in self._snapshot().items():
            before = self._start.get(native_id)
            start = before[1] if before is not None else ticks  # started inside the window: not counted
            used[group] = used.get(group, 0) + max(0, ticks - start)  # a reused thread id never goes negative
        ordered = sorted(used.items(), key=lambda item: -item[1])
        return {group: round(ticks / per_second / elapsed, 3) for group, ticks in ordered if ticks > 0}
