import asyncio

from bot.wakeup import Wakeup


async def test_a_set_wakeup_returns_at_once_and_stays_set_until_cleared():
    wakeup = Wakeup()
    wakeup.set()
    assert await wakeup.wait(None) is True
    assert wakeup.is_set()
    wakeup.clear()
    assert await wakeup.wait(0) is False


async def test_set_wakes_the_waiter_before_its_timeout_and_a_timeout_returns_false():
    wakeup = Wakeup()
    loop = asyncio.get_running_loop()
    loop.call_soon(wakeup.set)
    started = loop.time()
    assert await wakeup.wait(30) is True
    assert loop.time() - started < 5
    wakeup.clear()
    assert await wakeup.wait(0.01) is False
    loop.call_soon(wakeup.set)  # a later set still wakes a new wait
    assert await wakeup.wait(None) is True


async def test_a_wait_with_no_time_left_still_lets_other_tasks_run():
    # A driver whose deadline has passed loops on wait(0); it must not starve the loop, as
    # asyncio.wait_for(event.wait(), 0), which it replaced, did not.
    wakeup, ran = Wakeup(), []
    other = asyncio.create_task(asyncio.sleep(0, result=None))
    other.add_done_callback(lambda _task: ran.append(True))
    for _ in range(3):
        await wakeup.wait(0)
    assert ran == [True]
    wakeup.set()
    ran.clear()
    other = asyncio.create_task(asyncio.sleep(0))
    other.add_done_callback(lambda _task: ran.append(True))
    for _ in range(3):
        await wakeup.wait(None)
    assert ran == [True]
