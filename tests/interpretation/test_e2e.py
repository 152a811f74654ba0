"""End to end over loopback: a fake user speaks (Opus, DAVE) in the source channel; the listener mixes
and streams to the Palabra emulator; speaker bots play the "translation" (the emulator returns the
utterance's own audio) to fake listeners in the es and fr channels; transcripts are posted under the
speaker's name; stopping deletes the Palabra session and releases the speakers."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from bot.db import leases as db_leases
from bot.db import privacy
from bot.db import sessions as db_sessions
from bot.db import transcripts as db_transcripts
from tests.fakes.audio import (
    SPEECH_A,
    SPEECH_B,
    decode,
    mono,
    openings_heard_in_order,
    pieces_heard,
    speech_regions,
    speech_seconds,
    utterance_correlations,
    xcorr,
)
from tests.interpretation.conftest import listener_dave_ready, wait_for, world_on

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

log = logging.getLogger(__name__)
RATE = 48000


def decode_pcm_16k(pcm48k_stereo: bytes) -> bytes:
    """The same signal at the emulator's 16 kHz mono, resampled independently of the product (PyAV)."""
    import av.audio.resampler

    frame = av.AudioFrame.from_ndarray(
        np.frombuffer(pcm48k_stereo, "<i2").reshape(1, -1), format="s16", layout="stereo"
    )
    frame.sample_rate = RATE
    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=16000)
    out = b"".join(bytes(f.planes[0])[: f.samples * 2] for f in resampler.resample(frame))
    return out + b"".join(bytes(f.planes[0])[: f.samples * 2] for f in resampler.resample(None))


def speech(path, seconds=5.0) -> bytes:
    return decode(path, rate=RATE, channels=2)[: int(seconds * RATE) * 4]


async def join_and_wait(world, users_by_channel, members_in_source):
    for user, channel in users_by_channel:
        await user.join(channel)
    await wait_for(lambda: listener_dave_ready(world.manager, members_in_source), what="the listener's DAVE group")


