"""`python -m bot run` under stop signals, as a real process against the fake Discord and the Palabra
emulator: SIGTERM at any moment, start-up included, drains (end_task, the tail, finals posted, Palabra
sessions deleted) and exits 0 within 10 s."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import pytest

from bot.palabra.emulator.app import serve
from tests.fakes.audio import SPEECH_A, decode
from tests.fakes.botprocess import (
    BotProcess,
    assert_no_secrets,
    bot_env,
    command,
    free_port,
    wait_healthy,
    wait_listener_online,
)
from tests.fakes.database import active_session_rows
from tests.fakes.discord.server import FakeDiscord
from tests.interpretation.conftest import emulator_config, wait_for

pytestmark = pytest.mark.timeout(120)

EXIT_WITHIN_S = 10.0


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (Linux: the SigCgt mask of /proc/<pid>/status)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            caught = next(line for line in status if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


async def terminate(bot: BotProcess) -> tuple[int, float]:
    """SIGTERM; (exit code, seconds until it exited)."""
    assert bot.proc is not None
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    bot.proc.send_signal(signal.SIGTERM)
    code = await bot.wait(EXIT_WITHIN_S + 5)
    return code, loop.time() - sent_at


@contextlib.asynccontextmanager
async def black_hole():
    """A loopback TCP server that accepts connections and never answers (a Discord that hangs)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", held
    finally:
        for writer in held:
            writer.close()
        server.close()


@pytest.mark.parametrize("moment", ["importing", "discord-hangs", "logging-in", "up"])
async def test_sigterm_during_start_up_exits_0_promptly_leaving_nothing(tmp_path, moment):
    isolated_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"  # the moments vary; one database is enough
    async with FakeDiscord() as fake, serve(emulator_config()) as emulator, black_hole() as (hole, held):
        http_port = free_port()
        env = bot_env(fake, emulator.base_url, isolated_url, http_port)
        if moment == "discord-hangs":
            env["DISCORD_API_BASE"] = hole + "/api/v10"  # the login never completes
        bot = BotProcess(env)
        try:
            await bot.start()
            if moment == "importing":
                # Once `python -m bot` catches SIGTERM (its first lines), the imports are under way: before
                # that the interpreter itself is starting and the signal's default action applies.
                await wait_for(lambda: catches_sigterm(bot.proc.pid), timeout=30, what="the early handler")
                await asyncio.sleep(0.05)
            elif moment == "discord-hangs":
                await wait_for(lambda: held, timeout=30, what="the login under way")
                await asyncio.sleep(0.5)
            elif moment == "logging-in":
                await wait_listener_online(fake)  # speaker bots and recovery still under way
            else:
                await wait_healthy(http_port)
            code, took = await terminate(bot)
            print(f"SIGTERM while {moment}: exit {code} after {took:.2f} s")
            assert code == 0, bot.text()[-3000:]
            assert took < EXIT_WITHIN_S
            assert emulator.state.sessions == {}
        finally:
            await bot.kill()
        assert_no_secrets(bot.text())


async def test_sigterm_mid_session_drains_the_tail_posts_finals_and_deletes_the_palabra_session(isolated_url):
    async with FakeDiscord() as fake, serve(emulator_config()) as emulator:
        http_port = free_port()
        bot = BotProcess(bot_env(fake, emulator.base_url, isolated_url, http_port))
        alice = await fake.add_user("Alice", admin=True)
        try:
            await bot.start()
            await wait_healthy(http_port)
            await command(fake, alice, "setup", "languages", source="en", targets="es,fr")
            await command(fake, alice, "setup", "channel", language="es", channel=fake.channel("Voice B"))
            await alice.join("Voice A")
            await command(fake, alice, "interpret", "start", in_channel="Voice A")
            await wait_for(lambda: emulator.state.streams, timeout=30, what="a Palabra stream")
            await alice.wait_dave_ready(members=2, timeout=20)
            sent = decode(SPEECH_A, rate=48000, channels=2)[: 3 * 48000 * 4]
            await alice.speak(sent + bytes(48000 * 4 // 5))  # the last words are still being confirmed
            code, took = await terminate(bot)
            app_id = str(fake.bot().application_id)  # interaction replies are webhook messages too
            lines = [m for m in fake.messages("Voice A") if m.data.get("webhook_id") not in (None, app_id)]
            finals = [m for m in lines if "> **es**" in m.content and "> **fr**" in m.content]
            print(f"SIGTERM mid-session: exit {code} after {took:.2f} s, {len(finals)} finals with translations")
            assert code == 0, bot.text()[-3000:]
            assert took < EXIT_WITHIN_S
            assert finals and len(finals) == len(lines), [m.content for m in lines]  # all final, translated
            assert any("Interpretation of" in m.content and m.files for m in fake.messages("Voice A"))  # summary
            assert emulator.state.sessions == {}  # the Palabra session was deleted
            [stream] = emulator.state.streams
            assert stream.messages_in.get("end_task") == 1  # end_task was sent, not just a dropped socket
            assert await active_session_rows(isolated_url) == []
        finally:
            await bot.kill()
        assert_no_secrets(bot.text())


async def test_sigterm_when_discord_never_answers_the_close_still_exits_promptly(tmp_path):
    """Discord unreachable at shutdown: the gateway takes each client's close frame (the listener's and
    both speaker bots') and never answers; the shutdown must not wait for the answers."""
    isolated_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    async with FakeDiscord() as fake, serve(emulator_config()) as emulator:
        http_port = free_port()
        bot = BotProcess(bot_env(fake, emulator.base_url, isolated_url, http_port))
        try:
            await bot.start()
            await wait_healthy(http_port)
            await wait_for(lambda: "the bot is running" in bot.text(), timeout=30, what="start-up complete")
            fake.gateway.answer_close = False
            code, took = await terminate(bot)
            print(f"SIGTERM with Discord not answering the close: exit {code} after {took:.2f} s")
            assert code == 0, bot.text()[-3000:]
            assert took < EXIT_WITHIN_S
            assert "the bot stopped cleanly" in bot.text(), bot.log_excerpt(30)
        finally:
            await bot.kill()
        assert_no_secrets(bot.text())
