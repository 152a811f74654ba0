from __future__ import annotations

import pytest

from bot.broadcasts.service import BroadcastService
from bot.client import InterpreterBot
from bot.db import Database, upgrade_to_head
from bot.interpretation.errors import SessionAlreadyRunning
from bot.interpretation.manager import InterpretationManager, Placement, SessionStatus
from bot.interpretation.session import SessionOptions
from bot.palabra.credentials import Credentials
from bot.palabra.emulator.app import serve
from bot.palabra.rest import PalabraRest
from bot.services import Core, Options, Services
from bot.settings import load_settings
from bot.shards import ShardPlan
from bot.voice.speakers import SpeakerPool
from tests.cogs.conftest import Harness, ephemeral, shown
from tests.fakes import secrets
from tests.fakes.discord.clients import running_clients
from tests.fakes.discord.server import FakeDiscord
from tests.interpretation.conftest import emulator_config


async def _speaker_in_voice(h, name="Ana", channel="Voice A", admin=False):
    user = await h.fake.add_user(name, admin=admin)
    await h.join_voice(user, channel)
    return user


async def test_start_passes_the_callers_channel_and_languages_and_reports_placements(sqlite_harness):
    h = sqlite_harness
    user = await _speaker_in_voice(h)
    record = await h.command(user, "interpret", "start", source="EN", targets="es, fr,es")
    voice_a = h.fake.channel("Voice A").id
    ((name, call),) = h.manager.calls
    assert name == "start"
    assert call["voice_channel"].id == voice_a and call["guild"].id == h.fake.guild.id
    assert call["requested_by"].id == user.id
    assert call["source"] == "en" and call["targets"] == ["es", "fr"]
    assert record.response_type == 5 and not ephemeral(record)  # deferred, then a public answer
    text = shown(record)
    assert f"Interpreting <#{voice_a}>: **en** → **es**, **fr**" in text
    assert f"• **es**: plays in <#{voice_a + 1}>" in text
    assert "• **fr**: text only — no speaker bot is free" in text
    assert f"Transcripts go to <#{voice_a}>." in text
    assert "⚠️ Palabra said hello" in text


async def test_start_without_options_leaves_the_defaults_to_the_manager(sqlite_harness):
    h = sqlite_harness
    user = await _speaker_in_voice(h)
    await h.command(user, "interpret", "start")
    assert h.manager.calls[0][1]["source"] is None and h.manager.calls[0][1]["targets"] is None


async def test_start_with_unknown_codes_warns_but_starts(sqlite_harness):
    h = sqlite_harness
    user = await _speaker_in_voice(h)
    record = await h.command(user, "interpret", "start", source="xq", targets="es-zz")
    assert h.manager.calls[0][1]["source"] == "xq" and h.manager.calls[0][1]["targets"] == ["es-zz"]
    text = shown(record)
    assert "⚠️ source language 'xq' is not in Palabra's known list" in text
    assert "⚠️ target language 'es-zz' is not in Palabra's known list" in text
    assert not ephemeral(record)


async def test_start_refuses_malformed_languages_privately(sqlite_harness):
    h = sqlite_harness
    user = await _speaker_in_voice(h)
    cases = {
        ("english!", "es"): "source language 'english!' is not a language code",
        ("en", "es, 42"): "target language '42' is not a language code",
        ("en", "auto"): "'auto' is only valid as a source language",
        ("en", " , "): "Give at least one target language",
        (
            "en",
            ",".join(["es", "fr", "de", "it", "pt", "pl", "nl", "sv", "fi", "da", "cs"]),
        ): "At most 10 target languages",
    }
    for (source, targets), expected in cases.items():
        record = await h.command(user, "interpret", "start", source=source, targets=targets)
        assert record.response_type == 4 and ephemeral(record), (source, targets)
        assert expected in shown(record), shown(record)
    assert h.manager.calls == []


async def test_start_outside_voice_is_refused(sqlite_harness):
    h = sqlite_harness
    user = await h.fake.add_user("Nomad")
    record = await h.command(user, "interpret", "start", targets="es")
    assert ephemeral(record) and "Join the voice channel you want interpreted" in shown(record)
    assert h.manager.calls == []


async def test_start_domain_refusal_is_private_and_the_placeholder_is_removed(sqlite_harness):
    h = sqlite_harness
    user = await _speaker_in_voice(h)
    h.manager.fail_with = SessionAlreadyRunning()
    record = await h.command(user, "interpret", "start", targets="es")
    assert record.original.deleted
    assert ephemeral(record) and shown(record) == "Interpretation is already running in that channel."


