"""`/interpret overlay` refusals, each private and saying what to do."""

from __future__ import annotations

from bot.overlay.web import StreamLimits
from tests.cogs.conftest import ephemeral, running_world, shown


async def test_without_the_http_server_the_command_says_the_overlay_is_off(tmp_path):
    async with running_world(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", speaker_tokens=()) as world:
        alice = await world.fake.add_user("Alice", admin=True)
        answer = await world.command(alice, "interpret", "overlay")
    assert ephemeral(answer) and "caption overlay is off" in shown(answer) and "HTTP_PORT" in shown(answer)


async def test_without_a_session_the_command_says_how_to_start_one(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    async with running_world(url, speaker_tokens=(), overlay_limits=StreamLimits()) as world:
        alice = await world.fake.add_user("Alice", admin=True)
        answer = await world.command(alice, "interpret", "overlay", language="es")
    assert ephemeral(answer) and "No interpretation is running" in shown(answer) and "/interpret start" in shown(answer)
