"""The mixer clock's two refinements: an idle mixer is ticked in batches (same ticks, few wake-ups), and
a talking user's frame that is a moment late is waited for instead of leaving a hole."""

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from bot.audio.frames import FRAME_BYTES, SILENT_FRAME
from bot.audio.mixer import Mixer, MixerClock, PrebufferedMixer


def frame(value: int) -> bytes:
    return np.full(FRAME_BYTES // 2, value, dtype="<i2").tobytes()


async def test_an_idle_mixer_is_ticked_in_batches_without_losing_ticks():
    frames: list[bytes] = []
    clock = MixerClock(Mixer(), frames.append, interval_s=0.002, idle_batch=8)
    waits = 0
    wait = clock._wait_for_push

    async def counting(timeout: float) -> None:
        nonlocal waits
        waits += 1
        await wait(timeout)

    clock._wait_for_push = counting  # type: ignore[method-assign]
    await asyncio.wait_for(clock.run(max_ticks=80), timeout=10)
    assert len(frames) == clock.ticks == 80 and set(frames) == {SILENT_FRAME}
    assert waits <= 80 // 8 + 2  # about one wake-up per batch, not one per tick


async def test_an_idle_batch_goes_to_on_silence_in_one_call_and_speech_still_frame_by_frame():
    frames: list[bytes] = []
    batches: list[int] = []
    mixer = PrebufferedMixer(prebuffer_frames=1)
    clock = MixerClock(mixer, frames.append, interval_s=0.002, idle_batch=8, on_silence=batches.append)
    await asyncio.wait_for(clock.run(max_ticks=40), timeout=10)
    assert sum(batches) + len(frames) == clock.ticks == 40  # the same ticks, none lost
    assert len(frames) <= 2 and len(batches) <= 40 // 8 + 2  # about one call per batch, not one per tick
    for _ in range(3):
        mixer.push(1, frame(5))
    await asyncio.wait_for(clock.run(max_ticks=60), timeout=10)
    assert frames.count(frame(5)) == 3  # audio is never folded into a silence count


async def test_a_frame_pushed_during_the_idle_wait_wakes_the_clock_and_is_mixed():
    frames: list[bytes] = []
    mixer = PrebufferedMixer(prebuffer_frames=1)
    clock = MixerClock(mixer, frames.append, interval_s=0.05, idle_batch=20)
    loop = asyncio.get_running_loop()
    loop.call_later(0.07, mixer.push, 1, frame(7))
    await asyncio.wait_for(clock.run(max_ticks=4), timeout=10)
    # Woken by the push: the frame is in the first few ticks, not after a 20-tick (1 s) batch.
    assert frame(7) in frames


def late_arrivals(grace_s: float) -> tuple[Callable[[], Awaitable[None]], list[bytes], MixerClock]:
    """Frames 2..6 each arrive 3 ms after the deadline of the tick they belong to."""
    mixer = PrebufferedMixer(prebuffer_frames=1)
    frames: list[bytes] = []
    clock = MixerClock(mixer, frames.append, interval_s=0.03, grace_s=grace_s, idle_batch=1)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k in range(1, 6):
            loop.call_at(start + k * clock.interval_s + 0.003, mixer.push, 1, frame(k + 1))
        mixer.push(1, frame(1))
        await asyncio.wait_for(clock.run(max_ticks=6), timeout=10)

    return run, frames, clock


def levels(frames: list[bytes]) -> list[int]:
    return [int(np.frombuffer(f, dtype="<i2")[0]) for f in frames]


async def test_a_talking_users_late_frame_is_waited_for_within_the_grace():
    run, frames, clock = late_arrivals(grace_s=0.012)
    await run()
    assert levels(frames) == [1, 2, 3, 4, 5, 6]  # no hole
    assert clock.late_waits >= 4 and clock.grace_misses == 0


async def test_without_the_grace_the_same_arrivals_leave_holes():
    run, frames, _clock = late_arrivals(grace_s=0.0)
    await run()
    assert 0 in levels(frames)[1:]
