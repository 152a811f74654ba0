"""The mixer clock's two refinements: an idle mixer is ticked in batches (same ticks, few wake-ups), and
a talking user's frame that is a moment late is waited for instead of leaving a hole. Each runs on
virtual time (tests.fakes.virtual_time): a frame "3 ms late" is exactly that, however busy the machine."""

import asyncio

import numpy as np
import pytest

from bot.audio.frames import FRAME_BYTES, SILENT_FRAME
from bot.audio.mixer import Mixer, MixerClock, PrebufferedMixer
from tests.fakes.virtual_time import run_on_virtual_time


def frame(value: int) -> bytes:
    return np.full(FRAME_BYTES // 2, value, dtype="<i2").tobytes()


def test_an_idle_mixer_is_ticked_in_batches_without_losing_ticks():
    run_on_virtual_time(idle_batches())


async def idle_batches() -> None:
    frames: list[bytes] = []
    clock = MixerClock(Mixer(), frames.append, interval_s=0.002, idle_batch=8, clock=asyncio.get_running_loop().time)
    waits = 0
    wait = clock._wait_for_push

    async def counting(timeout: float) -> None:
        nonlocal waits
        waits += 1
        await wait(timeout)

    clock._wait_for_push = counting  # type: ignore[method-assign]
    await clock.run(max_ticks=80)
    assert len(frames) == clock.ticks == 80 and set(frames) == {SILENT_FRAME}
    assert waits == 80 // 8  # one wake-up per batch, not one per tick


def test_an_idle_batch_goes_to_on_silence_in_one_call_and_speech_still_frame_by_frame():
    run_on_virtual_time(silence_in_batches())


async def silence_in_batches() -> None:
    frames: list[bytes] = []
    batches: list[int] = []
    mixer = PrebufferedMixer(prebuffer_frames=1)
    clock = MixerClock(
        mixer,
        frames.append,
        interval_s=0.002,
        idle_batch=8,
        on_silence=batches.append,
        clock=asyncio.get_running_loop().time,
    )
    await clock.run(max_ticks=40)
    assert sum(batches) + len(frames) == clock.ticks == 40  # the same ticks, none lost
    # The tick due at once goes out alone, then one call per batch of 8 (the last one capped by max_ticks).
    assert frames == [SILENT_FRAME] and batches == [8, 8, 8, 8, 39 - 4 * 8]
    for _ in range(3):
        mixer.push(1, frame(5))
    await clock.run(max_ticks=60)
    assert frames.count(frame(5)) == 3  # audio is never folded into a silence count


def test_a_frame_pushed_during_the_idle_wait_wakes_the_clock_and_is_mixed():
    run_on_virtual_time(woken_by_a_push())


async def woken_by_a_push() -> None:
    frames: list[bytes] = []
    emitted_at: list[float] = []
    mixer = PrebufferedMixer(prebuffer_frames=1)
    loop = asyncio.get_running_loop()

    def on_frame(mixed: bytes) -> None:
        frames.append(mixed)
        emitted_at.append(loop.time())

    clock = MixerClock(mixer, on_frame, interval_s=0.05, idle_batch=20, clock=loop.time)
    loop.call_later(0.07, mixer.push, 1, frame(7))
    await clock.run(max_ticks=4)
    # Woken by the push at 70 ms, the clock mixes the frame at once into the tick that fell due at 50 ms,
    # not after a 20-tick (1 s) batch.
    assert levels(frames)[:2] == [0, 7] and emitted_at[1] == pytest.approx(0.07)


async def late_arrivals(grace_s: float) -> tuple[list[bytes], MixerClock]:
    """Frames 2..6 each arrive 3 ms after the deadline of the tick they belong to."""
    loop = asyncio.get_running_loop()
    mixer = PrebufferedMixer(prebuffer_frames=1)
    frames: list[bytes] = []
    clock = MixerClock(mixer, frames.append, interval_s=0.03, grace_s=grace_s, idle_batch=1, clock=loop.time)
    start = loop.time()
    for k in range(1, 6):
        loop.call_at(start + k * clock.interval_s + 0.003, mixer.push, 1, frame(k + 1))
    mixer.push(1, frame(1))
    await clock.run(max_ticks=6)
    return frames, clock


def levels(frames: list[bytes]) -> list[int]:
    return [int(np.frombuffer(f, dtype="<i2")[0]) for f in frames]


def test_a_talking_users_late_frame_is_waited_for_within_the_grace():
    frames, clock = run_on_virtual_time(late_arrivals(grace_s=0.012))
    assert levels(frames) == [1, 2, 3, 4, 5, 6]  # no hole
    assert clock.late_waits == 5 and clock.grace_misses == 0 and clock.late == 0  # one wait per late frame


def test_a_frame_later_than_the_grace_is_given_up_on():
    frames, clock = run_on_virtual_time(late_arrivals(grace_s=0.002))
    assert 0 in levels(frames)[1:]
    # One wait, given up on; the hold that underrun adds (the adaptive pre-buffer) leaves nothing to wait for.
    assert clock.late_waits == clock.grace_misses == 1


def test_without_the_grace_the_same_arrivals_leave_holes():
    frames, clock = run_on_virtual_time(late_arrivals(grace_s=0.0))
    assert 0 in levels(frames)[1:] and clock.late_waits == 0
