"""/setup on both databases: what is stored, what is refused, who may do it."""

from __future__ import annotations

from bot.db import guilds
from tests.cogs.conftest import ephemeral, shown


async def _stored(h):
    async with h.services.database.session() as s:
        return await guilds.get_or_create_guild_settings(s, h.fake.guild.id)


async def _admin(h):
    return await h.fake.add_user("Admin", admin=True)


def _role_payload(h, user, role) -> dict:
    """`/setup role role:<role>`: the fake builds no role options, so add one as Discord sends it."""
    payload = h.payload(user, "setup", "role")
    payload["data"]["options"][0]["options"] = [{"name": "role", "type": 8, "value": str(role.id)}]
    payload["data"]["resolved"] = {"roles": {str(role.id): role.payload()}}
    return payload


async def test_languages_are_stored_with_warnings_for_unknown_codes(harness):
    h = harness
    admin = await _admin(h)
    record = await h.command(admin, "setup", "languages", source="EN", targets="es, pt_BR, xx-yy, es")
    assert ephemeral(record)
    text = shown(record)
    assert text.startswith("Defaults set: **en** → **es**, **pt-br**, **xx-yy**")
    assert "⚠️ target language 'xx-yy' is not in Palabra's known list" in text
    stored = await _stored(h)
    assert stored.source_language == "en" and stored.target_languages == ["es", "pt-br", "xx-yy"]


async def test_malformed_languages_are_refused_and_nothing_changes(harness):
    h = harness
    admin = await _admin(h)
    await h.command(admin, "setup", "languages", source="auto", targets="de")
    for source, targets, expected in [
        ("en", "spanish!", "target language 'spanish!' is not a language code"),
        ("", "es", "source language is empty"),
        ("en", "auto", "'auto' is only valid as a source language"),
    ]:
        record = await h.command(admin, "setup", "languages", source=source, targets=targets)
        assert ephemeral(record) and expected in shown(record), shown(record)
        assert "/languages" in shown(record)  # says where the accepted codes are
    stored = await _stored(h)
    assert stored.source_language == "auto" and stored.target_languages == ["de"]


async def test_members_without_manage_server_are_refused_until_given_the_named_role(harness):
    h = harness
    member = await h.fake.add_user("Member")
    record = await h.command(member, "setup", "languages", source="en", targets="es")
    assert ephemeral(record)
    assert shown(record) == "Only members with the Manage Server permission can do this."
    assert (await _stored(h)).target_languages == []

    role = await h.add_role("Interpreters")
    admin = await _admin(h)
    record = await h.send(_role_payload(h, admin, role))
    assert f"<@&{role.id}>" in shown(record)
    assert (await _stored(h)).config_role_id == role.id

    record = await h.command(member, "setup", "languages", source="en", targets="es")
    assert f"Only members with the Manage Server permission or the <@&{role.id}> role" in shown(record)
    member.account.role_ids.append(role.id)  # the member payload of the next interaction carries the role
    record = await h.command(member, "setup", "languages", source="en", targets="es")
    assert shown(record).startswith("Defaults set: **en** → **es**")
    assert (await _stored(h)).target_languages == ["es"]

    # The named role may configure, but not choose who may configure.
    record = await h.send(_role_payload(h, member, role))
    assert ephemeral(record) and "Only members with the Manage Server permission can choose" in shown(record)
    record = await h.command(admin, "setup", "role")  # no role: back to Manage Server only
    assert (await _stored(h)).config_role_id is None
    assert shown(record) == "Settings can now be changed by members with the Manage Server permission."


async def test_channel_per_language_set_warned_and_cleared(harness):
    h = harness
    admin = await _admin(h)
    await h.command(admin, "setup", "languages", source="en", targets="es")
    voice_b = h.fake.channel("Voice B")
    record = await h.command(admin, "setup", "channel", language="es", channel=voice_b)
    assert shown(record) == f"**es** is heard in <#{voice_b.id}>."
    record = await h.command(admin, "setup", "channel", language="fr", channel=voice_b)
    text = shown(record)
    assert "'fr' is not one of the server's target languages (es)" in text
    assert f"<#{voice_b.id}> is also the channel of es" in text
    assert (await _stored(h)).sibling_channels == {"es": voice_b.id, "fr": voice_b.id}
    record = await h.command(admin, "setup", "channel", language="fr")
    assert shown(record) == "**fr** has no sibling channel now."
    assert (await _stored(h)).sibling_channels == {"es": voice_b.id}


async def test_channel_refuses_a_text_channel_and_a_malformed_language(harness):
    h = harness
    admin = await _admin(h)
    record = await h.command(admin, "setup", "channel", language="es", channel=h.fake.channel("general"))
    assert ephemeral(record)
    assert shown(record) == f"<#{h.fake.channel('general').id}> is not accepted there; expected: VoiceChannel."
    record = await h.command(admin, "setup", "channel", language="e s", channel=h.fake.channel("Voice B"))
    assert ephemeral(record) and "is not a language code" in shown(record)
    assert (await _stored(h)).sibling_channels == {}


