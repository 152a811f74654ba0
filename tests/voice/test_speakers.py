"""Speaker bots against the fake Discord: started in the test's event loop, leased per guild +
language, playing a 24 kHz translation stream that a simulated listener hears (as a signal)."""

import asyncio

import numpy as np
import pytest

from bot.voice import adapter, playback
from bot.voice.playback import TranslationSource
from bot.voice.speakers import SpeakerError, SpeakerPool, start_speakers, stop_speakers
from tests.fakes import secrets
from tests.fakes.audio import SPEECH_B, decode, mono, xcorr
from tests.fakes.discord.server import FakeDiscord

pytestmark = pytest.mark.timeout(90)


async def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def rms(pcm: bytes) -> float:
    samples = mono(pcm, 2)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


def dave_members(vc):
    session, version = adapter.dave_state(vc)
    return len(session.get_user_ids()) if version and session is not None and session.ready else 0


async def started(fake):
    fake.point_discord_py()
    pool = SpeakerPool()
    tasks = await start_speakers(secrets.SPEAKER_TOKENS, pool, client_kwargs={"guild_ready_timeout": 0.1})
    assert await pool.wait_settled(10)
    return pool, tasks


async def test_leased_speaker_plays_a_24k_stream_that_a_listener_hears():
    async with FakeDiscord() as fake:
        pool, tasks = await started(fake)
        try:
            assert len(pool.speakers) == 2
            bob = await fake.add_user("Bob")
            await bob.join("Voice B")
            lease = await pool.lease(fake.guild.id, "es")
            assert lease is not None
            source = TranslationSource()
            vc = await lease.play(fake.channel("Voice B").id, source)
            await wait_for(lambda: dave_members(vc) == 2, what="the speaker's DAVE group")
            await bob.wait_dave_ready(members=2)

            translation = decode(SPEECH_B, rate=24000, channels=1)[: 24000 * 2 * 3]
            for start in range(0, len(translation), 9600):  # 200 ms chunks, as Palabra sends them
                source.feed(translation[start : start + 9600])
            source.end_utterance()
            await wait_for(lambda: source.queued_seconds == 0, timeout=10, what="playback")
            await asyncio.sleep(0.3)

            heard = mono(bob.heard(lease.speaker_id), 2)
            reference = mono(decode(SPEECH_B, rate=48000, channels=2)[: 48000 * 4 * 3], 2)
            corr = xcorr(reference, heard)
            assert corr.peak >= 0.9, f"correlation {corr.peak:.3f}"
            assert bob.stats.dave_failures == 0
            assert playback.is_playing(vc)  # the source never ends (though nothing is sent for silence)
        finally:
            await stop_speakers(pool, tasks)


async def test_leases_are_per_guild_and_language_and_come_back_on_release():
    async with FakeDiscord() as fake:
        pool, tasks = await started(fake)
        try:
            guild = fake.guild.id
            es, fr = await pool.lease(guild, "es"), await pool.lease(guild, "fr")
            assert es is not None and fr is not None and es.speaker is not fr.speaker
            assert await pool.lease(guild, "es") is es  # same language, same speaker
            assert await pool.lease(guild, "de") is None  # both busy in this guild

            other = await fake.add_guild("Second Guild")
            await wait_for(lambda: all(s.get_guild(other.id) for s in pool.speakers), what="GUILD_CREATE")
            assert await pool.lease(other.id, "es") is not None  # one account, one channel per guild
            assert await pool.lease(123456789, "es") is None  # a guild no speaker is in

            await es.play(fake.channel("Voice B").id, TranslationSource())
            assert es.speaker.user.id in fake.voice_members(fake.channel("Voice B").id)
            await es.release()
            await wait_for(
                lambda: es.speaker.user.id not in fake.voice_members(fake.channel("Voice B").id), what="leaving"
            )
            again = await pool.lease(guild, "de")
            assert again is not None and again.speaker is es.speaker
        finally:
            await stop_speakers(pool, tasks)


async def test_a_speaker_never_joins_a_channel_outside_its_leased_guild():
    async with FakeDiscord() as fake:
        pool, tasks = await started(fake)
        try:
            other = await fake.add_guild("Second Guild")
            await wait_for(lambda: all(s.get_guild(other.id) for s in pool.speakers), what="GUILD_CREATE")
            lease = await pool.lease(other.id, "es")
            with pytest.raises(SpeakerError, match="only joins voice channels of guilds it is a member of"):
                await lease.play(fake.channel("Voice B").id, TranslationSource())  # Voice B is in the first guild
            with pytest.raises(SpeakerError, match="cannot see channel"):
                await lease.play(42, TranslationSource())
            assert lease.speaker.user.id not in fake.voice_members(fake.channel("Voice B").id)
        finally:
            await stop_speakers(pool, tasks)