async def test_speech_is_translated_into_sibling_channels_with_transcripts_and_a_clean_stop(db):
    async with world_on(db) as world:
        fake, manager = world.fake, world.manager
        await world.configure(targets=("es", "fr"), siblings={"es": "Voice B", "fr": "Voice C"})
        sent = speech(SPEECH_A)
        alice = await fake.add_user("Alice")
        es_listener, fr_listener = await fake.add_user("Eva"), await fake.add_user("François")
        await alice.join("Voice A")
        await es_listener.join("Voice B")
        await fr_listener.join("Voice C")
        owner = world.guild.get_member(alice.id)

        report = await manager.start(guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=owner)
        assert report.targets == ["es", "fr"]
        assert {lang: p.kind for lang, p in report.placements.items()} == {"es": "sibling", "fr": "sibling"}
        assert report.placements["es"].channel_id == fake.channel("Voice B").id
        assert report.transcript_channel_id == fake.channel("Voice A").id
        consent = [m for m in fake.messages("Voice A") if "Live interpretation is on" in m.content]
        assert len(consent) == 1 and "/privacy optout" in consent[0].content

        await wait_for(lambda: listener_dave_ready(manager, 2), what="the listener's DAVE group")
        await alice.wait_dave_ready(members=2)
        speakers = {lang: lease.speaker_id for lease in world.pool.leases() for lang in [lease.language]}
        assert set(speakers) == {"es", "fr"}

        # Discord answers some transcript posts and edits with 429: nothing final may be lost.
        fake.rate_limits.inject("POST", r"^/webhooks/", count=2, retry_after=0.3)
        fake.rate_limits.inject("PATCH", r"^/webhooks/", count=2, retry_after=0.3)
        spoken = await alice.speak(sent + bytes(int(1.5 * RATE) * 4))
        assert spoken.dave_encrypted > 0
        # The emulator confirms each utterance after its trailing silence; wait for both to be played out.
        await wait_for(
            lambda: (
                len(es_listener.heard(speakers["es"])) >= len(sent) * 0.8
                and len(fr_listener.heard(speakers["fr"])) >= len(sent) * 0.8
            ),
            timeout=20,
            what="translated speech in both sibling channels",
        )
        await asyncio.sleep(1.5)

        live = next(iter(manager.sessions.values())).live
        print(
            f"mixer underruns {live.mixer.underruns}, overflow {live.mixer.stats.dropped_overflow}, "
            f"stream silence chunks {live.parts.streaming.stats.silence_chunks}"
        )
        for language, listener in (("es", es_listener), ("fr", fr_listener)):
            heard = listener.heard(speakers[language])
            found = utterance_correlations(sent, heard, spoken.started_at, listener.joined_at)
            assert len(found) == 2
            for peak, lag in found:
                log.info("%s: correlation %.3f, lag %.2f s from speaking to hearing", language, peak, lag)
                print(f"{language}: correlation {peak:.3f}, lag {lag:.2f} s")
                assert peak >= 0.9, f"{language}: correlation {peak:.3f}"
                assert 0.3 < lag < 10
        statuses = manager.status(fake.guild.id)
        assert len(statuses) == 1 and statuses[0].speakers_heard == [alice.id]
        assert statuses[0].packets > 0 and statuses[0].decrypt_failures == 0
        assert statuses[0].latency_p50_s is not None and 0 < statuses[0].latency_p50_s < 5
        print(
            f"Palabra latency (utterance end to first translated audio): p50 {statuses[0].latency_p50_s:.2f} s, "
            f"p90 {statuses[0].latency_p90_s:.2f} s"
        )

        # Transcripts: one webhook message per utterance, under Alice's name, with both translations.
        await wait_for(
            lambda: sum("> **fr**" in m.content for m in fake.messages("Voice A")) >= 2,
            what="final transcripts with translations",
        )
        lines = [m for m in fake.messages("Voice A") if m.data.get("webhook_id")]
        assert len(lines) == 2
        for message in lines:
            assert message.data["author"]["username"] == "Alice"
            assert "> **es**: [es]" in message.content and "> **fr**: [fr]" in message.content
        assert any(m.edits for m in lines)  # partials were edited in place before the final
        assert len(fake.rate_limits.hits) == 4  # the 429s happened, and were waited out

        palabra_ids = list(world.emulator.state.sessions)
        assert len(palabra_ids) == 1
        stop = await manager.stop(guild_id=fake.guild.id, channel_id=fake.channel("Voice A").id)
        assert stop.transcript_lines == 2 and stop.summary_message_id is not None
        assert world.emulator.state.sessions == {}  # the Palabra session is deleted
        assert world.pool.leases() == [] and manager.sessions == {}
        assert fake.voice_members(fake.channel("Voice B").id) == {es_listener.id}  # the speakers left
        assert fake.voice_members(fake.channel("Voice C").id) == {fr_listener.id}
        summary = next(m for m in fake.messages("Voice A") if m.id == stop.summary_message_id)
        names = sorted(f.filename for f in summary.files)
        assert names == [f"transcript-{stop.session_id}.srt", f"transcript-{stop.session_id}.txt"]
        srt = next(f.data.decode() for f in summary.files if f.filename.endswith(".srt"))
        assert srt.startswith("1\n00:00:0") and "Alice:" in srt and "es: [es]" in srt
        async with db.session() as s:
            row = await db_sessions.get_session(s, stop.session_id)
            assert row.status == "ended" and row.end_reason == "stopped"
            assert row.palabra_session_ids == palabra_ids
            assert await db_leases.leases_of_session(s, stop.session_id) == []
            stored = await db_transcripts.session_transcript(s, stop.session_id)
            assert [line.speaker_user_id for line in stored] == [alice.id, alice.id]
            assert all(set(line.translations) == {"es", "fr"} for line in stored)
        metrics = world.metrics.render().decode()
        assert "interpreter_palabra_latency_seconds_count 2.0" in metrics
        assert "interpreter_transcript_messages_total 2.0" in metrics  # one message per utterance
        assert "interpreter_sessions_active 0.0" in metrics


