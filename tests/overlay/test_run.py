"""The overlay in `python -m bot run` as a real process: PUBLIC_URL in the links, the key generated into
the database (and never in the DEBUG output), the page served by the bot's HTTP server, and an open
caption stream that does not hold up a clean SIGTERM stop."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from bot.db import Database
from bot.db.models import StoredSecret
from bot.palabra.emulator.app import serve
from tests.fakes.discord.server import FakeDiscord
from tests.interpretation.conftest import emulator_config
from tests.test_app import BotProcess, bot_env, command, free_port, wait_healthy

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


async def test_run_serves_overlay_links_at_public_url_and_stops_cleanly_with_a_stream_open(isolated_url):
    async with FakeDiscord() as fake, serve(emulator_config()) as emulator:
        port = free_port()
        public = f"http://localhost:{port}"
        bot = BotProcess({**bot_env(fake, emulator.base_url, isolated_url, port), "PUBLIC_URL": public + "/"})
        alice = await fake.add_user("Alice", admin=True)
        try:
            await bot.start()
            await wait_healthy(port)
            await alice.join("Voice A")
            started = await command(fake, alice, "interpret", "start", in_channel="Voice A", targets="es")
            assert "Interpreting" in started.text(), started.text()
            answer = await command(fake, alice, "interpret", "overlay", in_channel="Voice A")
            found = re.search(r"(http://\S+?/overlay/[A-Za-z0-9_.\-]+)", answer.text())
            assert answer.ephemeral and found, answer.text()
            assert found.group(1).startswith(f"{public}/overlay/")  # PUBLIC_URL, its trailing slash dropped
            local = found.group(1).replace(public, f"http://127.0.0.1:{port}")
            async with httpx.AsyncClient(timeout=10) as http:
                assert (await http.get(local)).status_code == 200
                async with http.stream("GET", f"{local}/events") as stream:
                    assert stream.status_code == 200
                    lines = stream.aiter_lines()
                    assert (await anext(lines)).startswith("retry:")
                    bot.proc.terminate()
                    assert await bot.wait(60) == 0
                    rest = [line async for line in lines]
                    assert "event: end" in rest  # the session's stop reached the page before the exit
            assert "the bot stopped cleanly" in bot.text()
            database = Database(isolated_url)
            try:
                async with database.session() as s:
                    [key] = (await s.scalars(select(StoredSecret.value))).all()
            finally:
                await database.close()
            assert len(key) == 64 and key not in bot.text()
        finally:
            await bot.kill()
