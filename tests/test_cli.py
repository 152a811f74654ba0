import subprocess
import sys

from bot.cli import COMMANDS, build_parser


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
