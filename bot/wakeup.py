"""A wake-up flag for one waiting task, with a timeout that costs a timer rather than a task.

The mixer clock and the Palabra stream driver each sleep a dozen times a second in every session,
idle ones included; `asyncio.wait_for(event.wait(), timeout)` creates a task for every such sleep,
which was a measurable part of what an idle session costs.
"""

from __future__ import annotations

import asyncio


class Wakeup:
    """Like `asyncio.Event` (set / clear / wait) for a single waiter, with `wait(timeout)`. Event loop only."""

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self, timeout: float | None = None) -> bool:
        """Until set (True) or `timeout` seconds (False). Always lets the event loop run once, even when
        already set or with no time left: a driver whose deadline has passed would otherwise spin
        without ever yielding (as `asyncio.wait_for(..., 0)` does yield)."""
        if self._set or (timeout is not None and timeout <= 0):
            await asyncio.sleep(0)
            return self._set
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return self._set


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
