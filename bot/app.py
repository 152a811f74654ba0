"""The bot process: listener client, speaker clients, cogs, HTTP health/metrics."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    raise NotImplementedError("run is not built yet")
