"""cancel_and_wait: tasks end, the caller's own cancellation is not swallowed, a task's error is logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.tasks import cancel_and_wait


async def test_every_task_is_cancelled_and_finished_when_it_returns_and_none_is_skipped():
    forever = [asyncio.create_task(asyncio.Event().wait()) for _ in range(3)]
    await cancel_and_wait(forever[0], None, *forever[1:])
    assert all(task.done() and task.cancelled() for task in forever)


async def _slow_to_stop(release: asyncio.Event) -> None:
    try:
        await asyncio.Event().wait()
    finally:  # winds down only when the test says so
        await release.wait()


async def _stop_by_suppressing(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_the_callers_own_cancellation_goes_through_unlike_suppressing_around_the_await():
    for stop, swallowed in ((_stop_by_suppressing, True), (cancel_and_wait, False)):
        release = asyncio.Event()
        worker = asyncio.create_task(_slow_to_stop(release))
        await asyncio.sleep(0)  # the worker is inside its wait
        stopper = asyncio.create_task(stop(worker))
        await asyncio.sleep(0)  # the stopper waits for the worker to wind down
        stopper.cancel()  # e.g. a shutdown deadline
        release.set()
        await asyncio.gather(stopper, return_exceptions=True)
        assert stopper.cancelled() is not swallowed, stop.__name__


async def test_an_error_a_task_had_died_of_is_logged_not_raised(caplog):
    async def fails() -> None:
        raise RuntimeError("it broke earlier")

    task = asyncio.create_task(fails(), name="the-poller")
    await asyncio.sleep(0)
    assert task.done()
    with caplog.at_level(logging.ERROR, logger="bot.tasks"):
        await cancel_and_wait(task)
    [record] = caplog.records
    assert "the-poller" in record.getMessage() and record.exc_info is not None


async def test_errors_already_reported_by_the_caller_are_not_logged_again(caplog):
    async def fails() -> None:
        raise RuntimeError("reported when it happened")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="bot.tasks"):
        await cancel_and_wait(task, log_errors=False)
    assert caplog.records == []


async def test_steps_stop_lets_a_step_in_progress_finish_and_cancels_a_waiting_loop():
    from bot.tasks import Steps

    steps_done = []
    steps = Steps()

    async def loop_forever() -> None:
        while True:
            await asyncio.sleep(0.01)
            with steps.step():
                await asyncio.sleep(0.1)  # a write that must not be cut short
                steps_done.append(True)

    task = asyncio.create_task(loop_forever())
    while not steps.running:  # noqa: ASYNC110 (the loop under test exposes a flag, not an event)
        await asyncio.sleep(0.001)
    await steps.stop(task)
    assert task.cancelled() and steps_done == [True]  # the step ended, then the wait was cancelled
