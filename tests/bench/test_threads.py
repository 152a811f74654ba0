"""The capacity steps' CPU split per thread group: a busy thread shows up under its group, idle ones not."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from bot.bench.threads import ThreadCpu, group_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")


def test_thread_numbers_are_grouped():
    assert group_of("playback-clock-3") == "playback-clock-N"
    assert group_of("bench-udp-12") == "bench-udp-N"
    assert group_of("MainThread") == "MainThread"


def _spin(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))


def test_a_busy_thread_is_counted_in_its_group_and_a_sleeping_one_is_not():
    stop = threading.Event()
    busy = [threading.Thread(target=_spin, args=(stop,), name=f"spinner-{i}", daemon=True) for i in range(2)]
    sleeper = threading.Thread(target=stop.wait, name="sleeper-1", daemon=True)
    for thread in (*busy, sleeper):
        thread.start()
    try:
        cpu = ThreadCpu()
        cpu.start()
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:  # this thread sleeps; the spinners hold the GIL between them
            time.sleep(0.05)
        cores = cpu.cores()
    finally:
        stop.set()
        for thread in (*busy, sleeper):
            thread.join()
    assert cores.get("spinner-N", 0) > 0.5  # two spinners share one GIL: about one core between them
    assert "sleeper-N" not in cores
    assert next(iter(cores)) == "spinner-N"  # busiest group first
