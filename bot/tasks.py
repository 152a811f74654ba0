"""Stopping background tasks: one way, written once.

`task.cancel()` then `with suppress(CancelledError): await task` looks right but swallows the caller's
own cancellation too (a shutdown that cancels the stopper carries on as if nothing happened), and raises
whatever error the task had already died of in the middle of a stop. `cancel_and_wait` lets the caller's
cancellation through, and logs a task's own error instead of raising it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

STEP_FINISH_TIMEOUT_S = 5.0
STEP_POLL_S = 0.01


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None, log_errors: bool = True) -> None:
    """Cancel the tasks (None is skipped) and wait until every one has finished. `log_errors=False` where
    the caller has reported the tasks' failures already."""
    pending = [task for task in tasks if task is not None]
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*pending, return_exceptions=True)
    for task, result in zip(pending, results, strict=True):
        if log_errors and isinstance(result, Exception):
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            log.error("background task %s had ended with an error", name, exc_info=result)


class Steps:
    """The steps of a periodic task (`with steps.step(): ...`), so that `stop()` never cuts one short."""

    def __init__(self) -> None:
        self.running = False

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        self.running = True
        try:
            yield
        finally:
            self.running = False

    async def stop(self, task: asyncio.Task[Any] | None, timeout: float = STEP_FINISH_TIMEOUT_S) -> None:
        """Stop `task` at once while it waits for its next step, else once the step in progress has ended
        (at most `timeout`). A database write that a cancellation cuts short leaves its SQLite connection
        holding the write lock, and every later write then waits for it (a stop's own last write among them)."""
        if task is None:
            return
        deadline = asyncio.get_running_loop().time() + timeout
        while self.running and not task.done() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(STEP_POLL_S)
        await cancel_and_wait(task)


def pending_tasks(limit: int = 20) -> list[str]:
    """What the event loop's other tasks are waiting on, one line each: the task's name and the innermost
    coroutine it awaits in (file:line, function); for a log line when something that should be quick (a
    shutdown) is not."""
    lines = []
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is not current and not task.done():
            lines.append(f"{task.get_name()} at {_innermost(task.get_coro())}")
    return sorted(lines)[:limit]


def _innermost(coro: object, depth: int = 3) -> str:
    """The await chain's last `depth` coroutines, innermost first ("not started" before the first step)."""
    chain = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} ({frame.f_code.co_name})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return " <- ".join(reversed(chain[-depth:])) or "not started"
