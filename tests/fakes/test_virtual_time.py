"""The virtual-time loop the clock tests run on: timers fire at their exact times, with no real waiting,
and a coroutine that never ends fails fast."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.virtual_time import run_on_virtual_time


async def woken_at() -> list[float]:
    loop = asyncio.get_running_loop()
    times: list[float] = []
    loop.call_at(2.5, lambda: times.append(loop.time()))
    await asyncio.sleep(1.0)
    times.append(loop.time())
    await asyncio.sleep(3600.0)
    times.append(loop.time())
    return times


@pytest.mark.timeout(30)  # an hour of virtual time is not waited for
def test_timers_fire_at_their_exact_virtual_times_without_real_waiting():
    assert run_on_virtual_time(woken_at(), timeout_s=7200) == [1.0, 2.5, 3601.0]


async def forever() -> None:
    ticks = 0
    while ticks >= 0:  # a 20 ms clock whose stop never comes
        await asyncio.sleep(0.02)
        ticks += 1


def test_a_coroutine_that_never_ends_fails_at_its_virtual_timeout():
    with pytest.raises(TimeoutError):
        run_on_virtual_time(forever(), timeout_s=5.0)
