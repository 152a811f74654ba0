"""Waiting for a condition in tests that drive real peers over loopback, instead of sleeping a guessed time.

`wait_until` polls a predicate (plain or async) until it returns something truthy and returns that value;
after `timeout` seconds it fails the test naming `what`. A sleep says "this is probably long enough"; the
predicate says what the test is waiting for, and a loaded machine only makes the wait longer, not wrong.
Logic with its own deadlines is tested with fake clocks instead (no waiting at all).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

POLL_INTERVAL_S = 0.01


class ConditionTimeout(TimeoutError, AssertionError):
    """The condition did not hold in time: a test failure (AssertionError) and a timeout (TimeoutError)."""


async def wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = POLL_INTERVAL_S,
) -> T:
    """The first truthy value of `predicate()`, polled every `interval` s; ConditionTimeout after `timeout` s.
    The predicate is checked once more at the deadline, so a condition that holds then is not a failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        value = await result if inspect.isawaitable(result) else result
        if value:
            return value
        if loop.time() >= deadline:
            raise ConditionTimeout(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))
