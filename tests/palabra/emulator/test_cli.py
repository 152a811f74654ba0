"""`python -m bot emulator` as an operator runs it: a real process on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys

import pytest

from bot.cli import build_parser
from bot.errors import ConfigurationError
from bot.palabra.credentials import Credentials
from bot.palabra.emulator.cli import build_config
from bot.palabra.emulator.local_credentials import LocalCredentials, load_or_generate, write
from bot.palabra.errors import ServerError
from bot.palabra.rest import PalabraRest
from tests.fakes import secrets
from tests.fakes.net import LOOPBACK, free_port

START_TIMEOUT_S = 20.0


class EmulatorProcess:
    def __init__(self, *flags: str) -> None:
        self.port = free_port()
        self.flags = ["--host", LOOPBACK, "--port", str(self.port), *flags]
        self.stderr_lines: list[str] = []
        self.stdout = ""

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def __aenter__(self) -> EmulatorProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "emulator",
            *self.flags,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        await asyncio.wait_for(self._wait_for_start(), START_TIMEOUT_S)
        return self

    async def _wait_for_start(self) -> None:
        while True:
            line = (await self.proc.stderr.readline()).decode()
            if not line:
                raise AssertionError(f"emulator exited before listening: {''.join(self.stderr_lines)}")
            self.stderr_lines.append(line)
            if "listening on" in line:
                return

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(self.proc.communicate(), 15.0)
        self.stdout = out.decode()
        self.stderr_lines.append(err.decode())
        return self.proc.returncode

    async def __aexit__(self, *exc_info: object) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def test_serves_the_given_credentials_and_stops_on_sigterm():
    emulator = EmulatorProcess(
        "--client", f"{secrets.PALABRA_CLIENT_ID}:{secrets.PALABRA_CLIENT_SECRET}", "--api-key", secrets.PALABRA_API_KEY
    )
    async with emulator:
        start_line = emulator.stderr_lines[-1]
        assert f"http://{LOOPBACK}:{emulator.port}" in start_line
        assert "/streaming-api/v1/speech-to-speech/stream" in start_line
        for creds in (
            Credentials.app(secrets.PALABRA_CLIENT_ID, secrets.PALABRA_CLIENT_SECRET),
            Credentials.from_api_key(secrets.PALABRA_API_KEY),
        ):
            async with PalabraRest(creds, emulator.base_url) as rest:
                info = await rest.create_session()
                assert info.ws_url == f"ws://{LOOPBACK}:{emulator.port}/streaming-api/v1/speech-to-speech/stream"
                assert [s.id async for s in rest.list_sessions()] == [info.id]
        assert await emulator.stop() == 0
    logs = "".join(emulator.stderr_lines)
    assert "stopping" in logs
    for secret in (secrets.PALABRA_CLIENT_SECRET, secrets.PALABRA_API_KEY):
        assert secret not in logs and secret not in emulator.stdout
    assert "local test credentials" not in emulator.stdout


async def test_generated_credentials_go_to_a_private_file_never_to_output(tmp_path):
    path = tmp_path / "creds.env"
    async with EmulatorProcess("--credentials-file", str(path)) as emulator:
        line = (await asyncio.wait_for(emulator.proc.stdout.readline(), 10.0)).decode()
        assert str(path) in line
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        values = dict(re.findall(r"^#? ?(PALABRA_\w+)=(\S+)$", path.read_text(), flags=re.M))
        assert values["PALABRA_API_URL"] == emulator.base_url
        api_key, client_secret = values["PALABRA_API_KEY"], values["PALABRA_CLIENT_SECRET"]
        for creds in (Credentials.from_api_key(api_key), Credentials.app(values["PALABRA_CLIENT_ID"], client_secret)):
            async with PalabraRest(creds, emulator.base_url) as rest:
                assert (await rest.create_session()).publisher
        assert await emulator.stop() == 0
    output = line + emulator.stdout + "".join(emulator.stderr_lines)
    assert api_key not in output and client_secret not in output


async def test_rest_fault_injection_flags():
    async with EmulatorProcess(
        "--api-key", secrets.PALABRA_API_KEY, "--rest-fail-first", "1", "--rest-fail-status", "502"
    ) as emulator:
        async with PalabraRest(
            Credentials.from_api_key(secrets.PALABRA_API_KEY), emulator.base_url, max_retries=0
        ) as rest:
            with pytest.raises(ServerError, match="HTTP 502"):
                await rest.list_broadcasts()
            assert await rest.list_broadcasts() == []
        await emulator.stop()


def _parse(*argv: str):
    return build_parser().parse_args(["emulator", *argv])


def test_flags_reach_the_emulator_config():
    config, generated = build_config(
        _parse(
            "--no-ack",
            "--eos",
            "--max-parallel-sessions",
            "3",
            "--session-ttl",
            "90",
            "--audio-timeout",
            "4",
            "--drop-after",
            "2.5",
            "--drop-count",
            "1",
            "--rest-fail-first",
            "2",
            "--rest-fail-status",
            "429",
            "--processing-delay",
            "0.2",
            "--no-command-rate-limits",
            "--time-scale",
            "4",
            "--client",
            "a:b",
            "--client",
            "c:d:e",
            "--api-key",
            "plbr_k1",
            "--realism",
            "7",
            "--realism-delay",
            "0.5:2",
        )
    )
    assert generated is None
    assert config.ack_task_status is False and config.end_message == "eos"
    assert (config.max_parallel_sessions, config.session_ttl_s, config.audio_timeout_s) == (3, 90.0, 4.0)
    assert (config.drop_after_s, config.drop_count, config.processing_delay_s) == (2.5, 1, 0.2)
    assert (config.rest_fail_first, config.rest_fail_status) == (2, 429)
    assert config.enforce_command_rate_limits is False and config.time_scale == 4.0
    assert config.client_credentials == {"a": "b", "c": "d:e"} and config.api_keys == {"plbr_k1"}
    assert config.realism == 7 and config.realism_delay_s == (0.5, 2.0)


def test_defaults_match_the_documented_dialect(tmp_path):
    config, generated = build_config(_parse("--credentials-file", str(tmp_path / "creds.env")))
    assert config.ack_task_status is True and config.end_message == "end_of_stream"
    assert config.realism is None and config.realism_delay_s == (0.0, 7.0)
    assert generated is not None and not generated.reused
    assert config.client_credentials == {generated.client_id: generated.client_secret}
    assert config.api_keys == {generated.api_key} and generated.api_key.startswith("plbr_")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--client", "no-colon"], "--client takes ID:SECRET"),
        (["--client", ":secret"], "--client takes ID:SECRET"),
        (["--rest-fail-status", "200"], "HTTP error status"),
        (["--port", "x"], "invalid int"),
        (["--realism", "x"], "invalid int"),
        (["--realism-delay", "3:1"], "MIN:MAX seconds"),
    ],
)
def test_bad_flags_are_reported_clearly(argv, message):
    result = subprocess.run(
        [sys.executable, "-m", "bot", "emulator", *argv], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def _env_values(path) -> dict[str, str]:
    return dict(re.findall(r"^#? ?(PALABRA_\w+)=(\S+)$", path.read_text(), flags=re.M))


async def test_credentials_file_is_reused_on_the_next_start(tmp_path):
    path = tmp_path / "creds.env"
    async with EmulatorProcess("--credentials-file", str(path)) as first:
        await asyncio.wait_for(first.proc.stdout.readline(), 10.0)
        assert await first.stop() == 0
    before = _env_values(path)
    async with EmulatorProcess("--credentials-file", str(path)) as second:  # a new port
        line = (await asyncio.wait_for(second.proc.stdout.readline(), 10.0)).decode()
        assert "reusing" in line and str(path) in line
        after = _env_values(path)
        assert after["PALABRA_API_URL"] == second.base_url != before["PALABRA_API_URL"]
        assert {k: v for k, v in after.items() if k != "PALABRA_API_URL"} == {
            k: v for k, v in before.items() if k != "PALABRA_API_URL"
        }
        # a .env made from the first run still works against the second
        for creds in (
            Credentials.from_api_key(before["PALABRA_API_KEY"]),
            Credentials.app(before["PALABRA_CLIENT_ID"], before["PALABRA_CLIENT_SECRET"]),
        ):
            async with PalabraRest(creds, second.base_url) as rest:
                assert (await rest.create_session()).publisher
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert await second.stop() == 0
    assert before["PALABRA_API_KEY"] not in line + second.stdout + "".join(second.stderr_lines)


def test_a_file_the_emulator_did_not_write_is_refused_not_overwritten(tmp_path):
    path = tmp_path / ".env"
    path.write_text("DISCORD_TOKEN=keep-me\nPALABRA_API_KEY=plbr_real\n")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "emulator", "--port", "0", "--credentials-file", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "was not written by the emulator" in result.stderr
    assert path.read_text() == "DISCORD_TOKEN=keep-me\nPALABRA_API_KEY=plbr_real\n"


def test_a_damaged_credentials_file_says_what_is_missing(tmp_path):
    path = tmp_path / "creds.env"
    write(path, LocalCredentials.generate(), "http://127.0.0.1:1")
    path.write_text("\n".join(line for line in path.read_text().splitlines() if "CLIENT_SECRET" not in line))
    with pytest.raises(ConfigurationError, match="lacks PALABRA_CLIENT_SECRET"):
        load_or_generate(path)