async def test_transcripts_channel_set_and_back_to_default(harness):
    h = harness
    admin = await _admin(h)
    general = h.fake.channel("general")
    record = await h.command(admin, "setup", "transcripts", channel=general)
    assert ephemeral(record) and shown(record) == f"Transcripts go to <#{general.id}>."
    assert (await _stored(h)).transcript_channel_id == general.id
    record = await h.command(admin, "setup", "transcripts")
    assert shown(record) == "Transcripts go to the source voice channel's own text chat."
    assert (await _stored(h)).transcript_channel_id is None


async def test_voice_per_language_set_refused_and_cleared(harness):
    h = harness
    admin = await _admin(h)
    await h.command(admin, "setup", "languages", source="en", targets="es")
    record = await h.command(admin, "setup", "voice", language="es", voice="default_high_female")
    assert shown(record) == "**es** speaks with voice `default_high_female`."
    assert (await _stored(h)).voices == {"es": "default_high_female"}
    record = await h.command(admin, "setup", "voice", language="es", voice="v" * 129)
    assert ephemeral(record) and "voice id must be a non-empty text of at most 128 characters" in shown(record)
    assert (await _stored(h)).voices == {"es": "default_high_female"}
    record = await h.command(admin, "setup", "voice", language="es")
    assert shown(record) == "**es** uses the default voice."
    assert (await _stored(h)).voices == {}


async def test_autostop_stores_and_checks_its_ranges(harness):
    h = harness
    admin = await _admin(h)
    record = await h.command(admin, "setup", "autostop", empty_minutes=10, max_hours=0)
    assert shown(record) == "Sessions stop 10m 00s after the channel empties; at most no limit."
    stored = await _stored(h)
    assert stored.auto_stop_empty_seconds == 600 and stored.auto_stop_max_seconds is None
    for options, expected in [
        ({}, "Give `empty_minutes` (1–1440)"),
        ({"empty_minutes": 0}, "`empty_minutes` must be from 1 to 1440; got 0"),
        ({"max_hours": 49}, "`max_hours` must be from 0 (no limit) to 48; got 49"),
    ]:
        record = await h.command(admin, "setup", "autostop", **options)
        assert ephemeral(record) and expected in shown(record)
    assert (await _stored(h)).auto_stop_empty_seconds == 600


async def test_show_is_open_to_everyone_and_shows_everything(harness):
    h = harness
    admin = await _admin(h)
    member = await h.fake.add_user("Member")
    record = await h.command(member, "setup", "show")
    text = shown(record)
    assert ephemeral(record)
    assert "Source language: **auto**" in text and "Target languages: none" in text
    assert "Who may configure: members with the Manage Server permission" in text

    voice_b, general = h.fake.channel("Voice B"), h.fake.channel("general")
    role = await h.add_role("Interpreters")
    await h.command(admin, "setup", "languages", source="en", targets="es, de")
    await h.command(admin, "setup", "channel", language="es", channel=voice_b)
    await h.command(admin, "setup", "voice", language="de", voice="deep_voice")
    await h.command(admin, "setup", "transcripts", channel=general)
    await h.send(_role_payload(h, admin, role))
    record = await h.command(member, "setup", "show")
    text = shown(record)
    assert "Source language: **en**" in text and "Target languages: **es**, **de**" in text
    assert f"• **es**: <#{voice_b.id}>, default voice" in text
    assert "• **de**: no sibling channel, voice `deep_voice`" in text
    assert f"Transcripts: <#{general.id}>" in text
    assert "Auto-stop: 5m 00s after the channel empties; at most 4h 00m" in text
    assert f"Who may configure: members with the Manage Server permission or the <@&{role.id}> role" in text


async def test_language_autocomplete_offers_targets(harness):
    h = harness
    admin = await _admin(h)
    record = await h.send(h.payload(admin, "setup", "channel", focused="language", language="pt"))
    assert record.response_type == 8
    assert [c["value"] for c in record.responses[0]["data"]["choices"]] == ["pt", "pt-br"]


async def test_transcripts_warns_with_the_fix_when_the_bot_cannot_post_there(sqlite_harness):
    from tests.fakes.discord.model import ATTACH_FILES, MANAGE_WEBHOOKS

    h = sqlite_harness
    admin = await _admin(h)
    general = h.fake.channel("general")
    record = await h.command(admin, "setup", "transcripts", channel=general)
    assert shown(record) == f"Transcripts go to <#{general.id}>."
    await h.fake.set_overwrite(general, h.fake.bot(), deny=MANAGE_WEBHOOKS | ATTACH_FILES)
    record = await h.command(admin, "setup", "transcripts", channel=general)
    text = shown(record)
    assert ephemeral(record) and text.startswith(f"Transcripts go to <#{general.id}>.\n⚠️ **Interpreter** lacks")
    assert "Attach Files, Manage Webhooks" in text and "Fix: <#" in text
