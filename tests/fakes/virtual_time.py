"""An asyncio event loop on virtual time, for timing logic that must not depend on a busy machine.

`run_on_virtual_time(main())` runs a coroutine on a loop whose `time()` starts at 0 and moves only when
every task waits: instead of blocking, the loop's selector jumps the clock to the next scheduled
callback. `sleep`, `call_at`, `wait_for` timeouts and the code under test (given `clock=loop.time`)
all see the same exact times, so "3 ms after the deadline" is exactly that however loaded the CI is.

Only for code that waits on the loop's timers and futures: sockets and threads still run in real
time while the virtual clock races ahead of them.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """Answers what is ready now; where the loop would block until its next timer, moves time there."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("virtual time: every task waits and no timer is set (a deadlock)")
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(selector=self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run_on_virtual_time(main: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
    """`main`'s result; TimeoutError once `timeout_s` of virtual time passed (a loop that never ends
    fails at once instead of spinning the clock until the test's own timeout)."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(asyncio.wait_for(main, timeout_s))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
