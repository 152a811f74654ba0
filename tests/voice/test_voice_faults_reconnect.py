"""The voice rows of the fault table beyond the 4015 resume answers: 4015 under seeded realism, 4006, a
voice-server change and a move, each while a simulated user speaks without pause (helpers in
tests/fakes/discord/voice_faults.py)."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.discord.listening import appears_in, dave_ready, listener_in, wait_for
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.discord.voice_faults import MAX_OUTAGE_S, SPEECH, assert_recovered, report, speak_through

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


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
