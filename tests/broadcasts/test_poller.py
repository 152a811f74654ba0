"""The status poller: its loop against the emulator, announcements per chosen channel, failures that
do not stop it. (Announcements through Discord itself are in tests/cogs/test_broadcast.py.)"""

from __future__ import annotations

import pytest

from bot.broadcasts.poller import BroadcastPoller, announcement
from bot.broadcasts.validation import parse_create
from tests.fakes.broadcasts import set_status
from tests.fakes.secrets import STREAM_KEY
from tests.fakes.waiting import wait_until


def request(title: str):
    return parse_create(
        title=title,
        source="en",
        targets="es",
        input_protocol="srt_push",
        outputs=f"es=rtmp://live.example.com/app|{STREAM_KEY}",
    )


def test_delay_stays_within_jitter():
    poller = BroadcastPoller(None, None, interval_s=30, jitter=0.2)  # type: ignore[arg-type]
    delays = [poller.next_delay() for _ in range(200)]
    assert min(delays) >= 24 and max(delays) <= 36 and max(delays) - min(delays) > 3
    with pytest.raises(ValueError):
        BroadcastPoller(None, None, interval_s=0)  # type: ignore[arg-type]


async def test_loop_announces_changes_in_the_chosen_channel_and_survives_failures(services, emulator):
    service = services.broadcasts
    loud = (await service.create(guild_id=1, user_id=9, request=request("Loud"), announce_channel_id=100)).broadcast
    broken = (await service.create(guild_id=2, user_id=9, request=request("Broken"), announce_channel_id=200)).broadcast
    quiet = (await service.create(guild_id=3, user_id=9, request=request("Quiet"))).broadcast
    said: list[tuple[int, str]] = []

    async def announce(channel_id: int, text: str) -> None:
        if channel_id == 200:
            raise ConnectionError("channel gone")
        said.append((channel_id, text))

    poller = BroadcastPoller(service, announce, interval_s=0.05, jitter=0.5)
    poller.start()
    try:
        for broadcast in (loud, broken, quiet):
            await set_status(emulator, broadcast.id, "streaming")
        await wait_until(lambda: said)
        assert said == [
            (
                100,
                f"📡 Broadcast **Loud** (`{loud.id[:8]}`): 🔴 Streaming — input received, translating "
                "and re-streaming to the outputs",
            )
        ]
        # Palabra failing for a while: rounds fail, the loop goes on.
        emulator.state.config.rest_fail_first = 4
        await wait_until(lambda: emulator.state.config.rest_fail_first == 0)
        await set_status(emulator, loud.id, "error", "input dropped")
        await wait_until(lambda: len(said) == 2)
        assert said[1][0] == 100 and "⚠️ Error" in said[1][1] and "input dropped" in said[1][1]
        assert poller.running
    finally:
        await poller.stop()
    assert not poller.running and poller.rounds >= 2 and poller.failed_rounds >= 1


def test_announcement_text():
    from bot.broadcasts.service import StatusChange

    change = StatusChange(1, "0123456789abcdef", "Show", "streaming", "waiting_for_input", "⏳ Waiting", 5)
    assert announcement(change) == "📡 Broadcast **Show** (`01234567`): ⏳ Waiting"