async def test_opted_out_and_bot_audio_never_reaches_palabra_and_no_speaker_means_same_channel(db):
    async with world_on(db, speaker_count=0) as world:
        fake, manager = world.fake, world.manager
        await world.configure(targets=("es", "fr"), siblings={"es": "Voice B"})
        bob_speech, alice_speech = speech(SPEECH_B, 4.5), speech(SPEECH_A, 3.0)
        alice, bob = await fake.add_user("Alice"), await fake.add_user("Bob")
        jukebox = await fake.add_user("Jukebox", bot=True)  # another application's bot playing music
        music = np.random.default_rng(5).normal(0, 0.1, int(3.0 * RATE))
        music_pcm = np.repeat((music * 32767).astype("<i2"), 2).tobytes()

        async with db.session() as s:
            await privacy.opt_out(s, bob.id, fake.guild.id)
        for user in (alice, bob, jukebox):
            await user.join("Voice A")
        report = await manager.start(
            guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=world.guild.get_member(alice.id)
        )
        assert report.placements["es"].kind == "same_channel"
        assert report.placements["es"].channel_id == fake.channel("Voice A").id
        assert "speaker bot" in report.placements["es"].reason
        assert report.placements["fr"].kind == "text_only" and report.placements["fr"].channel_id is None
        await wait_for(lambda: listener_dave_ready(manager, 4), what="the listener's DAVE group")
        for user in (alice, bob, jukebox):
            await user.wait_dave_ready(members=4)

        # Opted out, and a bot: neither may reach the emulator.
        await asyncio.gather(bob.speak(bob_speech + bytes(RATE * 4)), jukebox.speak(music_pcm))
        await manager.set_user_opted_out(fake.guild.id, alice.id, False)  # opting in someone else changes nothing
        await alice.speak(alice_speech + bytes(int(1.5 * RATE) * 4))
        listener_id = world.listener.user.id
        await wait_for(lambda: len(bob.heard(listener_id)) > RATE * 4 * 1.5, timeout=20, what="same-channel playback")
        await manager.stop(guild_id=fake.guild.id)

        [stream] = world.emulator.state.streams
        received = np.frombuffer(bytes(stream.input_pcm), dtype="<i2").astype(np.float64) / 32768
        bob_16k = mono(decode(SPEECH_B, rate=16000, channels=1), 1)[: int(4.5 * 16000)]
        alice_16k = mono(decode(SPEECH_A, rate=16000, channels=1), 1)[: 3 * 16000]
        assert pieces_heard(alice_16k, received, 16000) >= 0.8  # Alice's speech went through ...
        assert abs(xcorr(bob_16k, received).peak) < 0.2  # ... Bob's never did
        music_16k = mono(decode_pcm_16k(music_pcm), 1)
        assert abs(xcorr(music_16k, received).peak) < 0.2  # ... nor the other bot's
        heard = bob.heard(listener_id)  # the translation of Alice, played by the listener in Voice A
        assert pieces_heard(mono(alice_speech, 2), mono(heard, 2), RATE) >= 0.8


def authors(fake) -> list[str]:
    return [m.data["author"]["username"] for m in fake.messages("Voice A") if m.data.get("webhook_id")]


