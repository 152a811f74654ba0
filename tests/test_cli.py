import subprocess
import sys

from bot.cli import COMMANDS, build_parser
from tests.fakes import secrets


def test_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert name in result.stdout


def test_every_command_has_a_parser():
    parser = build_parser()
    for name in COMMANDS:
        args = parser.parse_args([name, *_required_args(name)])
        assert args.command == name


def _required_args(name: str) -> list[str]:
    return {"simulate": ["in.wav", "--targets", "es", "--out", "out"]}.get(name, [])


def test_errors_are_one_line_without_traceback_or_secret(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DISCORD_TOKEN": secrets.DISCORD_TOKEN, "HTTP_PORT": "not-a-port"}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "HTTP_PORT" in result.stderr
    assert "Traceback" not in result.stderr and secrets.DISCORD_TOKEN not in result.stderr + result.stdout