def test_empty_pool_has_nothing_to_lease():
    pool = SpeakerPool()
    assert asyncio.run(pool.lease(1, "es")) is None


async def test_speakers_start_together_and_the_pool_says_when_they_are_ready():
    async with FakeDiscord() as fake:
        fake.point_discord_py()
        pool = SpeakerPool()
        changes: list[int] = []
        pool.on_available(lambda: changes.append(len(pool.ready_speakers())))
        tasks = await start_speakers(secrets.SPEAKER_TOKENS, pool, client_kwargs={"guild_ready_timeout": 0.1})
        try:
            assert pool.connecting == 2 and len(pool.speakers) == 2  # known at once, none ready yet
            assert await pool.lease(fake.guild.id, "es") is None
            assert await pool.wait_settled(10)
            assert pool.connecting == 0 and sorted(changes) == [1, 2]
            lease = await pool.lease(fake.guild.id, "es")
            assert lease is not None
            await lease.release()
            assert changes[-1] == 2  # freed: subscribers hear it
        finally:
            await stop_speakers(pool, tasks)


async def test_a_speaker_that_cannot_log_in_is_left_out_and_does_not_hold_up_the_others():
    async with FakeDiscord() as fake:
        fake.point_discord_py()
        pool = SpeakerPool()
        tokens = [secrets.SPEAKER_TOKENS[0], "not-a-token.xyz"]
        tasks = await start_speakers(tokens, pool, client_kwargs={"guild_ready_timeout": 0.1})
        try:
            assert await pool.wait_settled(10)
            assert len(pool.speakers) == 1 and len(pool.failed_speakers) == 1
            assert await pool.lease(fake.guild.id, "es") is not None
        finally:
            await stop_speakers(pool, tasks)


@pytest.mark.parametrize("fault", ["kicked", "moved"])
async def test_a_kicked_or_moved_speaker_is_noticed_rejoins_and_is_heard_again(fault):
    async with FakeDiscord() as fake:
        pool, tasks = await started(fake)
        try:
            bob = await fake.add_user("Bob")
            await bob.join("Voice B")
            lease = await pool.lease(fake.guild.id, "es")
            source = TranslationSource()
            vc = await lease.play(fake.channel("Voice B").id, source)
            await wait_for(lambda: dave_members(vc) == 2, what="the speaker's DAVE group")
            assert lease.healthy
            await bob.wait_dave_ready(members=2)
            loop = asyncio.get_running_loop()
            faulted_at = loop.time()
            if fault == "kicked":
                await fake.disconnect_member(lease.speaker_id)  # 4014, no channel
            else:
                await fake.move_member(lease.speaker_id, "Voice C")
            await wait_for(lambda: not lease.healthy, what="the speaker's loss noticed")
            before = len(bob.heard(lease.speaker_id))
            source.feed(decode(SPEECH_B, rate=24000, channels=1)[: 24000 * 2 * 2])  # speech goes on meanwhile
            await lease.rejoin()
            assert lease.healthy and lease.speaker_id in fake.voice_members(fake.channel("Voice B").id)
            await wait_for(lambda: rms(bob.heard(lease.speaker_id)[before:]) > 0.02, what="speech heard again")
            heard_again = loop.time() - faulted_at
            print(f"speaker {fault}: rejoined, speech heard again {heard_again:.2f} s after the fault")
            assert heard_again < 3.0
            source.end_utterance()
            await wait_for(lambda: source.queued_seconds == 0, timeout=10, what="playback")
            await asyncio.sleep(0.3)
            heard = mono(bob.heard(lease.speaker_id)[before:], 2)
            reference = mono(decode(SPEECH_B, rate=48000, channels=2)[: 48000 * 4 * 2], 2)
            corr = xcorr(reference, heard)
            assert corr.peak >= 0.8, f"correlation {corr.peak:.3f}"
        finally:
            await stop_speakers(pool, tasks)


