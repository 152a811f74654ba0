"""/setup check through the fake Discord, with the listener, speaker bots and the Palabra emulator as `run`
wires them: each problem is reported with its fix, and a healthy server is green."""

from __future__ import annotations

import pytest

from bot.db import guilds
from tests.cogs.conftest import ephemeral, running_world
from tests.fakes import secrets
from tests.fakes.discord.model import MANAGE_WEBHOOKS, SPEAK

pytestmark = pytest.mark.timeout(60)

GREEN, RED = 0x2ECC71, 0xE74C3C


async def _configure(h, *, transcripts: str | None = "general") -> None:
    fake = h.fake
    async with h.services.database.session() as s:
        await guilds.set_languages(s, fake.guild.id, "en", ["es", "fr"])
        await guilds.set_language_channel(s, fake.guild.id, "es", fake.channel("Voice B").id)
        await guilds.set_language_channel(s, fake.guild.id, "fr", fake.channel("Voice C").id)
        if transcripts:
            await guilds.update_guild_setting(s, fake.guild.id, "transcript_channel_id", fake.channel(transcripts).id)


async def _check(h, *, in_voice: str | None = "Voice A"):
    admin = await h.fake.add_user("Admin", admin=True)
    if in_voice:
        await h.join_voice(admin, in_voice)
    record = await h.command(admin, "setup", "check", timeout=20)
    embed = record.followups[-1].embeds[0]
    return record, embed, embed["description"].splitlines()


def _url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"


async def test_a_healthy_server_is_green_with_what_was_checked(tmp_path):
    async with running_world(_url(tmp_path)) as h:
        await _configure(h)
        record, embed, lines = await _check(h)
        assert ephemeral(record)
        assert embed["title"] == "Setup check: all good", lines
        assert embed["color"] == GREEN
        assert all(line.startswith("✅") for line in lines), lines
        voice_a, general = h.fake.channel("Voice A").id, h.fake.channel("general").id
        assert f"✅ **Interpreter** can listen, speak and post in <#{voice_a}>." in lines
        assert any(f"Transcripts can be posted in <#{general}>" in line for line in lines)
        assert f"✅ **es** is heard in <#{h.fake.channel('Voice B').id}>." in lines
        assert any("2 speaker bot(s) are ready in this server" in line for line in lines)
        assert any(line.startswith("✅ Palabra accepts the credentials") for line in lines)
        assert "✅ The database (sqlite) can be written." in lines


async def test_missing_speaker_missing_speak_and_no_webhooks_are_each_reported_with_their_fix(tmp_path):
    async def break_things(fake) -> None:
        await fake.set_overwrite("Voice C", fake.bot(secrets.SPEAKER_TOKENS[0]), deny=SPEAK)
        await fake.set_overwrite("general", fake.bot(), deny=MANAGE_WEBHOOKS)

    absent = secrets.SPEAKER_TOKENS[1]
    async with running_world(_url(tmp_path), not_in_server=[absent], prepare=break_things) as h:
        await _configure(h)
        _, embed, lines = await _check(h)
        fake = h.fake
        voice_c, general = fake.channel("Voice C").id, fake.channel("general").id
        assert embed["color"] == RED and embed["title"] == "Setup check: 3 problem(s) to fix", lines
        missing_app = fake.bot(absent).application_id
        assert (
            "❌ **Speaker 2** is not in this server. Fix: invite it with "
            f"https://discord.com/oauth2/authorize?client_id={missing_app}&scope=bot&permissions=3146752"
        ) in lines
        assert (
            f"❌ **Speaker 1** lacks Speak in <#{voice_c}> (Speak to play the translation). "
            f"Fix: <#{voice_c}> → Edit Channel → Permissions → allow Speak for **Speaker 1** or its role."
        ) in lines
        assert (
            f"❌ **Interpreter** lacks Manage Webhooks in <#{general}> (Manage Webhooks to post transcripts under "
            f"each speaker's name). Fix: <#{general}> → Edit Channel → Permissions → allow Manage Webhooks for "
            "**Interpreter** or its role."
        ) in lines
        assert all(line.startswith("❌") for line in lines[:3])  # problems first

        # Fixed in Discord, the same check is green again.
        await fake.set_overwrite("Voice C", fake.bot(secrets.SPEAKER_TOKENS[0]))
        await fake.set_overwrite("general", fake.bot())
        _, embed, lines = await _check_again(h)
        assert [line for line in lines if line.startswith("❌")] == [line for line in lines if "Speaker 2" in line], (
            lines
        )


async def _check_again(h):
    admin = next(user for user in h.fake.users.values() if user.account.name == "Admin")
    record = await h.command(admin, "setup", "check", timeout=20)
    embed = record.followups[-1].embeds[0]
    return record, embed, embed["description"].splitlines()


async def test_configuration_gaps_palabra_rejection_and_a_speaker_that_did_not_log_in(tmp_path):
    tokens = [*secrets.SPEAKER_TOKENS[:1], "MTA5MDEyMzQ1Njc4OTAxMjk5OQ.Unknown.tokentokentokentokentoken"]
    async with running_world(_url(tmp_path), speaker_tokens=tokens, palabra_secret="wrong-secret-0123") as h:
        fake = h.fake
        async with h.services.database.session() as s:
            await guilds.set_languages(s, fake.guild.id, "en", ["es", "fr", "de"])
            await guilds.set_language_channel(s, fake.guild.id, "es", fake.channel("Voice B").id)
            await guilds.set_language_channel(s, fake.guild.id, "fr", 1234567890123456789)  # deleted since
            await guilds.update_guild_setting(s, fake.guild.id, "transcript_channel_id", 1234567890123456780)
        *_, lines = await _check(h, in_voice=None)
        text = "\n".join(lines)
        assert "❌ 1 of the 2 speaker bots in SPEAKER_TOKENS did not log in" in text
        assert "❌ The voice channel of **fr** (<#1234567890123456789>) no longer exists." in text
        assert "⚠️ **de** has no voice channel" in text and "`/setup create-channels`" in text
        assert "❌ The transcript channel <#1234567890123456780> no longer exists" in text
        assert "⚠️ You are not in a voice channel, so the source channel was not checked" in text
        assert "❌ Palabra rejected the credentials: " in text and "Fix: check PALABRA_CLIENT_ID" in text
        assert "wrong-secret-0123" not in text
        pool = h.manager.speaker_pool
        assert (pool.logging_in, pool.failed_logins, len(pool.speakers)) == (0, 1, 1)


async def test_speaker_bots_still_logging_in_are_not_called_failed(tmp_path):
    async with running_world(_url(tmp_path)) as h:
        await _configure(h)
        h.manager.speaker_pool.logging_in = 1  # as right after start-up, while start_speakers waits for READY
        *_, lines = await _check(h)
        assert any(
            line.startswith("⚠️ 1 of the 2 speaker bots are still logging in") and "run `/setup check` again" in line
            for line in lines
        ), lines
        assert not any("did not log in" in line for line in lines)