async def test_a_long_silence_pauses_palabra_and_the_next_speaker_is_heard_and_named(sqlite_db, realism_seed):
    """PALABRA_IDLE_PAUSE_S (2 s here): after Alice nobody speaks, so the session pauses its Palabra task
    (not billed) and sends it nothing. Bob then speaks: his first words reach Palabra, his line is posted
    under his name (segment times after the pause still match the mixer's clock) and Spanish hears him.
    Under the peers' realism seeds (no database logic here: SQLite is enough)."""
    async with world_on(sqlite_db, speaker_count=1, idle_pause_s=2.0, realism=realism_seed) as world:
        fake, manager = world.fake, world.manager
        await world.configure(targets=("es",), siblings={"es": "Voice B"})
        alice, bob, eva = await fake.add_user("Alice"), await fake.add_user("Bob"), await fake.add_user("Eva")
        for user, channel in ((alice, "Voice A"), (bob, "Voice A"), (eva, "Voice B")):
            await user.join(channel)
        await manager.start(
            guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=world.guild.get_member(alice.id)
        )
        await wait_for(lambda: listener_dave_ready(manager, 3), what="the listener's DAVE group")
        await bob.wait_dave_ready(members=3)
        [lease] = world.pool.leases()
        alice_speech, bob_speech = speech(SPEECH_A, 2.5), speech(SPEECH_B, 3.0)
        await alice.speak(alice_speech + bytes(int(1.0 * RATE) * 4))

        def status():
            return manager.status(fake.guild.id)[0]

        await wait_for(lambda: status().palabra_paused, timeout=20, what="Palabra paused after the silence")
        [stream] = world.emulator.state.streams
        at_pause = len(stream.input_pcm)
        await asyncio.sleep(1.5)
        assert len(stream.input_pcm) == at_pause  # nothing sent while paused
        assert stream.messages_in.get("pause_task") == 1
        assert "interpreter_sessions_palabra_paused 1.0" in world.metrics.render().decode()

        await bob.speak(bob_speech + bytes(int(1.5 * RATE) * 4))
        await wait_for(lambda: "Bob" in authors(fake), timeout=20, what="Bob's line")
        sent = mono(alice_speech + bob_speech, 2)
        await wait_for(
            lambda: speech_seconds(mono(eva.heard(lease.speaker_id), 2), RATE) >= 0.9 * speech_seconds(sent, RATE),
            timeout=30,
            what="both translated in Voice B",
        )
        await asyncio.sleep(1.0)  # the last frames of the playout
        assert not status().palabra_paused or status().palabra_paused_s > 0
        names = authors(fake)
        assert names[0] == "Alice" and names[-1] == "Bob" and set(names) == {"Alice", "Bob"}, names
        assert names == sorted(names)  # every Alice line before every Bob line
        assert stream.messages_in["set_task"] == 2  # the start, and the resume

        received = mono(bytes(stream.input_pcm), 1)
        bob_16k = mono(decode(SPEECH_B, rate=16000, channels=1), 1)[: 3 * 16000]
        onset = int(speech_regions(bob_16k, 16000)[0][0] * 16000)
        opening = pieces_heard(bob_16k[onset : onset + int(0.6 * 16000)], received, 16000)
        print(f"Bob's first 0.6 s in Palabra's input: {opening:.0%} of its 0.2 s pieces found")
        assert opening == 1.0  # every piece of his opening reached Palabra
        # Spanish heard every utterance, Alice's and then Bob's, each from its opening, and all of it
        # (the peers' realism plays a translation in parts with pauses between them: compared by
        # openings and amount, as in tests/test_e2e.py)
        heard = mono(eva.heard(lease.speaker_id), 2)
        openings = openings_heard_in_order(sent, heard, RATE)
        share = speech_seconds(heard, RATE) / speech_seconds(sent, RATE)
        print(f"seed {realism_seed}: Spanish openings " + ", ".join(f"{o:.2f}" for o in openings) + f"; {share:.0%}")
        assert len(openings) == len(speech_regions(sent, RATE)) and min(openings) >= 0.9, openings
        assert 0.9 <= share <= 1.2, share

        stop = await manager.stop(guild_id=fake.guild.id)
        summary = next(m for m in fake.messages("Voice A") if m.id == stop.summary_message_id)
        assert "Palabra paused for" in summary.content and "not billed" in summary.content
        assert "interpreter_sessions_palabra_paused 0.0" in world.metrics.render().decode()