async def test_a_moved_speakers_own_reconnect_still_connecting_cannot_take_its_rejoin_out_again():
    """Moved, discord.py's poller reconnects to the new channel by itself. If the leave comes while that
    reconnect's websocket is still connecting, the reconnect overwrites the left state, fails on its stale
    token and then sends a leave (op 4, no channel) of its own, which took the rejoined speaker out again
    (seen in CI as the rejoin's 30 s connect timeout)."""
    async with FakeDiscord() as fake:
        pool, tasks = await started(fake)
        try:
            bob = await fake.add_user("Bob")
            await bob.join("Voice B")
            voice_b = fake.channel("Voice B").id
            lease = await pool.lease(fake.guild.id, "es")
            source = TranslationSource()
            vc = await lease.play(voice_b, source)
            await wait_for(lambda: dave_members(vc) == 2, what="the speaker's DAVE group")
            await bob.wait_dave_ready(members=2)
            fake.voice.hold_upgrades = held = asyncio.Event()
            await fake.move_member(lease.speaker_id, "Voice C")
            await wait_for(lambda: fake.voice.upgrades_waiting == 1, what="discord.py's own reconnect under way")
            assert not lease.healthy
            rejoining = asyncio.create_task(lease.rejoin())
            session = (fake.guild.id, lease.speaker_id)
            await wait_for(
                lambda: session in fake.voice.sessions and fake.voice.sessions[session].channel_id == voice_b,
                what="the rejoin's op 4",
            )
            fake.voice.hold_upgrades = None
            held.set()  # the stale reconnect and the rejoin both go on now
            await rejoining
            before = len(bob.heard(lease.speaker_id))
            source.feed(decode(SPEECH_B, rate=24000, channels=1)[: 24000 * 2])
            await asyncio.sleep(1.5)  # time for a stray leave of the stale reconnect to land
            assert lease.healthy and lease.speaker_id in fake.voice_members(voice_b)
            await wait_for(lambda: rms(bob.heard(lease.speaker_id)[before:]) > 0.02, what="speech after the rejoin")
        finally:
            await stop_speakers(pool, tasks)


async def test_releasing_a_speaker_whose_connection_was_dropped_is_prompt():
    """discord.py waits up to 30 s for Discord to confirm a leave that Discord never confirms (the
    connection was already dropped); the pool bounds it."""
    async with FakeDiscord() as fake:
        pool, tasks = await started(fake)
        try:
            lease = await pool.lease(fake.guild.id, "es")
            await lease.play(fake.channel("Voice B").id, TranslationSource())
            await fake.disconnect_member(lease.speaker_id)
            await wait_for(lambda: not lease.healthy, what="the kick noticed")
            loop = asyncio.get_running_loop()
            started_at = loop.time()
            await lease.release()
            took = loop.time() - started_at
            print(f"release after a kick took {took:.2f} s")
            assert took < 3.0
            assert pool.leases() == []
        finally:
            await stop_speakers(pool, tasks)


async def test_a_join_cut_short_leaves_the_channel_instead_of_sitting_in_it_silent():
    """The voice server never answers the speaker's join (no VOICE_SERVER_UPDATE), and the caller gives
    up: a rejoin's time limit, or a stop cancelling a move. The half-made connection is not the lease's
    yet, so it must be left here, or the bot stays in the channel, silent, until it is next used."""
    async with FakeDiscord() as fake:
        pool, tasks = await started(fake)
        try:
            lease = await pool.lease(fake.guild.id, "es")
            assert lease is not None and lease.speaker_id is not None
            speaker_id, real_session_of = lease.speaker_id, fake.gateway.session_of

            class NoServerUpdate:
                def __init__(self, session) -> None:
                    self._session = session

                def __getattr__(self, name):
                    return getattr(self._session, name)

                async def dispatch(self, event, data):
                    if event != "VOICE_SERVER_UPDATE":
                        await self._session.dispatch(event, data)

            def session_of(user_id, guild_id=None):
                session = real_session_of(user_id, guild_id)
                return NoServerUpdate(session) if user_id == speaker_id and session is not None else session

            fake.gateway.session_of = session_of
            voice_b = fake.channel("Voice B").id
            joining = asyncio.create_task(lease.play(voice_b, TranslationSource()))
            await wait_for(lambda: speaker_id in fake.voice_members(voice_b), what="the speaker in Voice B")
            joining.cancel()
            with pytest.raises(asyncio.CancelledError):
                await joining
            await wait_for(lambda: speaker_id not in fake.voice_members(voice_b), what="the speaker out of Voice B")
            assert lease.voice_client is None
            fake.gateway.session_of = real_session_of
            await lease.release()
        finally:
            await stop_speakers(pool, tasks)
