"""The shutdown's steps that wait on Discord are bounded: one that hangs is cut short and said."""

from __future__ import annotations

import asyncio
import logging

from bot import app


async def test_a_shutdown_step_that_hangs_is_cut_short_and_said(caplog):
    caplog.set_level(logging.INFO, logger="bot.app")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await app._bounded("closing the Discord client", asyncio.Event().wait(), 0.2)
    assert loop.time() - started < 1.0
    assert "closing the Discord client did not finish within 0.2 s; going on" in caplog.text


async def test_a_shutdown_step_that_fails_is_logged_and_the_shutdown_goes_on(caplog):
    async def failing() -> None:
        raise RuntimeError("the gateway went away")

    await app._bounded("stopping speaker bots", failing(), 5.0)
    assert "stopping speaker bots failed" in caplog.text and "the gateway went away" in caplog.text


async def test_a_slow_shutdown_says_what_it_is_waiting_on(caplog):
    async def drain_forever() -> None:
        await asyncio.Event().wait()

    async def stop_session() -> None:
        await drain_forever()

    stuck = asyncio.create_task(stop_session(), name="session-drain")
    await asyncio.sleep(0)
    try:
        await app._report_slow_shutdown(0.1)
    finally:
        stuck.cancel()
    assert "the shutdown is taking over 0.1 s; waiting on:" in caplog.text
    # the innermost coroutine it waits in, Event.wait inside drain_forever inside stop_session
    assert "session-drain at locks.py:" in caplog.text and "(wait) <- test_app_close.py:" in caplog.text
    assert "(drain_forever) <- test_app_close.py:" in caplog.text