async def test_stop_stops_the_callers_channel(sqlite_harness):
    h = sqlite_harness
    h.manager.sessions.append(_status(h, 11))
    user = await _speaker_in_voice(h)
    record = await h.command(user, "interpret", "stop")
    assert h.manager.calls[-1] == (
        "stop",
        {"guild_id": h.fake.guild.id, "channel_id": h.fake.channel("Voice A").id, "reason": "stopped"},
    )
    assert not ephemeral(record)
    assert shown(record) == "Stopped interpreting after 2m 05s (3 transcript lines)."


async def test_stop_from_outside_voice_needs_manage_server(sqlite_harness):
    h = sqlite_harness
    h.manager.sessions.append(_status(h, 12))
    member = await h.fake.add_user("Member")
    record = await h.command(member, "interpret", "stop")
    assert ephemeral(record) and "Join the voice channel being interpreted" in shown(record)
    assert [name for name, _ in h.manager.calls] == ["status"]
    admin = await h.fake.add_user("Admin", admin=True)
    record = await h.command(admin, "interpret", "stop")
    assert h.manager.calls[-1] == ("stop", {"guild_id": h.fake.guild.id, "channel_id": None, "reason": "stopped"})
    assert "Stopped interpreting" in shown(record)


async def test_stop_from_another_voice_channel_needs_manage_server(sqlite_harness):
    h = sqlite_harness
    h.manager.sessions.append(_status(h, 15))
    member = await _speaker_in_voice(h, "Wanderer", "Voice C")
    record = await h.command(member, "interpret", "stop")
    assert ephemeral(record)
    assert f"Join the voice channel being interpreted (<#{h.fake.channel('Voice A').id}>)" in shown(record)
    assert [name for name, _ in h.manager.calls] == ["status"]
    admin = await _speaker_in_voice(h, "Admin", "Voice C", admin=True)
    record = await h.command(admin, "interpret", "stop")
    assert h.manager.calls[-1] == ("stop", {"guild_id": h.fake.guild.id, "channel_id": None, "reason": "stopped"})
    assert "Stopped interpreting" in shown(record)


async def test_stop_without_a_session_says_so_privately(sqlite_harness):
    h = sqlite_harness
    user = await _speaker_in_voice(h)
    record = await h.command(user, "interpret", "stop")
    assert ephemeral(record) and shown(record) == "No interpretation session is running here."


async def test_status_lists_each_session(sqlite_harness):
    h = sqlite_harness
    user = await h.fake.add_user("Curious")
    record = await h.command(user, "interpret", "status")
    assert ephemeral(record) and "No interpretation is running in this server" in shown(record)
    h.manager.sessions.append(_status(h, 13))
    record = await h.command(user, "interpret", "status")
    text = shown(record)
    voice_a, voice_b = h.fake.channel("Voice A").id, h.fake.channel("Voice B").id
    assert f"**<#{voice_a}>**: **en** → **es**, **de**" in text
    assert f"• **es**: plays in <#{voice_b}>" in text
    assert "• **de**: text only — no speaker bot is free" in text
    assert "Speakers heard: <@101>, <@202>" in text
    assert "Uptime: 1h 01m · latency p50 0.84 s, p90 1.27 s · packets 1234, decrypt failures 2" in text
    assert "Palabra" not in text  # never paused: nothing to say


@pytest.mark.parametrize(
    ("paused", "paused_s", "line"),
    [
        (True, 125.0, "Palabra paused while nobody speaks (not billed; 2m 05s so far)"),
        (False, 65.0, "Palabra was paused for 1m 05s while nobody spoke (not billed)"),
    ],
)
async def test_status_says_when_palabra_is_paused_for_silence(sqlite_harness, paused, paused_s, line):
    h = sqlite_harness
    status = _status(h, 16)
    status.palabra_paused, status.palabra_paused_s = paused, paused_s
    h.manager.sessions.append(status)
    record = await h.command(await h.fake.add_user("Curious"), "interpret", "status")
    assert line in shown(record)


async def test_status_of_another_guild_is_not_shown(sqlite_harness):
    h = sqlite_harness
    other = _status(h, 14)
    other.guild_id += 1
    h.manager.sessions.append(other)
    record = await h.command(await h.fake.add_user("Curious"), "interpret", "status")
    assert "No interpretation is running" in shown(record)


async def test_autocomplete_answers_language_choices(sqlite_harness):
    h = sqlite_harness
    user = await h.fake.add_user("Typist")
    record = await h.send(_autocomplete(h, user, "start", {"source": "e", "targets": "es, f"}, focused="source"))
    assert record.response_type == 8
    values = [c["value"] for c in record.responses[0]["data"]["choices"]]
    assert values and values[0] in ("el", "en", "eo", "es", "et", "eu") and all("e" in v for v in values)
    record = await h.send(_autocomplete(h, user, "start", {"source": "en", "targets": "es, f"}, focused="targets"))
    values = [c["value"] for c in record.responses[0]["data"]["choices"]]
    assert "es, fr" in values and "es, fi" in values and all(v.startswith("es, ") for v in values)
    assert len(values) <= 25 and h.manager.calls == []


