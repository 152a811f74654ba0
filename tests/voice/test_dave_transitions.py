"""DAVE epoch changes while someone speaks: people join and leave (each a commit, a new epoch and new
sender keys), then a re-key (op 24: every member re-initialises and a new group forms). The listener
(unmodified discord.py 2.7.1 + our receiver, which reads discord.py's DAVE session fresh per packet)
must have 0 decrypt failures once each transition has settled, and hear the whole utterance."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pytest

from bot.voice import adapter
from tests.fakes.audio import SAMPLE_EN, decode, mono, xcorr
from tests.fakes.discord.listening import dave_ready, listener_in, wait_for
from tests.fakes.discord.server import FakeDiscord

pytestmark = [pytest.mark.timeout(120)]
log = logging.getLogger(__name__)

SPEECH = decode(SAMPLE_EN, rate=48000, channels=2)[: 48000 * 4 * 9]
SETTLED_FOR_S = 0.2  # a transition counts as settled once the group has been stable this long


@dataclass
class FailureWatch:
    """Samples the receiver's DAVE failure count and whether the group is settled (the server has no
    transition outstanding and the listener and the speaker are in the same ready epoch)."""

    failures_while_settled: int = 0
    failures_in_transitions: int = 0
    transitions: int = 0
    samples: list[tuple[float, int, bool]] = field(default_factory=list)

    def settled(self, fake, vc, speaker) -> bool:
        session, _ = adapter.dave_state(vc)
        coordinator = fake.voice.room(vc.channel.id).coordinator
        return (
            coordinator.settled
            and session is not None
            and session.ready
            and speaker.dave is not None
            and speaker.dave.ready
            and session.epoch == speaker.dave.epoch
        )

    async def run(self, fake, vc, speaker) -> None:
        loop = asyncio.get_running_loop()
        stable_since: float | None = None
        was_settled = True
        previous = vc.receiver.pipeline.stats.dave_failures
        while True:
            now, failures = loop.time(), vc.receiver.pipeline.stats.dave_failures
            settled = self.settled(fake, vc, speaker)
            if settled and stable_since is None:
                stable_since = now
            elif not settled:
                stable_since = None
                self.transitions += was_settled
            was_settled = settled
            new = failures - previous
            if stable_since is not None and now - stable_since >= SETTLED_FOR_S:
                self.failures_while_settled += new
            else:
                self.failures_in_transitions += new
            previous = failures
            self.samples.append((now, failures, settled))
            await asyncio.sleep(0.01)


async def test_joins_leaves_and_a_rekey_mid_speech_lose_nothing_once_settled(realism_seed):
    async with FakeDiscord(realism=realism_seed) as fake, listener_in(fake, "Voice A") as (vc, collector):
        alice, bob, carol = [await fake.add_user(name) for name in ("Alice", "Bob", "Carol")]
        await alice.join("Voice A")
        await wait_for(lambda: dave_ready(vc, 2), what="the listener's DAVE group")
        await alice.wait_dave_ready(members=2)
        watch = FailureWatch()
        watching = asyncio.create_task(watch.run(fake, vc, alice))
        speaking = asyncio.create_task(alice.speak(SPEECH))
        channel = fake.channel("Voice A").id
        rng = fake.realism

        async def at(seconds: float, action) -> None:
            await asyncio.sleep(seconds + rng.uniform(-0.3, 0.3))
            await action()

        # Each step waits its turn: join, join, leave, re-key, leave, every ~1.4 s (seed-jittered).
        for step in (
            lambda: bob.join("Voice A"),
            lambda: carol.join("Voice A"),
            bob.leave,
            lambda: fake.voice.upgrade(channel),
            carol.leave,
        ):
            await at(1.4, step)
        await speaking
        await asyncio.sleep(0.5)
        watching.cancel()

        # Every received frame where she said it: a lost one leaves its 20 ms of zeros, so the score
        # counts what was lost, and a delay in delivery under load does not misalign what follows.
        timeline = collector.by_sequence(alice.id)
        corr = xcorr(mono(SPEECH, 2), mono(timeline, 2)).peak
        stats = vc.receiver.stats()
        # packets that never became audio
        lost = stats["jitter_lost"] + stats["jitter_late"] + stats["dave_failures"] - stats["dave_recovered"]
        print(
            f"FAULT DAVE epochs mid-speech (realism {realism_seed}): {watch.transitions} transitions, "
            f"{watch.failures_while_settled} decrypt failures once settled, {watch.failures_in_transitions} "
            f"during transitions ({stats['dave_failures_by_reason']}, "
            f"{stats['dave_recovered']} opened after our commit), {lost} of {len(SPEECH) // 3840} "
            f"frames lost, correlation {corr:.3f}"
        )
        assert watch.transitions >= 4, f"the transitions did not happen: {watch.samples[-5:]}"
        assert watch.failures_while_settled == 0, f"{stats}"
        assert corr >= 0.95, f"{stats}"
        assert lost <= 25, f"{stats}"  # at most half a second of the utterance, all during transitions
        assert stats["worker_alive"] and stats["internal_errors"] == 0
