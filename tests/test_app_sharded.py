"""Two `python -m bot run` processes, shards 0 and 1 of 2, against one fake Discord, one Palabra emulator
and one PostgreSQL database: two guilds on different shards interpret at the same time, each served by
its own process; one speaker bot is leased in both guilds at once, never twice in one; SIGKILL one
process and the other's session carries on; restart it and it takes over only its own guild's session,
leaving no Palabra session behind."""

from __future__ import annotations

import asyncio
import logging
import signal

import httpx
import numpy as np
import pytest
from sqlalchemy.engine import make_url

from bot.db import Database, instances, leases
from bot.db import sessions as db_sessions
from bot.palabra.emulator.app import serve
from tests.fakes import secrets
from tests.fakes.audio import SPEECH_A, SPEECH_B, decode, mono, pieces_heard
from tests.fakes.discord.gateway import shard_of
from tests.fakes.discord.server import FakeDiscord
from tests.interpretation.conftest import emulator_config, wait_for
from tests.test_app import BotProcess, bot_env, free_port, wait_healthy

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]
log = logging.getLogger(__name__)

SPEECH_S = 2


def env_for(fake: FakeDiscord, emulator_url: str, database_url: str, http_port: int) -> dict[str, str]:
    # A SIGKILLed process is known dead after 3 silent heartbeats: 3 s here, not the default 45 s.
    return {**bot_env(fake, emulator_url, database_url, http_port), "HEARTBEAT_SECONDS": "1"}


def sharded_env(base: dict[str, str], shard: int, http_port: int) -> dict[str, str]:
    return {**base, "SHARD_COUNT": "2", "SHARD_IDS": str(shard), "HTTP_PORT": str(http_port)}


async def instance_of(port: int) -> str:
    """The instance id a running process reports (host:pid:run token)."""
    return (await health(port))["instance_id"]


async def command(fake: FakeDiscord, guild, user, name: str, subcommand: str, in_channel="general", **options):
    record = await fake.slash_command(
        fake.bot(), user, guild.channel_named(in_channel), name, subcommand=subcommand, options=options, guild=guild
    )
    await fake.wait_for_response(record, 30)
    await wait_for(lambda: record.response_type != 5 or record.followups, timeout=60, what=f"/{name} {subcommand}")
    return record


async def configure(fake: FakeDiscord, guild, admin) -> None:
    await command(fake, guild, admin, "setup", "languages", source="en", targets="es")
    await command(fake, guild, admin, "setup", "channel", language="es", channel=guild.channel_named("Voice B"))


async def live_sessions(url: str) -> dict[int, object]:
    """Guild id -> its live session row."""
    async with Database(url) as database, database.session() as s:
        return {row.guild_id: row for row in await db_sessions.list_active_sessions(s)}


async def speak_and_hear(emulator, speakers: dict, palabra_ids: dict[int, str]) -> dict[int, float]:
    """Each user speaks their fixture at the same time; the share of it each guild's stream heard."""

    def streaming() -> bool:  # the Palabra session is recorded before its stream connects
        return all(_streams_of(emulator, pid) for pid in palabra_ids.values())

    await wait_for(streaming, timeout=30, what="each session's Palabra stream")
    streams = {guild_id: _streams_of(emulator, pid)[-1] for guild_id, pid in palabra_ids.items()}
    before = {guild_id: len(stream.input_pcm) for guild_id, stream in streams.items()}
    pcm = {path: decode(path, rate=48000, channels=2)[: SPEECH_S * 48000 * 4] for path in (SPEECH_A, SPEECH_B)}
    await asyncio.gather(*(user.speak(pcm[path] + bytes(48000 * 4)) for user, path in speakers.values()))
    heard = {}
    for guild_id, (_user, path) in speakers.items():
        received = bytes(streams[guild_id].input_pcm[before[guild_id] :])
        signal_in = np.frombuffer(received, dtype="<i2").astype(np.float64) / 32768
        spoken = mono(decode(path, rate=16000, channels=1), 1)[: SPEECH_S * 16000]
        heard[guild_id] = pieces_heard(spoken, signal_in, 16000)
    return heard


def _streams_of(emulator, palabra_id: str) -> list:
    return [stream for stream in emulator.state.streams if stream.session_id == palabra_id]


async def health(port: int) -> dict:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://127.0.0.1:{port}/healthz")).json()


@pytest.fixture
def postgres_url(isolated_url):
    if make_url(isolated_url).get_backend_name() != "postgresql":
        pytest.skip("several processes share PostgreSQL; SQLite is refused (test_sqlite_refuses_part_of_the_shards)")
    return isolated_url


