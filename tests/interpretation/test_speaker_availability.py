"""Sessions follow speaker-bot availability, against the fake Discord, the emulator and a real database:
a start while the speaker bots log in waits for them; languages move to their channels when speaker bots
become ready; a speaker bot kicked or moved mid-session rejoins (or its language falls back), told in one
line; `/interpret stop` answers within 3 s even with a dead voice connection, and a start during a
shutdown waits for it instead of answering "already running"."""

from __future__ import annotations

import asyncio

import pytest

from tests.interpretation.conftest import (
    RATE,
    SIBLINGS,
    rms,
    spanish_session,
    speech,
    start_session,
    until_heard,
    wait_for,
    world_on,
)

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def kinds(world) -> dict[str, str]:
    [status] = world.manager.status(world.fake.guild.id)
    return {language: placement.kind for language, placement in status.placements.items()}


def notices(world) -> list[str]:
    """The one-line placement notices in the transcript channel (the source voice channel's chat)."""
    return [m.content for m in world.fake.messages("Voice A") if m.content[:1] in ("🔁", "⚠", "🔊")]


async def test_a_start_while_the_speaker_bots_log_in_waits_for_them(sqlite_db):
    async with world_on(sqlite_db, speakers="later") as world:
        await world.configure(targets=("es", "fr"), siblings=SIBLINGS)
        alice = await world.fake.add_user("Alice")
        await alice.join("Voice A")
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        await world.start_speakers()
        assert world.pool.connecting == 2  # the start comes before any speaker bot is ready
        report = await world.manager.start(
            guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=world.guild.get_member(alice.id)
        )
        took = loop.time() - started_at
        print(f"start while the speaker bots log in: {took:.2f} s, placements {kinds(world)}")
        assert {lang: p.kind for lang, p in report.placements.items()} == {"es": "sibling", "fr": "sibling"}
        await world.manager.stop(guild_id=world.fake.guild.id)


async def test_languages_move_to_their_channels_when_speaker_bots_become_ready(sqlite_db):
    async with world_on(sqlite_db, speakers="later") as world:
        eva = await world.fake.add_user("Eva")
        await eva.join("Voice B")
        alice, report = await start_session(world)
        assert [report.placements[t].kind for t in ("es", "fr")] == ["same_channel", "text_only"]
        loop = asyncio.get_running_loop()
        ready_at = loop.time()
        await world.start_speakers()
        await wait_for(lambda: kinds(world) == {"es": "sibling", "fr": "sibling"}, timeout=20, what="both moved")
        print(f"languages moved {loop.time() - ready_at:.2f} s after the speaker bots were started")
        await wait_for(lambda: len(notices(world)) >= 2, what="the notices")
        es, fr = world.fake.channel("Voice B").id, world.fake.channel("Voice C").id
        assert sorted(notices(world)) == sorted(
            [
                f"🔊 A speaker bot is free: **es** now plays in <#{es}>.",
                f"🔊 A speaker bot is free: **fr** now plays in <#{fr}>.",
            ]
        )
        # The Spanish listener hears the translation through the speaker bot now.
        await alice.wait_dave_ready(members=2, timeout=20)
        await alice.speak(speech(3.0) + bytes(int(1.5 * RATE) * 4))
        [es_speaker] = [lease.speaker_id for lease in world.pool.leases() if lease.language == "es"]
        await wait_for(lambda: rms(eva.heard(es_speaker)) > 0.01, timeout=20, what="Spanish in Voice B")
        await world.manager.stop(guild_id=world.fake.guild.id)
        assert world.pool.leases() == []


@pytest.mark.parametrize("fault", ["kicked", "moved"])
async def test_a_speaker_bot_kicked_or_moved_mid_session_rejoins_and_is_heard_again(sqlite_db, fault):
    async with world_on(sqlite_db) as world:
        alice, eva, lease = await spanish_session(world)
        speaking = asyncio.create_task(alice.speak(speech(6.0) + bytes(int(1.5 * RATE) * 4)))
        await until_heard(eva, lease.speaker_id)
        loop = asyncio.get_running_loop()
        faulted_at = loop.time()
        if fault == "kicked":
            await world.fake.disconnect_member(lease.speaker_id)  # 4014 + no channel, as a moderator's kick
        else:
            await world.fake.move_member(lease.speaker_id, "Voice C")
        before = len(eva.heard(lease.speaker_id))
        await wait_for(lambda: rms(eva.heard(lease.speaker_id)[before:]) > 0.01, timeout=10, what="Spanish heard again")
        heard_again = loop.time() - faulted_at
        print(f"speaker bot {fault}: speech heard again {heard_again:.2f} s after the fault")
        assert heard_again < 3.0
        assert kinds(world) == {"es": "sibling"}
        voice_b, voice_c = world.fake.channel("Voice B").id, world.fake.channel("Voice C").id
        why = "was disconnected" if fault == "kicked" else f"was moved to <#{voice_c}>"
        expected = [f"🔁 The **es** speaker bot {why}; it is back in <#{voice_b}>."]
        # The line is posted once the rejoin is done, which a loaded machine may report after the speech.
        await wait_for(lambda: notices(world) == expected, timeout=10, what="the rejoin notice")
        assert notices(world) == expected
        await speaking
        await world.manager.stop(guild_id=world.fake.guild.id)


