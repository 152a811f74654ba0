"""`python -m bot run` start-up as a real process: a stop signal during the Discord login ends it at once
(exit 0, well inside `docker stop`'s 10 s), and a failed login says whether Discord refused the token or
could not be reached; the start-up error is reported, never "stopped cleanly"."""

from __future__ import annotations

import asyncio
import signal
import time
from types import SimpleNamespace

import pytest

from tests.fakes import secrets
from tests.fakes.discord import tls
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.net import LOOPBACK, free_port
from tests.interpretation.conftest import wait_for
from tests.test_app import BotProcess, bot_env

pytestmark = pytest.mark.timeout(120)

STOP_BUDGET_S = 10.0  # docker stop's default grace period


class StalledServer:
    """Accepts TCP connections and never answers: a Discord that hangs the login."""

    def __init__(self) -> None:
        self.connections: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> StalledServer:
        self.server = await asyncio.start_server(self._hold, LOOPBACK, 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for writer in self.connections:
            writer.close()
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def _hold(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(writer)


def env_for(api_base: str, gateway_url: str, tmp_path) -> dict[str, str]:
    """The bot's environment with Discord at `api_base`; Palabra is never reached before the login."""
    discord_at = SimpleNamespace(api_base=api_base, gateway_url=gateway_url)
    return bot_env(discord_at, "http://127.0.0.1:9", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", 0)


@pytest.mark.parametrize(
    ("hanging", "sig"),
    [("discord", signal.SIGTERM), ("discord", signal.SIGINT), ("database", signal.SIGTERM)],
    ids=["login-SIGTERM", "login-SIGINT", "database-SIGTERM"],
)
async def test_a_stop_signal_during_start_up_exits_0_at_once(tmp_path, hanging, sig):
    """Discord's login, or the database connection, accepts TCP and never answers."""
    async with StalledServer() as stalled:
        at = f"{LOOPBACK}:{stalled.port}"
        if hanging == "discord":
            env = env_for(f"https://{at}/api/v10", f"wss://{at}", tmp_path)
        else:
            env = env_for(f"https://{LOOPBACK}:9/api/v10", f"wss://{LOOPBACK}:9", tmp_path)
            env["DATABASE_URL"] = f"postgresql+asyncpg://bot:unused@{at}/bot"
        bot = BotProcess(env)
        await bot.start()
        try:
            await wait_for(lambda: stalled.connections, timeout=60, what=f"the bot's {hanging} connection")
            signalled = time.monotonic()
            assert bot.proc is not None
            bot.proc.send_signal(sig)
            code = await bot.wait(timeout=30)
            took = time.monotonic() - signalled
        finally:
            await bot.kill()
    print(f"stop signal while the {hanging} connection hangs: exit {code} after {took:.2f} s")
    output = bot.text()
    assert code == 0, output[-2000:]
    assert took < STOP_BUDGET_S, f"took {took:.1f} s"
    assert "stop signal during start-up" in output and "start-up failed" not in output


async def test_a_refused_token_is_told_as_a_refused_token(tmp_path):
    async with FakeDiscord(bot_tokens=secrets.SPEAKER_TOKENS) as fake:  # DISCORD_TOKEN is unknown there
        env = env_for(fake.api_base, fake.gateway_url, tmp_path)
        env["SSL_CERT_FILE"] = tls.trust_test_ca()
        bot = BotProcess(env)
        await bot.start()
        try:
            code = await bot.wait(timeout=60)
        finally:
            await bot.kill()
    output = bot.text()
    assert code == 2, output[-2000:]
    assert "Discord rejected DISCORD_TOKEN; copy the bot's token again" in output
    assert "could not reach" not in output
    assert_reported_before_closing(output)


async def test_an_unreachable_discord_is_told_as_unreachable_not_as_a_bad_token(tmp_path):
    closed = free_port()  # nothing listens there
    bot = BotProcess(env_for(f"https://{LOOPBACK}:{closed}/api/v10", f"wss://{LOOPBACK}:{closed}", tmp_path))
    await bot.start()
    try:
        code = await bot.wait(timeout=60)
    finally:
        await bot.kill()
    output = bot.text()
    assert code == 2, output[-2000:]
    assert f"could not reach Discord at DISCORD_API_BASE=https://{LOOPBACK}:{closed}/api/v10" in output
    assert "DISCORD_TOKEN" not in output
    assert_reported_before_closing(output)


def assert_reported_before_closing(output: str) -> None:
    assert "the bot stopped cleanly" not in output
    assert output.index("start-up failed") < output.index("the bot stopped (it had not finished starting)")
    leaked = [s[:6] for s in secrets.ALL if s in output]
    assert not leaked, f"secrets in the bot's output: {leaked}"
