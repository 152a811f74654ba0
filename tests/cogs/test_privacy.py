"""/privacy on both databases: choices stored, running sessions told, transcripts deleted."""

from __future__ import annotations

from bot.db import privacy, sessions, transcripts
from tests.cogs.conftest import ephemeral, shown


async def _scopes(h, user) -> list[int | None]:
    async with h.services.database.session() as s:
        return await privacy.opt_out_scopes(s, user.id)


def _told(h) -> list[tuple]:
    return [
        (c["guild_id"], c["user_id"], c["opted_out"]) for name, c in h.manager.calls if name == "set_user_opted_out"
    ]


async def test_optout_here_then_optin(harness):
    h = harness
    user = await h.fake.add_user("Quiet")
    guild = h.fake.guild.id
    record = await h.command(user, "privacy", "optout")
    assert ephemeral(record)
    assert shown(record).startswith("Your voice is now left out of interpretation in this server")
    assert await _scopes(h, user) == [guild]
    assert _told(h) == [(guild, user.id, True)]

    record = await h.command(user, "privacy", "optout")
    assert shown(record).startswith("Your voice was already left out")
    assert await _scopes(h, user) == [guild]

    record = await h.command(user, "privacy", "optin")
    assert ephemeral(record) and shown(record) == "Your opt-out in this server is removed."
    assert await _scopes(h, user) == []
    assert _told(h)[-1] == (guild, user.id, False)
    record = await h.command(user, "privacy", "optin")
    assert shown(record) == "You had not opted out in this server."


async def test_optout_everywhere_outlives_a_per_server_optin(harness):
    h = harness
    user = await h.fake.add_user("Quieter")
    guild = h.fake.guild.id
    record = await h.command(user, "privacy", "optout", everywhere=True)
    assert "in every server" in shown(record)
    assert await _scopes(h, user) == [None]
    assert _told(h) == [(None, user.id, True)]

    record = await h.command(user, "privacy", "optin")
    text = shown(record)
    assert "You had not opted out in this server." in text
    assert "You still have an opt-out for every server; run `/privacy optin` with `everywhere: True`" in text
    assert len(_told(h)) == 1, "sessions must keep the voice out while the global choice stands"

    await h.command(user, "privacy", "optout")
    record = await h.command(user, "privacy", "optin", everywhere=True)
    assert "Your opt-out in every server is removed." in shown(record)
    assert "You still have an opt-out for some servers" in shown(record)
    assert await _scopes(h, user) == [guild]
    # Globally back in, but this server's own choice is re-applied.
    assert _told(h)[-2:] == [(None, user.id, False), (guild, user.id, True)]


async def test_delete_removes_transcripts_and_keeps_the_optout(harness):
    h = harness
    user = await h.fake.add_user("Forgetful")
    other = await h.fake.add_user("Other")
    guild = h.fake.guild.id
    async with h.services.database.session() as s:
        here = await sessions.start_session(
            s,
            guild_id=guild,
            source_channel_id=h.fake.channel("Voice A").id,
            source_language="en",
            target_languages=["es"],
            instance_id="test:1",
        )
        elsewhere = await sessions.start_session(
            s,
            guild_id=guild + 1,
            source_channel_id=h.fake.channel("Voice B").id,
            source_language="en",
            target_languages=["es"],
            instance_id="test:1",
        )
        for index, (session, speaker) in enumerate([(here, user), (here, user), (here, other), (elsewhere, user)]):
            await transcripts.add_transcript_line(
                s,
                session_id=session.id,
                transcription_id=f"t{index}",
                source_text=f"line {index}",
                speaker_user_id=speaker.id,
            )
    await h.command(user, "privacy", "optout")

    record = await h.command(user, "privacy", "delete")
    assert ephemeral(record)
    assert shown(record).startswith("Deleted 2 transcript lines of yours in this server. Your opt-out stays in force")
    async with h.services.database.session() as s:
        left = {(line.session_id, line.speaker_user_id) for line in await transcripts.session_transcript(s, here.id)}
        assert left == {(here.id, other.id)}
        assert len(await transcripts.session_transcript(s, elsewhere.id)) == 1
    assert await _scopes(h, user) == [guild]

    record = await h.command(user, "privacy", "delete", everywhere=True)
    assert shown(record).startswith("Deleted 1 transcript line of yours in every server.")
    async with h.services.database.session() as s:
        assert await transcripts.session_transcript(s, elsewhere.id) == []
    assert await _scopes(h, user) == [guild]
    record = await h.command(other, "privacy", "delete")
    assert shown(record) == "Deleted 1 transcript line of yours in this server."
