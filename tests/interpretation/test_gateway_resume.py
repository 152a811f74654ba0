"""Main-gateway RESUME during speech (fault table): the fake Discord drops the listener's (or a speaker
bot's) main gateway WebSocket while people speak; discord.py resumes with op 6; the translation is heard
again within 3 s (signal comparison) and every utterance's transcript, translations included, is posted."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.fakes.audio import utterance_correlations
from tests.interpretation.conftest import RATE, rms, spanish_session, speech, until_heard, wait_for, world_on

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def finals(world) -> int:
    """Transcript messages carrying their Spanish translation (one per finished utterance)."""
    return sum(bool(m.data.get("webhook_id")) and "> **es**" in m.content for m in world.fake.messages("Voice A"))


def backwards(pcm: bytes) -> bytes:
    """The same speech played backwards: as loud and as long, but uncorrelated with the original."""
    return np.frombuffer(pcm, "<i2").reshape(-1, 2)[::-1].tobytes()


async def heard_until(user, sender_id: int, until: float) -> bytes:
    """What `user` heard from `sender_id` once their timeline reaches loop time `until`, or once it has
    stopped growing (the speaker bot sends nothing between utterances)."""
    heard = b""
    for _ in range(15):
        if len(user.heard(sender_id)) == len(heard) or user.joined_at + len(heard) / (RATE * 4) >= until:
            return heard
        heard = user.heard(sender_id)
        await asyncio.sleep(1.5)  # longer than the gaps between utterances
    raise TimeoutError("the translation did not play out")


@pytest.mark.parametrize("whose", ["listener", "speaker"])
async def test_a_dropped_main_gateway_resumes_and_speech_is_heard_again_within_3_s(sqlite_db, whose):
    async with world_on(sqlite_db) as world:
        alice, eva, lease = await spanish_session(world)
        pause = bytes(int(1.5 * RATE) * 4)
        sent = speech(5.5) + pause + backwards(speech(5.5)) + pause  # four distinct utterances
        started = asyncio.create_task(alice.speak(sent))
        await until_heard(eva, lease.speaker_id)
        bot_id = world.listener.user.id if whose == "listener" else lease.speaker_id
        [account] = [bot for bot in world.fake.bots if bot.id == bot_id]
        loop = asyncio.get_running_loop()
        dropped_at, finals_before = loop.time(), finals(world)
        await world.fake.drop_gateway(account, code=4000)
        before = len(eva.heard(lease.speaker_id))
        await wait_for(lambda: world.fake.gateway.resumes == 1, timeout=10, what="the op 6 resume")
        await wait_for(lambda: rms(eva.heard(lease.speaker_id)[before:]) > 0.01, timeout=10, what="Spanish again")
        heard_again = loop.time() - dropped_at
        print(f"main gateway of the {whose} dropped: resumed, translation heard again {heard_again:.2f} s after")
        assert heard_again < 3.0
        spoken = await started
        assert spoken.started_at + 7.0 > dropped_at  # the second clip was spoken after the drop
        await wait_for(lambda: finals(world) == 4, timeout=20, what="every utterance's transcript")
        assert finals_before < 4  # some transcripts came after the resume
        heard = await heard_until(eva, lease.speaker_id, spoken.started_at + len(sent) / (RATE * 4) + 4.0)
        found = utterance_correlations(sent, heard, spoken.started_at, eva.joined_at)
        print(f"utterances heard (correlation, lag): {[(round(p, 3), round(lag, 2)) for p, lag in found]}")
        assert len(found) == 4 and all(peak >= 0.9 and 0.3 < lag < 10 for peak, lag in found)
        await world.manager.stop(guild_id=world.fake.guild.id)
