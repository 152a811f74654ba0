"""`python -m bot bench`: performance figures as JSON, as ratios to same-run baselines."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    raise NotImplementedError("bench is not built yet")