@pytest.mark.parametrize("resume", ["full", "silent", "late"])
async def test_a_speaker_bot_whose_voice_resume_stalls_is_heard_again_within_3_s(sqlite_db, resume):
    """Voice close 4015: discord.py resumes; when the server never completes the resume (or late), the
    speaker rejoins afresh instead of staying silent for discord.py's 30 s connect timeout."""
    async with world_on(sqlite_db) as world:
        alice, eva, lease = await spanish_session(world)
        speaking = asyncio.create_task(alice.speak(speech(6.0) + bytes(int(1.5 * RATE) * 4)))
        await until_heard(eva, lease.speaker_id)
        loop = asyncio.get_running_loop()
        faulted_at = loop.time()
        await world.fake.close_voice(lease.speaker_id, 4015, resume=resume)
        before = len(eva.heard(lease.speaker_id))
        await wait_for(lambda: rms(eva.heard(lease.speaker_id)[before:]) > 0.01, timeout=10, what="Spanish heard again")
        heard_again = loop.time() - faulted_at
        print(f"speaker bot voice 4015 (resume {resume}): speech heard again {heard_again:.2f} s after the close")
        assert heard_again < 3.0
        assert kinds(world) == {"es": "sibling"}
        await speaking
        await world.manager.stop(guild_id=world.fake.guild.id)


async def test_a_speaker_bot_that_keeps_being_kicked_falls_back_with_a_message(sqlite_db):
    async with world_on(sqlite_db) as world:
        _alice, _report = await start_session(world, targets=("es",))
        [lease] = world.pool.leases()
        voice_b = world.fake.channel("Voice B").id
        for kick in range(4):
            # Back and settled (its rejoin told): a kick in the middle of a rejoin is a failed rejoin.
            await wait_for(
                lambda k=kick: lease.healthy and sum(line.startswith("🔁") for line in notices(world)) == k,
                what="the speaker back in Voice B",
            )
            await world.fake.disconnect_member(lease.speaker_id)
            await wait_for(lambda: not lease.healthy, what="the kick noticed")
        await wait_for(lambda: kinds(world) == {"es": "same_channel"}, timeout=15, what="the fallback")
        expected = (
            f"⚠️ The **es** speaker bot was disconnected and could not stay in <#{voice_b}>; "
            "es now plays in this voice channel."
        )
        # The line is posted after the placement changed: a loaded machine shows the change first.
        await wait_for(lambda: notices(world)[-1:] == [expected], timeout=10, what="the fallback notice")
        lines = notices(world)
        assert sum(line.startswith("🔁") for line in lines) == 3
        assert world.pool.leases() == []  # the speaker is free again (and not taken back at once)
        await world.manager.stop(guild_id=world.fake.guild.id)


async def test_stop_answers_within_3_s_even_with_a_dead_voice_connection(sqlite_db):
    async with world_on(sqlite_db) as world:
        eva = await world.fake.add_user("Eva")
        await eva.join("Voice B")
        alice, _report = await start_session(world, targets=("es",))
        [lease] = world.pool.leases()
        await alice.wait_dave_ready(members=2, timeout=20)
        await alice.speak(speech(6.0) + bytes(int(1.5 * RATE) * 4))
        await until_heard(eva, lease.speaker_id)
        await world.fake.disconnect_member(lease.speaker_id)  # its queue of translation will not drain now
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        report = await world.manager.stop(guild_id=world.fake.guild.id)
        took = loop.time() - started_at
        print(f"/interpret stop with a dead speaker connection: {took:.2f} s")
        assert took < 3.0
        assert report.transcript_lines >= 1 and world.emulator.state.sessions == {}
        assert world.pool.leases() == []


async def test_a_start_during_a_shutdown_waits_for_it_instead_of_refusing(sqlite_db):
    async with world_on(sqlite_db) as world:
        alice, first = await start_session(world, targets=("es",))
        stopping = asyncio.create_task(world.manager.stop(guild_id=world.fake.guild.id))
        await asyncio.sleep(0.1)  # the shutdown is under way (it sends the tail, ends the stream, ...)
        second = await world.manager.start(
            guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=world.guild.get_member(alice.id)
        )
        assert (await stopping).session_id == first.session_id
        assert second.session_id != first.session_id and kinds(world) == {"es": "sibling"}
        await world.manager.stop(guild_id=world.fake.guild.id)
