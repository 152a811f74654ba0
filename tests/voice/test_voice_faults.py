"""The voice rows of the fault table: unmodified discord.py 2.7.1 with our ListeningVoiceClient against
the fake Discord, a simulated user speaking without pause while the fault hits. The figure is the
outage: the longest time nothing of her was heard (she is heard every 20 ms otherwise); what is heard
afterwards must be her speech (windowed correlation against what she sent)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass

import pytest

from bot.voice import adapter
from tests.fakes.audio import SAMPLE_EN, decode
from tests.fakes.discord import realism
from tests.fakes.discord.listening import (
    Collector,
    Outage,
    appears_in,
    dave_ready,
    listener_in,
    outage_after,
    wait_for,
)
from tests.fakes.discord.server import FakeDiscord

pytestmark = [pytest.mark.timeout(120)]
log = logging.getLogger(__name__)

SPEECH = decode(SAMPLE_EN, rate=48000, channels=2)[: 48000 * 4 * 9]  # 9 s without a gap in packets
FAULT_AT_S = 2.0
MAX_OUTAGE_S = 3.0  # the fault table's "heard again within 3 s"


@dataclass
class FaultFigures:
    outage: Outage  # the longest time nothing of the speaker was heard
    reconnected_s: float | None  # fault -> connected again on a new voice websocket (None: not in time)
    correlation: float  # what was heard after the fault against what she said


async def reconnect_time(vc, since: float, old_ws, timeout: float) -> float | None:
    loop = asyncio.get_running_loop()
    while loop.time() - since < timeout:
        if vc.is_connected() and vc.ws is not old_ws:
            return loop.time() - since
        await asyncio.sleep(0.01)
    return None


async def speak_through(fake, vc, collector: Collector, alice, fault, *, members: int = 2) -> FaultFigures:
    """Alice speaks SPEECH; `fault()` runs FAULT_AT_S into it."""
    await wait_for(lambda: dave_ready(vc, members), what="the listener's DAVE group")
    await alice.wait_dave_ready(members=members)
    loop = asyncio.get_running_loop()
    speaking = asyncio.create_task(alice.speak(SPEECH))
    await asyncio.sleep(FAULT_AT_S)
    fault_at, old_ws = loop.time(), vc.ws
    await fault()
    reconnected = await reconnect_time(vc, fault_at, old_ws, timeout=len(SPEECH) / 192000 - FAULT_AT_S)
    await speaking
    await asyncio.sleep(0.3)
    outage = outage_after(collector, alice.id, fault_at, loop.time())
    corr = appears_in(SPEECH, collector.heard_since(alice.id, fault_at))
    figures = FaultFigures(outage, reconnected, corr)
    kinds = Counter(
        f.kind for t, f in zip(collector.arrivals[alice.id], collector.frames[alice.id], strict=True) if t >= fault_at
    )
    log.info("frames after the fault by kind: %s", dict(kinds))
    log.info("%s, stats %s", figures, vc.receiver.stats())
    return figures


def assert_recovered(figures: FaultFigures, vc, fake) -> None:
    detail = f"stats={vc.receiver.stats()} fallbacks={adapter.resume_fallbacks(vc)} realism={fake.realism.log}"
    assert figures.reconnected_s is not None and figures.reconnected_s <= MAX_OUTAGE_S, f"{figures}; {detail}"
    assert figures.outage.resumed_at is not None, f"never heard again; {detail}"
    assert figures.outage.seconds <= MAX_OUTAGE_S, f"{figures}; {detail}"
    assert figures.correlation >= 0.9, f"what was heard after the fault is not her speech; {figures}; {detail}"
    assert vc.is_connected() and vc.receiver.stats()["worker_alive"]


def report(fault: str, figures: FaultFigures) -> None:
    print(f"FAULT {fault}: reconnected {figures.reconnected_s:.2f} s, outage {figures.outage.seconds:.2f} s")


@pytest.mark.parametrize(
    "answer",
    [
        realism.RESUME_FULL,
        realism.RESUME_RESUMED_ONLY,
        realism.RESUME_LATE,
        realism.RESUME_SILENT,
        realism.RESUME_INVALID,
    ],
)
async def test_4015_during_speech_is_heard_again_within_3_s_whatever_the_resume_answer(answer):
    async with FakeDiscord() as fake, listener_in(fake, "Voice A") as (vc, collector):
        alice = await fake.add_user("Alice")
        await alice.join("Voice A")
        figures = await speak_through(
            fake, vc, collector, alice, lambda: fake.close_voice(vc.user.id, 4015, resume=answer)
        )
        assert_recovered(figures, vc, fake)
        report(f"voice 4015, resume answered {answer}", figures)
        stalled = answer in (realism.RESUME_LATE, realism.RESUME_SILENT, realism.RESUME_INVALID)
        assert adapter.resume_fallbacks(vc) == int(stalled)
        assert (vc.user.id, answer) in fake.voice.resume_answers


async def test_4015_when_the_server_update_comes_after_the_state_update():
    """discord.py 2.7.1's resume waits for both updates in a state-dependent order; the other order
    stalls it before the websocket even opens. The watch covers that stall too."""
    async with FakeDiscord() as fake, listener_in(fake, "Voice A") as (vc, collector):
        fake.realism.forced_server_update_first = False
        alice = await fake.add_user("Alice")
        await alice.join("Voice A")
        figures = await speak_through(fake, vc, collector, alice, lambda: fake.close_voice(vc.user.id, 4015))
        assert_recovered(figures, vc, fake)
        report("voice 4015, state update before server update", figures)
        assert adapter.resume_fallbacks(vc) == 1


async def test_4015_under_realism(realism_seed):
    async with FakeDiscord(realism=realism_seed) as fake, listener_in(fake, "Voice A") as (vc, collector):
        alice = await fake.add_user("Alice")
        await alice.join("Voice A")
        figures = await speak_through(fake, vc, collector, alice, lambda: fake.close_voice(vc.user.id, 4015))
        assert_recovered(figures, vc, fake)
        report(f"voice 4015, realism {realism_seed} {fake.realism.log}", figures)


async def test_4006_during_speech_is_heard_again_within_3_s():
    async with FakeDiscord() as fake, listener_in(fake, "Voice A") as (vc, collector):
        alice = await fake.add_user("Alice")
        await alice.join("Voice A")
        sessions = vc.receiver.stats()["sessions"]
        figures = await speak_through(fake, vc, collector, alice, lambda: fake.close_voice(vc.user.id, 4006))
        assert_recovered(figures, vc, fake)
        assert vc.receiver.stats()["sessions"] == sessions + 1  # a new session, not a resume
        report("voice 4006", figures)


async def test_voice_server_change_during_speech_is_heard_again_within_3_s():
    async with FakeDiscord() as fake, listener_in(fake, "Voice A") as (vc, collector):
        alice = await fake.add_user("Alice")
        await alice.join("Voice A")
        endpoints = []

        async def change():
            endpoints.append(await fake.change_voice_server(vc.user.id))

        figures = await speak_through(fake, vc, collector, alice, change)
        assert_recovered(figures, vc, fake)
        assert fake.voice.session_of(vc.user.id).endpoint == 1 and endpoints == [fake.voice.endpoint_of(1)]
        report("voice server change", figures)


async def test_listener_moved_hears_the_new_channel_within_3_s():
    """Moved by a moderator from Voice A (Alice) to Voice B (Bob): discord.py follows the move; the
    receiver hears Bob. (The interpretation session then stops with "bot_moved" and says so.)"""
    async with FakeDiscord() as fake, listener_in(fake, "Voice A") as (vc, collector):
        alice, bob = await fake.add_user("Alice"), await fake.add_user("Bob")
        await alice.join("Voice A")
        await bob.join("Voice B")
        await wait_for(lambda: dave_ready(vc, 2), what="the listener's DAVE group in Voice A")
        loop = asyncio.get_running_loop()
        bob_speaking = asyncio.create_task(bob.speak(SPEECH[: 48000 * 4 * 6]))
        await asyncio.sleep(1.0)
        moved_at = loop.time()
        await fake.move_member(vc.user.id, "Voice B")
        await bob_speaking
        await asyncio.sleep(0.3)
        times = [t for t, _ in collector.heard_times(bob.id)]
        assert times, f"Bob was never heard after the move; {vc.receiver.stats()}"
        delay = times[0] - moved_at
        after = collector.heard_since(bob.id, times[0])
        corr = appears_in(SPEECH, after)
        assert vc.channel.id == fake.channel("Voice B").id and vc.is_connected()
        assert delay <= MAX_OUTAGE_S and corr >= 0.9, f"delay {delay:.2f} s, correlation {corr:.3f}"
        print(f"FAULT listener moved: new channel heard after {delay:.2f} s")
