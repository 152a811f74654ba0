"""The voice rows of the fault table, 4015: unmodified discord.py 2.7.1 with our ListeningVoiceClient
against the fake Discord, a simulated user speaking without pause while the fault hits (helpers in
tests/fakes/discord/voice_faults.py; the other voice faults are in test_voice_faults_reconnect.py)."""

from __future__ import annotations

import pytest

from bot.voice import adapter
from tests.fakes.discord import realism
from tests.fakes.discord.listening import listener_in
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.discord.voice_faults import assert_recovered, report, speak_through

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


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


@pytest.mark.parametrize("shift", [-300, -3, 200])
async def test_a_new_voice_session_that_renumbers_a_speaker_hears_her_at_once(shift):
    """After a fresh connection (here: the resume refused, so discord.py leaves and rejoins) the SFU
    numbers each sender's packets afresh for the new session, by any offset. A jump backwards by less
    than the jitter buffer's resync distance made every packet of hers look late: 10 s of her speech
    lost (seen in CI once, 361 packets late)."""
    async with FakeDiscord() as fake, listener_in(fake, "Voice A") as (vc, collector):
        alice = await fake.add_user("Alice")
        await alice.join("Voice A")

        async def fault() -> None:
            listener = fake.voice.session_of(vc.user.id)
            assert listener is not None
            fake.voice.next_sequence_offsets = [listener.sequence_offsets[alice.ssrc] + shift]
            await fake.close_voice(vc.user.id, 4015, resume=realism.RESUME_INVALID)

        figures = await speak_through(fake, vc, collector, alice, fault)
        assert_recovered(figures, vc, fake)
        report(f"new voice session renumbering her packets by {shift:+d}", figures)
        assert not fake.voice.next_sequence_offsets, "the new session's offset was not used"
        assert vc.receiver.stats()["jitter_late"] <= 5, vc.receiver.stats()
