"""`python -m bot run` as a real child process against the fake Discord and the Palabra emulator (both
in the test's event loop), and the slash-command and health helpers the process tests share."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import httpx

from tests.fakes import secrets
from tests.fakes.discord import tls
from tests.fakes.discord.server import FakeDiscord
from tests.interpretation.conftest import wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BotProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.output = bytearray()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc and self.proc.stdout
        while chunk := await self.proc.stdout.read(65536):
            self.output.extend(chunk)

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def log_excerpt(self, limit: int = 150) -> str:
        """The last `limit` lines at INFO and above, plus discord.py's voice connection steps at DEBUG:
        what a failed run prints, so a CI failure says what the bot saw."""
        voice_steps = (" discord.voice_state: ", " discord.gateway: Updating our voice")
        lines = [
            line
            for line in self.text().splitlines()
            if " DEBUG " not in line[:40] or any(step in line for step in voice_steps)
        ]
        return "\n".join(lines[-limit:])

    async def wait(self, timeout: float = 60) -> int:
        assert self.proc
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader:
            await asyncio.wait_for(self._reader, 5)
        return code

    async def kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.wait()


def bot_env(fake: FakeDiscord, emulator_url: str, database_url: str, http_port: int) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "TMPDIR")}
    return {
        **keep,
        "DISCORD_TOKEN": secrets.DISCORD_TOKEN,
        "SPEAKER_TOKENS": ",".join(secrets.SPEAKER_TOKENS),
        "PALABRA_CLIENT_ID": secrets.PALABRA_CLIENT_ID,
        "PALABRA_CLIENT_SECRET": secrets.PALABRA_CLIENT_SECRET,
        "PALABRA_API_URL": emulator_url,
        "DATABASE_URL": database_url,
        "DISCORD_API_BASE": fake.api_base,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "SSL_CERT_FILE": tls.trust_test_ca(),
        "HTTP_PORT": str(http_port),
        "HTTP_HOST": "127.0.0.1",
        "LOG_LEVEL": "DEBUG",
        # A SIGKILLed process is known dead after 3 silent heartbeats: seconds, not the default minute.
        "HEARTBEAT_SECONDS": "1",
    }


async def command(fake: FakeDiscord, user, name: str, subcommand: str, in_channel="general", **options):
    """A slash command as the user, answered (a deferred answer: its follow-up too)."""
    record = await fake.slash_command(fake.bot(), user, in_channel, name, subcommand=subcommand, options=options)
    await fake.wait_for_response(record, 30)
    await wait_for(lambda: record.response_type != 5 or record.followups, timeout=60, what=f"/{name} {subcommand}")
    return record


async def wait_listener_online(fake: FakeDiscord, timeout: float = 60) -> None:
    """Until the listener is online in its servers (READY and each GUILD_CREATE sent on its gateway):
    the first moment a member sees the bot and can use its commands. Nothing else (speaker bots,
    recovery, voice) is waited for."""

    def online() -> bool:
        session = fake.gateway.sessions.get(fake.bot().id)
        return session is not None and session.seq >= 1 + len(fake.guilds)

    await wait_for(online, timeout=timeout, what="the listener online")


async def wait_healthy(port: int, timeout: float = 60) -> dict:
    """Until /healthz says the listener and both speaker bots are ready."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            try:
                response = await http.get(f"http://127.0.0.1:{port}/healthz")
                if response.status_code == 200 and response.json()["speakers_ready"] == 2:
                    return dict(response.json())
            except httpx.HTTPError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the bot did not become healthy")
            await asyncio.sleep(0.2)


def assert_no_secrets(*outputs: str) -> None:
    for output in outputs:
        leaked = [s[:6] for s in secrets.ALL if s in output]
        assert not leaked, f"secrets in the bot's output: {leaked}"
