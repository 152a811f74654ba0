"""`python -m bot emulator`: serve the Palabra-compatible emulator."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    raise NotImplementedError("emulator is not built yet")
