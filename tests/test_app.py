"""`python -m bot run` as a real process against the fake Discord and the Palabra emulator (both in this
test's event loop): slash commands start a session; the process is SIGKILLed mid-session; the restarted
process deletes the dead process's Palabra session, resumes interpretation in the channel that still has
people (a caption overlay link given out before the crash shows the resumed session), serves health and
metrics, and stops cleanly on SIGTERM. No secret appears in its output."""

from __future__ import annotations

import asyncio
import re
import signal

import httpx
import numpy as np
import pytest

from bot.app import require_run_settings
from bot.db import Database
from bot.db import sessions as db_sessions
from bot.errors import ConfigurationError
from bot.palabra.emulator.app import serve
from bot.settings import load_settings
from tests.fakes import secrets
from tests.fakes.audio import SPEECH_A, decode, mono, pieces_heard
from tests.fakes.botprocess import BotProcess, assert_no_secrets, bot_env, command, free_port, wait_healthy
from tests.fakes.database import active_session_rows
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.sse import EventReader
from tests.interpretation.conftest import emulator_config, wait_for

pytestmark = pytest.mark.timeout(180)
OVERLAY_LINK = re.compile(r"http://127\.0\.0\.1:\d+/overlay/[A-Za-z0-9_.\-]+")


async def first_caption(http: httpx.AsyncClient, link: str) -> list:
    async with http.stream("GET", f"{link}/events", timeout=60) as response:
        assert response.status_code == 200
        return await EventReader(response).next(1)


async def test_killed_mid_session_the_restarted_bot_cleans_up_and_resumes(isolated_url, tmp_path):
    async with FakeDiscord() as fake, serve(emulator_config()) as emulator:
        http_port = free_port()
        env = bot_env(fake, emulator.base_url, isolated_url, http_port)
        alice = await fake.add_user("Alice", admin=True)
        first = BotProcess(env)
        second = BotProcess(env)
        try:
            await first.start()
            await wait_healthy(http_port)
            assert fake.commands(fake.bot())  # the slash commands were synced
            await command(fake, alice, "setup", "languages", source="en", targets="es,fr")
            await command(fake, alice, "setup", "channel", language="es", channel=fake.channel("Voice B"))
            await command(fake, alice, "setup", "channel", language="fr", channel=fake.channel("Voice C"))
            await alice.join("Voice A")
            started = await command(fake, alice, "interpret", "start", in_channel="Voice A")
            assert "Voice B" in started.text() or str(fake.channel("Voice B").id) in started.text(), started.text()
            await wait_for(
                lambda: len(emulator.state.sessions) == 1 and emulator.state.streams,
                timeout=30,
                what="a Palabra session",
            )
            [dead_palabra_id] = list(emulator.state.sessions)
            [row] = await active_session_rows(isolated_url)
            assert row.palabra_session_ids == [dead_palabra_id]  # recorded before it was used
            overlay = await command(fake, alice, "interpret", "overlay")
            found = OVERLAY_LINK.search(overlay.text())
            assert found, overlay.text()
            link = found.group(0)  # e.g. an OBS browser source, added once

            first.proc.send_signal(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL
            assert list(emulator.state.sessions) == [dead_palabra_id]  # left behind by the dead process

            # The restarted speaker bots log in slowly: the resume waits for them, its stream already
            # open, and the overlay link is opened (an OBS source reloading) in that window.
            fake.gateway.hold_logins(*(fake.bot(token).id for token in secrets.SPEAKER_TOKENS))
            loop = asyncio.get_running_loop()
            restarted_at = loop.time()
            await second.start()
            await wait_for(
                lambda: dead_palabra_id not in emulator.state.sessions and len(emulator.state.sessions) == 1,
                timeout=60,
                what="the dead session deleted and a new one started",
            )
            resumed_after = loop.time() - restarted_at
            rows = await active_session_rows(isolated_url)
            assert len(rows) == 1 and rows[0].id != row.id and rows[0].source_channel_id == fake.channel("Voice A").id
            assert rows[0].continues_session_ids == [row.id]  # what the old overlay link follows
            database = Database(isolated_url)
            async with database.session() as s:
                old = await db_sessions.get_session(s, row.id)
                assert old.status == "ended" and old.end_reason == "crashed"
            await database.close()

            async with httpx.AsyncClient(timeout=30) as http:
                # The link from before the crash is served while the resume is still under way...
                assert (await http.get(link)).status_code == 200
                captions = asyncio.create_task(first_caption(http, link))
                health = (await http.get(f"http://127.0.0.1:{http_port}/healthz")).json()
                assert health["sessions"] == 0 and health["speakers_ready"] == 0, health  # (still under way)
                try:
                    # ...and the resumed session really interprets: Alice's speech reaches the new stream.
                    await wait_for(
                        lambda: fake.voice_members(fake.channel("Voice A").id) >= {alice.id, fake.bot().id},
                        what="the listener back in Voice A",
                    )
                    await alice.wait_dave_ready(members=2, timeout=20)
                    sent = decode(SPEECH_A, rate=48000, channels=2)[: 3 * 48000 * 4]
                    await alice.speak(sent + bytes(48000 * 4))
                    stream = emulator.state.streams[-1]
                    received = np.frombuffer(bytes(stream.input_pcm), dtype="<i2").astype(np.float64) / 32768
                    spoken = mono(decode(SPEECH_A, rate=16000, channels=1), 1)[: 3 * 16000]
                    assert pieces_heard(spoken, received, 16000) >= 0.8
                    fake.gateway.release_logins()
                    # The stream opened during the resume shows the resumed session's captions of that speech.
                    events = await asyncio.wait_for(captions, 60)
                finally:
                    captions.cancel()
            assert [kind for _id, kind, _data in events] == ["line"] and events[0][2]["text"], events
            print(
                f"SIGKILL + restart: {len(emulator.state.sessions) - 1} leaked Palabra sessions, interpretation "
                f"resumed {resumed_after:.1f} s after the restart"
            )

            async with httpx.AsyncClient() as http:
                health = await http.get(f"http://127.0.0.1:{http_port}/healthz")
                metrics = await http.get(f"http://127.0.0.1:{http_port}/metrics")
            assert health.status_code == 200 and health.json()["sessions"] == 1
            assert health.json()["speakers_ready"] == 2
            assert "interpreter_sessions_active 1.0" in metrics.text
            assert "interpreter_voice_packets_total" in metrics.text

            second.proc.send_signal(signal.SIGTERM)
            assert await second.wait(60) == 0
            assert emulator.state.sessions == {}  # the clean stop deleted the resumed session too
            assert await active_session_rows(isolated_url) == []
            assert "the bot stopped cleanly" in second.text()
        finally:
            await first.kill()
            await second.kill()
        assert_no_secrets(first.text(), second.text())


def test_run_names_the_missing_variables():
    settings = load_settings(
        discord_token=None, palabra_client_id=None, palabra_client_secret=None, palabra_api_key=None
    )
    with pytest.raises(ConfigurationError) as error:
        require_run_settings(settings)
    assert "DISCORD_TOKEN" in str(error.value) and "PALABRA_API_KEY" in str(error.value)
    settings = load_settings(discord_token=secrets.DISCORD_TOKEN, palabra_api_key=secrets.PALABRA_API_KEY)
    require_run_settings(settings)  # complete: no error
