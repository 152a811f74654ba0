import pytest

from tests.fakes.waiting import ConditionTimeout, wait_until


def counter_reaching(target: int):
    calls = []

    def predicate():
        calls.append(None)
        return len(calls) if len(calls) >= target else 0

    return predicate, calls


async def test_returns_the_first_truthy_value_and_stops_polling():
    predicate, calls = counter_reaching(3)
    assert await wait_until(predicate, timeout=5, interval=0) == 3
    assert len(calls) == 3


async def test_an_async_predicate_is_awaited():
    sync, _ = counter_reaching(2)

    async def predicate():
        return sync()

    assert await wait_until(predicate, timeout=5, interval=0) == 2


async def test_a_condition_that_never_holds_fails_the_test_naming_what_was_awaited():
    with pytest.raises(ConditionTimeout, match="waiting for the listener") as caught:
        await wait_until(lambda: None, timeout=0, what="the listener")
    assert isinstance(caught.value, AssertionError) and isinstance(caught.value, TimeoutError)


async def test_the_predicate_is_checked_even_with_no_time_left():
    assert await wait_until(lambda: "ready", timeout=0) == "ready"