async def test_two_processes_serve_their_own_shards_and_survive_each_other(postgres_url):
    async with FakeDiscord() as fake, serve(emulator_config()) as emulator:
        g0 = await fake.add_guild("On shard 0", voice_channels=("Voice A", "Voice B"), shard=(0, 2))
        g1 = await fake.add_guild("On shard 1", voice_channels=("Voice A", "Voice B"), shard=(1, 2))
        alice = await fake.add_user("Alice", admin=True, guild=g0)
        bob = await fake.add_user("Bob", admin=True, guild=g1)
        ports = {0: free_port(), 1: free_port()}
        base = env_for(fake, emulator.base_url, postgres_url, 0)
        p0, p1 = BotProcess(sharded_env(base, 0, ports[0])), BotProcess(sharded_env(base, 1, ports[1]))
        p1_again = BotProcess(sharded_env(base, 1, ports[1]))
        try:
            await asyncio.gather(p0.start(), p1.start())
            await asyncio.gather(wait_healthy(ports[0]), wait_healthy(ports[1]))
            first_id, second_id = await instance_of(ports[0]), await instance_of(ports[1])
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"http://127.0.0.1:{ports[1]}/metrics")).text
            info = f'interpreter_instance_info{{instance_id="{second_id}",shard_count="2",shard_ids="1"}} 1.0'
            assert info in metrics
            assert 'interpreter_shard_ready{shard="1"} 1.0' in metrics and 'shard="0"' not in metrics
            on_1 = sum(1 for guild in fake.guilds if shard_of(guild.id, 2) == 1)  # g1, maybe the fake's first
            assert f'interpreter_shard_guilds{{shard="1"}} {on_1:.1f}' in metrics
            assert first_id.split(":")[1] == str(p0.proc.pid) and second_id.split(":")[1] == str(p1.proc.pid)
            assert [(h["shard_ids"], h["shard_count"]) for h in [await health(ports[0]), await health(ports[1])]] == [
                ([0], 2),
                ([1], 2),
            ]
            await configure(fake, g0, alice)
            await configure(fake, g1, bob)
            await alice.join("Voice A")
            await bob.join("Voice A")
            await asyncio.gather(
                command(fake, g0, alice, "interpret", "start", in_channel="Voice A"),
                command(fake, g1, bob, "interpret", "start", in_channel="Voice A"),
            )
            await wait_for(lambda: len(emulator.state.sessions) == 2, timeout=30, what="two Palabra sessions")

            # Each guild's session is run by the process of its shard.
            rows = await live_sessions(postgres_url)
            assert {g: row.instance_id for g, row in rows.items()} == {g0.id: first_id, g1.id: second_id}
            status = await command(fake, g1, bob, "interpret", "status", in_channel="Voice A")
            assert f"Run by instance `{second_id}` on shard 1 of 2" in status.text()

            # One speaker bot, one account, leased in both guilds at once, by two processes.
            speaker = fake.bots[1]
            async with Database(postgres_url) as database, database.session() as s:
                assert await leases.busy_speakers(s, g0.id) == {speaker.id}
                assert await leases.busy_speakers(s, g1.id) == {speaker.id}
            await wait_for(
                lambda: (
                    speaker.id in fake.voice_members(g0.channel_named("Voice B").id)
                    and speaker.id in fake.voice_members(g1.channel_named("Voice B").id)
                ),
                timeout=30,
                what="the speaker bot playing in both guilds",
            )
            # ...but never twice in one guild, whoever asks.
            async with Database(postgres_url) as database, database.session() as s:
                again = await leases.acquire_speaker(
                    s,
                    candidates=[speaker.id],
                    guild_id=g0.id,
                    channel_id=g0.channel_named("Voice A").id,
                    language="fr",
                    instance_id=second_id,
                )
                assert again is None

            # Both interpret at the same time: each stream hears its own guild's speech.
            palabra = {g: rows[g].palabra_session_ids[0] for g in (g0.id, g1.id)}
            await alice.wait_dave_ready(members=2, timeout=20)
            await bob.wait_dave_ready(members=2, timeout=20)
            heard = await speak_and_hear(emulator, {g0.id: (alice, SPEECH_A), g1.id: (bob, SPEECH_B)}, palabra)
            assert min(heard.values()) >= 0.8, heard

            # SIGKILL the shard 1 process: shard 0's session carries on untouched.
            p1.proc.send_signal(signal.SIGKILL)
            assert await p1.wait() == -signal.SIGKILL
            heard = await speak_and_hear(emulator, {g0.id: (alice, SPEECH_A)}, {g0.id: palabra[g0.id]})
            assert heard[g0.id] >= 0.8, heard
            assert set(emulator.state.sessions) == set(palabra.values())  # the dead one's is still there

            # Restarted, shard 1 takes over only its own guild's session.
            restarted_at = asyncio.get_running_loop().time()
            await p1_again.start()
            await wait_healthy(ports[1])
            restarted_id = await instance_of(ports[1])
            await wait_for(
                lambda: palabra[g1.id] not in emulator.state.sessions and len(emulator.state.sessions) == 2,
                timeout=60,
                what="the dead session's Palabra session deleted and a new one started",
            )
            log.warning(
                "take-over: restart to resumed session %.1f s (HEARTBEAT_SECONDS=1)",
                asyncio.get_running_loop().time() - restarted_at,
            )
            after = await live_sessions(postgres_url)
            assert after[g0.id].id == rows[g0.id].id and after[g0.id].instance_id == first_id
            assert after[g0.id].palabra_session_ids == [palabra[g0.id]] and palabra[g0.id] in emulator.state.sessions
            assert after[g1.id].id != rows[g1.id].id and after[g1.id].instance_id == restarted_id
            async with Database(postgres_url) as database, database.session() as s:
                old = await db_sessions.get_session(s, rows[g1.id].id)
                assert (old.status, old.end_reason) == ("ended", "crashed")
                registered = {row.id: row.shard_ids for row in await instances.list_instances(s)}
            assert registered == {first_id: [0], restarted_id: [1]}
            await bob.wait_dave_ready(members=2, timeout=20)
            resumed = {g1.id: after[g1.id].palabra_session_ids[0]}
            heard = await speak_and_hear(emulator, {g1.id: (bob, SPEECH_B)}, resumed)
            assert heard[g1.id] >= 0.8, heard

            for process in (p0, p1_again):
                process.proc.send_signal(signal.SIGTERM)
            assert [await p0.wait(60), await p1_again.wait(60)] == [0, 0]
            assert emulator.state.sessions == {}  # nothing leaked at Palabra
            assert await live_sessions(postgres_url) == {}
            async with Database(postgres_url) as database, database.session() as s:
                assert await instances.list_instances(s) == []
        finally:
            for process in (p0, p1, p1_again):
                await process.kill()
        for output in (p0.text(), p1.text(), p1_again.text()):
            leaked = [s[:6] for s in secrets.ALL if s in output]
            assert not leaked, f"secrets in the bot's output: {leaked}"


