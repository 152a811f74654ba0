"""`python -m bot migrate`: Alembic upgrade to head."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    raise NotImplementedError("migrate is not built yet")
