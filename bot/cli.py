"""`python -m bot <command>`: each command lives in its own module with `configure(parser)` and
`main(args) -> int`; modules are imported only to build the parser, so they keep heavy imports
inside their functions."""

from __future__ import annotations

import argparse
import importlib
import sys

from bot.errors import BotError
from bot.logs import redact

COMMANDS = {
    "run": ("bot.app", "run the bot (listener, speaker bots, slash commands); migrates the database first"),
    "migrate": ("bot.db.migrate", "bring the database schema up to date"),
    "simulate": ("bot.simulate", "run the audio path on a sound file without Discord"),
    "emulator": ("bot.palabra.emulator.cli", "serve the local Palabra-compatible emulator"),
    "bench": ("bot.bench", "measure performance and print the figures as JSON"),
    "invite": ("bot.setup.invite", "print each configured bot's invite link with the permissions it needs"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="Live voice interpretation for Discord, powered by Palabra."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.configure(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._module.main(args) or 0)
    except BotError as exc:
        # Our own errors carry a message written for the user; no traceback.
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