async def test_sqlite_refuses_part_of_the_shards(tmp_path):
    async with FakeDiscord() as fake:
        env = env_for(fake, "http://127.0.0.1:9", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", 0)
        process = BotProcess({**env, "SHARD_COUNT": "2", "SHARD_IDS": "1"})
        await process.start()
        assert await process.wait(60) == 2
        assert "SHARD_IDS=1 runs only part of SHARD_COUNT=2" in process.text() and "PostgreSQL" in process.text()
        assert "Traceback" not in process.text()
        assert fake.gateway.identified == []  # refused before connecting to Discord


async def test_shard_ids_outside_the_count_are_refused_at_start(tmp_path):
    async with FakeDiscord() as fake:
        env = env_for(fake, "http://127.0.0.1:9", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", 0)
        process = BotProcess({**env, "SHARD_COUNT": "2", "SHARD_IDS": "0,2"})
        await process.start()
        assert await process.wait(60) == 2
        assert "SHARD_IDS 2 outside 0..1" in process.text()
        assert fake.gateway.identified == []


async def test_a_second_process_on_the_same_shards_is_refused_while_the_first_lives(tmp_path):
    async with FakeDiscord() as fake, serve(emulator_config()) as emulator:
        port = free_port()
        env = env_for(fake, emulator.base_url, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", port)
        first, second = BotProcess(env), BotProcess({**env, "HTTP_PORT": "0"})
        try:
            await first.start()
            await wait_healthy(port)
            first_id = await instance_of(port)
            await second.start()
            assert await second.wait(60) == 2
            assert f"shard 0 of 1 is already run by the live instance {first_id}" in second.text()
            assert (await health(port))["ok"]  # the first one is unharmed
            assert [shard for _, shard in fake.gateway.identified].count((0, 1)) == 3  # listener + 2 speakers, once
        finally:
            await first.kill()
            await second.kill()


async def test_a_process_whose_shards_were_taken_over_stops_serving(tmp_path):
    async with FakeDiscord() as fake, serve(emulator_config()) as emulator:
        port = free_port()
        url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
        process = BotProcess(env_for(fake, emulator.base_url, url, port))
        try:
            await process.start()
            await wait_healthy(port)
            instance_id = await instance_of(port)
            async with Database(url) as database, database.session() as s:  # what a successor does
                assert await instances.remove_instance(s, instance_id)
            assert await process.wait(30) == 2
            assert "another process took over its shards" in process.text()
            assert "the bot stopped cleanly" in process.text()
        finally:
            await process.kill()
