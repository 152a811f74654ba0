"""What `python -m bot run` says when it cannot start, as a real process: the cause named by the setting
to look at, no "stopped cleanly" before the error, no Alembic chatter, and where the database file is."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from tests.fakes import secrets
from tests.fakes.discord import tls
from tests.fakes.discord.server import FakeDiscord

pytestmark = pytest.mark.timeout(120)


async def _run(env: dict[str, str], cwd) -> tuple[int, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "TMPDIR")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        env={**keep, "PALABRA_API_KEY": secrets.PALABRA_API_KEY, "HTTP_PORT": "0", **env},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode or 0, output.decode(errors="replace")


def _quiet_and_honest(output: str) -> None:
    assert "the bot stopped cleanly" not in output
    assert "alembic" not in output  # neither its plugin list nor its dialect lines
    assert "Traceback" not in output
    for secret in secrets.ALL:
        assert secret not in output


async def test_a_rejected_token_is_named_and_the_database_file_is_shown(tmp_path):
    async with FakeDiscord() as fake:
        code, output = await _run(
            {
                "DISCORD_TOKEN": secrets.SPEAKER_TOKENS[0].replace("G", "Q"),  # no such bot
                "DISCORD_API_BASE": fake.api_base,
                "DISCORD_GATEWAY_URL": fake.gateway_url,
                "SSL_CERT_FILE": tls.trust_test_ca(),
            },
            tmp_path,
        )
    assert code == 2, output
    assert output.rstrip().endswith(
        "error: Discord rejected DISCORD_TOKEN; copy the bot's token again (Developer Portal → Bot)"
    ), output
    assert f"sqlite+aiosqlite:///data/bot.db (the file {tmp_path / 'data' / 'bot.db'}) migrated: empty ->" in output
    _quiet_and_honest(output)


async def test_an_unreachable_discord_is_not_blamed_on_the_token(tmp_path):
    code, output = await _run(
        {"DISCORD_TOKEN": secrets.DISCORD_TOKEN, "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10"}, tmp_path
    )
    assert code == 2, output
    assert "error: the bot could not reach Discord at DISCORD_API_BASE=http://127.0.0.1:9/api/v10" in output
    assert "DISCORD_TOKEN" not in output
    _quiet_and_honest(output)