def _autocomplete(h, user, subcommand: str, options: dict, focused: str) -> dict:
    return h.payload(user, "interpret", subcommand, focused=focused, **options)


def _status(h, session_id: int) -> SessionStatus:
    voice_a, voice_b = h.fake.channel("Voice A").id, h.fake.channel("Voice B").id
    return SessionStatus(
        session_id=session_id,
        guild_id=h.fake.guild.id,
        source_channel_id=voice_a,
        source="en",
        targets=["es", "de"],
        placements={
            "es": Placement("es", "sibling", voice_b),
            "de": Placement("de", "text_only", None, "no speaker bot is free"),
        },
        speakers_heard=[101, 202],
        uptime_s=3671.0,
        latency_p50_s=0.84,
        latency_p90_s=1.27,
        packets=1234,
        decrypt_failures=2,
    )


async def test_real_manager_behind_the_commands(tmp_path):
    """/interpret with the project's interpretation manager, the Palabra emulator and a speaker bot:
    what the manager really placed is what the user reads."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await upgrade_to_head(url)
    database = Database(url)
    try:
        async with FakeDiscord() as fake, serve(emulator_config()) as emulator:
            settings = load_settings(
                palabra_client_id=secrets.PALABRA_CLIENT_ID,
                palabra_client_secret=secrets.PALABRA_CLIENT_SECRET,
                palabra_api_url=emulator.base_url,
                discord_api_base=fake.api_base,
                database_url=url,
                http_port=0,
            )
            credentials = Credentials.app(secrets.PALABRA_CLIENT_ID, secrets.PALABRA_CLIENT_SECRET)
            async with PalabraRest(credentials, emulator.base_url) as rest:
                options = Options(session=SessionOptions(tail_silence_s=0.5, drain_timeout_s=5.0))
                core = Core(settings, database, credentials, rest, options=options)
                pool = SpeakerPool()

                def services_for(listener: InterpreterBot) -> Services:
                    manager = InterpretationManager(core, listener, pool)
                    return Services(core, interpretation=manager, broadcasts=BroadcastService(core), speakers=pool)

                def listener_factory() -> InterpreterBot:
                    return InterpreterBot(services_for, shards=ShardPlan.of(settings), guild_ready_timeout=0.1)

                async with (
                    running_clients(fake, [secrets.DISCORD_TOKEN], factory=listener_factory) as (listener,),
                    running_clients(fake, secrets.SPEAKER_TOKENS[:1]) as speakers,
                ):
                    for speaker in speakers:
                        pool.add(speaker)
                    manager = listener.services.interpretation
                    assert isinstance(manager, InterpretationManager)
                    try:
                        h = Harness(fake, listener, listener.services, manager)
                        await _real_session_round_trip(h)
                    finally:
                        await manager.close()
    finally:
        await database.close()


async def _real_session_round_trip(h) -> None:
    fake = h.fake
    voice_a, voice_b = fake.channel("Voice A").id, fake.channel("Voice B").id
    admin = await fake.add_user("Admin", admin=True)
    await h.command(admin, "setup", "languages", source="en", targets="es, fr")
    await h.command(admin, "setup", "channel", language="es", channel=fake.channel("Voice B"))
    await h.join_voice(admin, "Voice A")

    record = await h.command(admin, "interpret", "start", timeout=30)
    text = shown(record)
    assert not ephemeral(record), text
    assert f"Interpreting <#{voice_a}>: **en** → **es**, **fr**" in text
    assert f"• **es**: plays in <#{voice_b}>" in text  # the speaker bot took the sibling channel
    # No sibling channel for fr: the listener plays it in the source channel, and says why.
    assert f"• **fr**: plays in <#{voice_a}> (the source channel) — no voice channel is set for fr" in text
    assert "Transcripts go to <#" in text

    record = await h.command(admin, "interpret", "start", targets="de")
    assert ephemeral(record) and "already running" in shown(record)

    record = await h.command(admin, "interpret", "status")
    assert f"**<#{voice_a}>**: **en** → **es**, **fr**" in shown(record)
    assert "Uptime:" in shown(record)

    record = await h.command(admin, "privacy", "optout")
    assert "left out" in shown(record)

    record = await h.command(admin, "interpret", "stop", timeout=30)
    assert shown(record).startswith("Stopped interpreting after"), shown(record)
    record = await h.command(admin, "interpret", "status")
    assert "No interpretation is running" in shown(record)
